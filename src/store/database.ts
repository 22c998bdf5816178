import { MIGRATIONS, scriptFor, type Migration } from "./migrations.js";
import type { Engine } from "./engine.js";
import { isPostgresUrl, sqlitePath } from "./location.js";
import { SqliteEngine } from "./sqlite-engine.js";

/** How long a write waits for another process's write lock before answering UNAVAILABLE. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5_000;

/** Settings only PostgreSQL has (SQLite has one connection and no statement timeout). */
export interface PoolSettings {
  poolSize?: number;
  statementTimeoutMs?: number;
}

/**
 * Opens the database `location` names and applies every pending migration: a
 * `postgres://` / `postgresql://` URL opens PostgreSQL; anything else is a SQLite file (created if
 * needed), `sqlite:PATH` or ":memory:" for tests.
 */
export async function openDatabase(
  location: string,
  migrations: readonly Migration[] = MIGRATIONS,
  lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MS,
  pool: PoolSettings = {},
): Promise<Engine> {
  const engine = isPostgresUrl(location)
    ? // Loaded only when asked for: a SQLite server never loads the PostgreSQL driver.
      await (await import("./postgres-engine.js")).PostgresEngine.open({ url: location, lockTimeoutMs, poolSize: pool.poolSize, statementTimeoutMs: pool.statementTimeoutMs })
    : await SqliteEngine.open(sqlitePath(location), lockTimeoutMs);
  try {
    await engine.whileMigrating(() => whileLocked(engine, lockTimeoutMs, () => applyMigrations(engine, migrations)));
  } catch (error) {
    await engine.close();
    throw error;
  }
  return engine;
}

const LOCKED_RETRY_MS = 10;

/**
 * Retries `step` while another process holds the lock, up to `timeoutMs`: opening a fresh file
 * from two processes at once can report "locked" without waiting in the engine's lock wait.
 */
async function whileLocked(engine: Engine, timeoutMs: number, step: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if (!engine.isLockTimeout(error) || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, LOCKED_RETRY_MS));
    }
  }
}

const SCHEMA_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`;

/**
 * Applies pending migrations inside one write-locked transaction: processes starting together on
 * a fresh database queue up on the lock, and each one after the first finds nothing to do.
 */
export async function applyMigrations(engine: Engine, migrations: readonly Migration[]): Promise<void> {
  await engine.writeTransaction(async (trx) => {
    await engine.executeScript(trx, scriptFor(engine.name, SCHEMA_MIGRATIONS_TABLE));
    const applied = new Set((await trx.selectFrom("schema_migrations").select("version").execute()).map((row) => Number(row.version)));
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      await engine.executeScript(trx, scriptFor(engine.name, migration.sql));
      await trx
        .insertInto("schema_migrations")
        .values({ version: migration.version, description: migration.description, applied_at: Date.now() })
        .execute();
    }
  });
}

/** The highest migration version applied, for readiness checks. */
export async function schemaVersion(engine: Engine): Promise<number> {
  const row = await engine.db
    .selectFrom("schema_migrations")
    .select((eb) => eb.fn.max("version").as("version"))
    .executeTakeFirst();
  return Number(row?.version ?? 0);
}

/** True when every known migration has been applied. */
export async function isSchemaCurrent(engine: Engine, migrations: readonly Migration[] = MIGRATIONS): Promise<boolean> {
  const latest = Math.max(0, ...migrations.map((m) => m.version));
  return (await schemaVersion(engine)) >= latest;
}
