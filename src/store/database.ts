import { MIGRATIONS, scriptFor, type Migration } from "./migrations.js";
import type { Engine } from "./engine.js";
import { isPostgresUrl, sqlitePath } from "./location.js";
import type { Executor } from "./schema.js";
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
  const engine = await openEngine(location, lockTimeoutMs, pool);
  try {
    await engine.whileMigrating(() => whileLocked(engine, lockTimeoutMs, () => applyMigrations(engine, migrations)));
  } catch (error) {
    await engine.close();
    throw error;
  }
  return engine;
}

/**
 * Opens the database `location` names without applying migrations, for whoever applies them in a
 * transaction of its own (see `applyMigrationsIn`); everything else wants `openDatabase`.
 */
export async function openEngine(location: string, lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MS, pool: PoolSettings = {}): Promise<Engine> {
  return isPostgresUrl(location)
    ? // Loaded only when asked for: a SQLite server never loads the PostgreSQL driver.
      await (await import("./postgres-engine.js")).PostgresEngine.open({ url: location, lockTimeoutMs, poolSize: pool.poolSize, statementTimeoutMs: pool.statementTimeoutMs })
    : await SqliteEngine.open(sqlitePath(location), lockTimeoutMs);
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
  await engine.writeTransaction((trx) => applyMigrationsIn(engine, trx, migrations));
}

/**
 * Applies pending migrations inside the caller's write transaction `trx` on `engine`: rolling it
 * back takes them back too (both engines' DDL is transactional).
 */
export async function applyMigrationsIn(engine: Engine, trx: Executor, migrations: readonly Migration[] = MIGRATIONS): Promise<void> {
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
}

/** The highest migration version applied, for readiness checks. */
export async function schemaVersion(engine: Engine): Promise<number> {
  return schemaVersionIn(engine.db);
}

/** The highest migration version applied, read through `db` (a transaction's, to read it in one snapshot). */
export async function schemaVersionIn(db: Executor): Promise<number> {
  const row = await db
    .selectFrom("schema_migrations")
    .select((eb) => eb.fn.max("version").as("version"))
    .executeTakeFirst();
  return Number(row?.version ?? 0);
}

/** True when every known migration has been applied. */
export async function isSchemaCurrent(engine: Engine, migrations: readonly Migration[] = MIGRATIONS): Promise<boolean> {
  return (await schemaVersion(engine)) >= latestSchemaVersion(migrations);
}

/** The version a database is at once every migration of `migrations` has been applied. */
export function latestSchemaVersion(migrations: readonly Migration[] = MIGRATIONS): number {
  return Math.max(0, ...migrations.map((m) => m.version));
}
