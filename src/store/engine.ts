import type { Executor } from "./schema.js";

export interface TransactionOptions {
  /** Wait at most this long for another process's write lock (default: the engine's lock timeout). */
  lockTimeoutMs?: number;
}

/**
 * What differs between database engines, and nothing else: every query is written once with the
 * query layer (`db`); an engine says how a write-locking transaction starts, how a read sees one
 * consistent state, how to notice another process's commit, and which error means "locked".
 */
export interface Engine {
  readonly name: string;
  /** The query layer over this engine's connection(s), for work outside a transaction. */
  readonly db: Executor;
  readonly isOpen: boolean;

  /**
   * Runs `work` on one connection inside a transaction that holds the database's write lock
   * from its start (so a read-then-write can never fail half-way); commits when `work`
   * resolves, rolls back when it throws. Waiting for the lock past the timeout fails with an
   * error `isLockTimeout` recognizes. An engine may run `work` again in a new transaction after
   * a serialization failure or deadlock, so `work` must keep no state across runs.
   */
  writeTransaction<T>(work: (trx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T>;

  /** Runs `work` on one connection inside a read transaction: everything it reads is one state. */
  readTransaction<T>(work: (trx: Executor) => Promise<T>): Promise<T>;

  /** Runs a migration's script (several statements) inside the transaction of `trx`. */
  executeScript(trx: Executor, script: string): Promise<void>;

  /**
   * Runs `work` (applying migrations) so that processes starting together on one database do it
   * one after the other; SQLite's write transaction already queues them.
   */
  whileMigrating<T>(work: () => Promise<T>): Promise<T>;

  /**
   * The time in milliseconds by the clock every process sharing this database agrees on: the
   * database server's for PostgreSQL, the machine's for a SQLite file (its processes share one
   * kernel clock). Leases expire by it, so replicas on different machines need no clock agreement.
   */
  clockMs(trx: Executor): Promise<number>;

  /** Whether `error` says another writer held the lock for longer than the lock timeout. */
  isLockTimeout(error: unknown): boolean;

  /**
   * Calls `onCommit` whenever another connection may have committed, checking every `intervalMs`
   * (SQLite: `PRAGMA data_version`; a push such as LISTEN/NOTIFY may call it sooner). A check
   * counts as seen only once `onCommit` resolved, so a failed catch-up is retried. Returns the
   * function that stops following.
   */
  followCommits(intervalMs: number, onCommit: () => Promise<void>, onError: (error: unknown) => void): () => void;

  close(): Promise<void>;
}
