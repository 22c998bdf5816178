import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** This run's PostgreSQL database (see scripts/test-global-setup.mjs), or "" when none is reachable. */
    postgresUrl: string;
  }
}

/** A fresh, empty database for one test, and how to remove it. */
export interface TestDatabase {
  /** What `--db` / `openStores({ path })` take: a SQLite file or a PostgreSQL URL. */
  location: string;
  drop(): Promise<void>;
}

/** One engine the store suites run on. */
export interface TestEngine {
  name: "sqlite" | "postgres";
  fresh(): Promise<TestDatabase>;
}

export const SQLITE: TestEngine = {
  name: "sqlite",
  async fresh() {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-test-"));
    return { location: join(dir, "test.db"), drop: async () => rmSync(dir, { recursive: true, force: true }) };
  },
};

/**
 * PostgreSQL, when the run has a database: each test gets a schema of its own in it (its URL sets
 * the search_path), so tests and vitest workers never see each other's tables, locks or
 * notifications (the engine derives those from database and schema).
 */
function postgres(runUrl: string): TestEngine {
  return {
    name: "postgres",
    async fresh() {
      const schema = `t_${randomBytes(6).toString("hex")}`;
      await admin(runUrl, `CREATE SCHEMA ${schema}`);
      const url = new URL(runUrl);
      url.searchParams.set("options", `-c search_path=${schema}`);
      return {
        location: url.toString(),
        drop: () => admin(runUrl, `DROP SCHEMA IF EXISTS ${schema} CASCADE`),
      };
    },
  };
}

/** SQLite always; PostgreSQL too when the run has one (the global setup says loudly when not). */
export function testEngines(): TestEngine[] {
  const url = inject("postgresUrl");
  return url ? [SQLITE, postgres(url)] : [SQLITE];
}

/** PostgreSQL alone, or nothing: for tests of what only PostgreSQL does. */
export function postgresEngines(): TestEngine[] {
  return testEngines().filter((engine) => engine.name === "postgres");
}

async function admin(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
