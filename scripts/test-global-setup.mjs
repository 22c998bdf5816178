// Tests spawn bin/clusterplane.mjs, which runs dist/: build it from the current sources first, so
// `npm test` after an edit never exercises a stale bundle. esbuild takes about a second.
//
// PostgreSQL: the store, service and replica suites also run on PostgreSQL when one is reachable
// (CLUSTERPLANE_TEST_POSTGRES, else the local server). This run gets a database of its own,
// dropped at the end, so runs side by side never meet; each test makes its own schema in it.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { build } from "./build.mjs";

const LOCAL_POSTGRES = "postgres://root@127.0.0.1:5432/test";

export default async function setup(project) {
  try {
    await build({ quiet: true });
  } catch (error) {
    if (!Array.isArray(error?.errors)) throw error;
    throw new Error("npm run build failed (esbuild printed why, above); tests of bin/clusterplane.mjs would run a stale dist/");
  }
  const postgres = await createRunDatabase();
  project.provide("postgresUrl", postgres?.url ?? "");
  return postgres?.drop;
}

async function createRunDatabase() {
  const url = process.env.CLUSTERPLANE_TEST_POSTGRES || LOCAL_POSTGRES;
  // The creation time in the name lets a later run drop what a killed run left behind.
  const name = `clusterplane_test_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString("hex")}`;
  try {
    await dropAbandoned(url);
    await adminQuery(url, `CREATE DATABASE ${name}`);
  } catch (error) {
    const why = `PostgreSQL is not reachable at ${url} (${error.message})`;
    if (process.env.CI === "true") throw new Error(`${why}; CI requires the PostgreSQL tests (start it, or set CLUSTERPLANE_TEST_POSTGRES)`);
    process.stderr.write(
      `\n${"!".repeat(100)}\n!! ${why}.\n!! SKIPPING every PostgreSQL run of test/store, test/services and test/e2e/replicas: only SQLite is tested.\n` +
        `!! Start PostgreSQL or set CLUSTERPLANE_TEST_POSTGRES=postgres://user@host:5432/db to run them.\n${"!".repeat(100)}\n\n`,
    );
    return undefined;
  }
  const target = new URL(url);
  target.pathname = `/${name}`;
  return {
    url: target.toString(),
    // FORCE: a test's server process that is still shutting down must not keep the database.
    drop: () => adminQuery(url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined),
  };
}

/** Run databases older than a day: their run was killed before its teardown. */
async function dropAbandoned(url) {
  const { rows } = await adminQuery(url, "SELECT datname FROM pg_database WHERE datname LIKE 'clusterplane\\_test\\_%'");
  const dayAgo = Date.now() / 1000 - 86_400;
  for (const { datname } of rows) {
    const created = Number(/^clusterplane_test_(\d+)_/.exec(datname)?.[1] ?? 0);
    if (created < dayAgo) await adminQuery(url, `DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`).catch(() => undefined);
  }
}

async function adminQuery(url, text) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}
