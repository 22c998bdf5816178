import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRouterTransport, createClient, type Client, type Code, type ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import { failure } from "./errors.js";
import type { DescService } from "@bufbuild/protobuf";
import { DEFAULT_CREDENTIAL_DIRECTORIES } from "../../src/core/cluster.js";
import { RoutingIndex } from "../../src/routing/routing-index.js";
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

/** One routing index per database, shared by every in-memory client of it. */
const routingIndexes = new WeakMap<object, RoutingIndex>();

/** A client for `service` over the in-memory router transport, with the server's error mapping. */
export function inMemoryClient<S extends DescService>(service: S, stores: Stores): Client<S> {
  let routing = routingIndexes.get(stores.db);
  if (!routing) {
    routing = new RoutingIndex(stores);
    routingIndexes.set(stores.db, routing);
  }
  const index = routing;
  // Tests write credential files to the temporary directory, so it is a credential directory too.
  const options = { credentialDirectories: [...DEFAULT_CREDENTIAL_DIRECTORIES, tmpdir()] };
  const transport = createRouterTransport((router) => registerServices(router, stores, index, options), {
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

/** Asserts that `call` fails with `code` and leaves every table as it was; returns the error. */
export async function rejectedUnchanged(db: Db, call: () => Promise<unknown>, code: Code): Promise<ConnectError> {
  const before = snapshot(db);
  const error = await failure(call());
  expect(error.code).toBe(code);
  expect(snapshot(db)).toEqual(before);
  return error;
}
