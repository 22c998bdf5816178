import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { MIGRATIONS, type Migration } from "./migrations.js";

export type Db = Database.Database;

/**
 * Opens (creating if needed) the SQLite database at `path` (":memory:" for tests), with WAL
 * journaling and foreign keys on, and applies every pending migration.
 */
/** How long a write waits for another process's write lock before answering UNAVAILABLE. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5_000;

export function openDatabase(
  path: string,
  migrations: readonly Migration[] = MIGRATIONS,
  lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MS,
): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(lockTimeoutMs))}`);
    // Switching a fresh file to WAL (and the recovery of one) can report SQLITE_BUSY without
    // waiting in the busy handler when another process does the same at that moment.
    retryWhileBusy(() => db.pragma("journal_mode = WAL"), lockTimeoutMs);
    db.pragma("foreign_keys = ON");
    db.pragma("synchronous = NORMAL");
    retryWhileBusy(() => applyMigrations(db, migrations), lockTimeoutMs);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

const BUSY_RETRY_MS = 10;

function retryWhileBusy<T>(step: () => T, timeoutMs: number): T {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return step();
    } catch (error) {
      const busy = (error as { code?: string }).code?.startsWith("SQLITE_BUSY") ?? false;
      if (!busy || Date.now() >= deadline) throw error;
      // Opening happens once at start, before anything else runs: blocking here is fine.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, BUSY_RETRY_MS);
    }
  }
}

/**
 * Applies pending migrations inside one write-locked (IMMEDIATE) transaction: processes starting
 * together on a fresh file queue up on the lock, and each one after the first finds nothing to do.
 */
export function applyMigrations(db: Db, migrations: readonly Migration[]): void {
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
    const applied = new Set(db.prepare("SELECT version FROM schema_migrations").pluck().all() as number[]);
    const record = db.prepare("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)");
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      db.exec(migration.sql);
      record.run(migration.version, migration.description, Date.now());
    }
  }).immediate();
}

/** The highest migration version applied, for readiness checks. */
export function schemaVersion(db: Db): number {
  return (db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").pluck().get() as number) ?? 0;
}

/** True when every known migration has been applied. */
export function isSchemaCurrent(db: Db, migrations: readonly Migration[] = MIGRATIONS): boolean {
  const latest = Math.max(0, ...migrations.map((m) => m.version));
  return schemaVersion(db) >= latest;
}
