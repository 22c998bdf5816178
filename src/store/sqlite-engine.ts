import Database, { SqliteError, type Statement } from "better-sqlite3";
import { Kysely, SqliteDialect, sql, type RawBuilder, type SqliteDatabase } from "kysely";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Engine, TransactionOptions } from "./engine.js";
import type { Executor, Tables } from "./schema.js";

/**
 * SQLite through better-sqlite3: one connection, which Kysely's SqliteDialect hands to one piece of
 * work at a time. WAL journaling lets other processes read while one writes; between processes the
 * write lock is SQLite's, waited for up to the busy timeout.
 */
export class SqliteEngine implements Engine {
  readonly name = "sqlite";
  readonly db: Executor;

  private constructor(
    private readonly raw: Database.Database,
    private readonly lockTimeoutMs: number,
  ) {
    this.db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  }

  /** Opens (creating if needed) the file at `path` (":memory:" for tests) with WAL and foreign keys on. */
  static async open(path: string, lockTimeoutMs: number): Promise<SqliteEngine> {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const raw = new Database(path);
    try {
      raw.pragma(`busy_timeout = ${wholeMs(lockTimeoutMs)}`);
      // Switching a fresh file to WAL (and the recovery of one) can report SQLITE_BUSY without
      // waiting in the busy handler when another process does the same at that moment.
      await retryWhileBusy(() => raw.pragma("journal_mode = WAL"), lockTimeoutMs);
      raw.pragma("foreign_keys = ON");
      raw.pragma("synchronous = NORMAL");
    } catch (error) {
      raw.close();
      throw error;
    }
    return new SqliteEngine(raw, lockTimeoutMs);
  }

  /**
   * Opens the existing file at `path` for reading only: nothing this engine does can change it (a
   * write fails), and it is never created. Another process may go on writing it meanwhile (WAL).
   */
  static async openReadOnly(path: string, lockTimeoutMs: number): Promise<SqliteEngine> {
    const raw = new Database(path, { readonly: true, fileMustExist: true });
    try {
      raw.pragma(`busy_timeout = ${wholeMs(lockTimeoutMs)}`);
    } catch (error) {
      raw.close();
      throw error;
    }
    return new SqliteEngine(raw, lockTimeoutMs);
  }

  get isOpen(): boolean {
    return this.raw.open;
  }

  async writeTransaction<T>(work: (trx: Executor) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.db.connection().execute(async (connection) => {
      const lockTimeoutMs = options.lockTimeoutMs === undefined ? undefined : Math.min(this.lockTimeoutMs, options.lockTimeoutMs);
      if (lockTimeoutMs !== undefined) await this.setBusyTimeout(connection, lockTimeoutMs);
      try {
        // IMMEDIATE takes the write lock now, not at the first write: no read-to-write upgrade can fail.
        return await this.inTransaction(connection, sql`BEGIN IMMEDIATE`, work);
      } finally {
        if (lockTimeoutMs !== undefined) await this.setBusyTimeout(connection, this.lockTimeoutMs);
      }
    });
  }

  async readTransaction<T>(work: (trx: Executor) => Promise<T>): Promise<T> {
    // A deferred transaction reads one WAL snapshot from its first read to its end.
    return this.db.connection().execute((connection) => this.inTransaction(connection, sql`BEGIN`, work));
  }

  async executeScript(_trx: Executor, script: string): Promise<void> {
    // The caller holds the one connection inside its transaction, so running the script on the
    // raw handle (the query layer runs one statement at a time) is part of that transaction.
    this.raw.exec(script);
  }

  whileMigrating<T>(work: () => Promise<T>): Promise<T> {
    // The migrations' IMMEDIATE transaction is the lock; `openDatabase` retries a busy start.
    return work();
  }

  async clockMs(): Promise<number> {
    return Date.now();
  }

  isLockTimeout(error: unknown): boolean {
    return isBusy(error);
  }

  followCommits(intervalMs: number, onCommit: () => Promise<void>, onError: (error: unknown) => void): () => void {
    let seen = -1;
    let polling = false;
    const poll = async () => {
      if (polling) return;
      polling = true;
      try {
        // data_version changes only when another connection has committed: an idle poll costs one pragma.
        const { rows } = await sql<{ data_version: number }>`PRAGMA data_version`.execute(this.db);
        const version = rows[0]!.data_version;
        if (version === seen) return;
        await onCommit();
        // Only once caught up: after a failure the next poll must try again.
        seen = version;
      } catch (error) {
        // A closed database ends following; a briefly locked one is tried again at the next poll.
        if (!this.isOpen) stop();
        else onError(error);
      } finally {
        polling = false;
      }
    };
    const timer = setInterval(() => void poll(), intervalMs);
    timer.unref();
    const stop = () => clearInterval(timer);
    return stop;
  }

  async close(): Promise<void> {
    if (this.raw.open) await this.db.destroy();
  }

  private async inTransaction<T>(connection: Executor, begin: RawBuilder<unknown>, work: (trx: Executor) => Promise<T>): Promise<T> {
    await begin.execute(connection);
    let result: T;
    try {
      result = await work(connection);
    } catch (error) {
      // SQLite may have rolled back already (some errors end the transaction themselves).
      if (this.raw.inTransaction) await sql`ROLLBACK`.execute(connection);
      throw error;
    }
    await sql`COMMIT`.execute(connection);
    return result;
  }

  private async setBusyTimeout(connection: Executor, ms: number): Promise<void> {
    await sql.raw(`PRAGMA busy_timeout = ${wholeMs(ms)}`).execute(connection);
  }
}

/**
 * Kysely prepares every statement it runs; better-sqlite3 statements can be reused, and the
 * change log runs the same few on every write, so keep them by their text.
 */
function withStatementCache(raw: Database.Database): SqliteDatabase {
  const MAX_STATEMENTS = 1_000;
  const statements = new Map<string, Statement>();
  return {
    close: () => raw.close(),
    prepare(text: string) {
      let statement = statements.get(text);
      if (!statement) {
        // The cache only ever sees the query layer's texts, but never let it grow without bound.
        if (statements.size >= MAX_STATEMENTS) statements.clear();
        statement = raw.prepare(text);
        statements.set(text, statement);
      }
      return statement as unknown as ReturnType<SqliteDatabase["prepare"]>;
    },
  };
}

function wholeMs(ms: number): number {
  return Math.max(0, Math.floor(ms));
}

const BUSY_RETRY_MS = 10;

async function retryWhileBusy<T>(step: () => T, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return step();
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, BUSY_RETRY_MS));
    }
  }
}

function isBusy(error: unknown): boolean {
  return error instanceof SqliteError && (error.code === "SQLITE_BUSY" || error.code.startsWith("SQLITE_BUSY_"));
}
