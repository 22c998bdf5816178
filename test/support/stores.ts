import { tmpdir } from "node:os";
import { createRouterTransport, createClient, type Client, type Code, type ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import { failure } from "./errors.js";
import type { DescService } from "@bufbuild/protobuf";
import { DEFAULT_CREDENTIAL_DIRECTORIES } from "../../src/core/cluster.js";
import { RoutingIndex } from "../../src/routing/routing-index.js";
import { registerServices } from "../../src/services/index.js";
import { domainErrors } from "../../src/services/errors.js";
import { sql } from "kysely";
import { openStores, type Stores } from "../../src/store/stores.js";
import { SQLITE, type TestEngine } from "./engines.js";

export type TempStores = Stores & { path: string; cleanup(): Promise<void> };

/** A fresh database of `engine` (a temporary SQLite file by default), removed by `cleanup`. */
export async function tempStores(engine: TestEngine = SQLITE): Promise<TempStores> {
  const database = await engine.fresh();
  let stores: Stores;
  try {
    stores = await openStores({ path: database.location });
  } catch (error) {
    await database.drop();
    throw error;
  }
  return {
    ...stores,
    path: database.location,
    async cleanup() {
      await stores.engine.close();
      await database.drop();
    },
  };
}

/** One routing index per database, shared by every in-memory client of it. */
const routingIndexes = new WeakMap<object, RoutingIndex>();

/** A client for `service` over the in-memory router transport, with the server's error mapping. */
export function inMemoryClient<S extends DescService>(service: S, stores: Stores): Client<S> {
  let routing = routingIndexes.get(stores.engine);
  if (!routing) {
    routing = new RoutingIndex(stores);
    routingIndexes.set(stores.engine, routing);
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
export async function snapshot(stores: Stores): Promise<Record<string, unknown[]>> {
  const { db } = stores.engine;
  const listTables =
    stores.engine.name === "postgres"
      ? sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`
      : sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`;
  const { rows: tables } = await listTables.execute(db);
  const snapshot: Record<string, unknown[]> = {};
  for (const { name } of tables) snapshot[name] = (await sql`SELECT * FROM ${sql.table(name)}`.execute(db)).rows;
  return snapshot;
}

/** Asserts that `call` fails with `code` and leaves every table as it was; returns the error. */
export async function rejectedUnchanged(stores: Stores, call: () => Promise<unknown>, code: Code): Promise<ConnectError> {
  const before = await snapshot(stores);
  const error = await failure(call());
  expect(error.code).toBe(code);
  expect(await snapshot(stores)).toEqual(before);
  return error;
}
