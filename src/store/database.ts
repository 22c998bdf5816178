import { MIGRATIONS, type Migration } from "./migrations.js";
import type { Engine } from "./engine.js";
import { SqliteEngine } from "./sqlite-engine.js";

/** How long a write waits for another process's write lock before answering UNAVAILABLE. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5_000;

/**
 * Opens (creating if needed) the database at `path` (":memory:" for tests) and applies every
 * pending migration.
 */
export async function openDatabase(
  path: string,
  migrations: readonly Migration[] = MIGRATIONS,
  lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MS,
): Promise<Engine> {
  const engine = await SqliteEngine.open(path, lockTimeoutMs);
  try {
    await whileLocked(engine, lockTimeoutMs, () => applyMigrations(engine, migrations));
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
    await engine.executeScript(trx, SCHEMA_MIGRATIONS_TABLE);
    const applied = new Set((await trx.selectFrom("schema_migrations").select("version").execute()).map((row) => Number(row.version)));
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      await engine.executeScript(trx, migration.sql);
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
