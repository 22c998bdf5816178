import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRouterTransport, createClient, type Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { registerServices } from "../../src/services/index.js";
import { domainErrors } from "../../src/services/errors.js";
import { openStores, type Stores } from "../../src/store/stores.js";
import type { Db } from "../../src/store/database.js";

/** A fresh database in a temporary directory, removed by `cleanup`. */
export function tempStores(): Stores & { cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-test-"));
  const stores = openStores({ path: join(dir, "test.db") });
  return {
    ...stores,
    cleanup() {
      if (stores.db.open) stores.db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A client for `service` over the in-memory router transport, with the server's error mapping. */
export function inMemoryClient<S extends DescService>(service: S, stores: Stores): Client<S> {
  const transport = createRouterTransport((router) => registerServices(router, stores), {
    router: { interceptors: [domainErrors] },
  });
  return createClient(service, transport);
}

/** Every row of every table, to prove a rejected request changed nothing. */
export function snapshot(db: Db): Record<string, unknown[]> {
  const tables = db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .pluck()
    .all() as string[];
  return Object.fromEntries(tables.map((table) => [table, db.prepare(`SELECT * FROM "${table}"`).all()]));
}
