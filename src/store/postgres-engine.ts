import { createHash } from "node:crypto";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import type { Engine, TransactionOptions } from "./engine.js";
import type { Executor, Tables } from "./schema.js";

export interface PostgresOptions {
  /** `postgres://user@host:5432/name` (libpq-style parameters such as `options` and `sslmode` allowed). */
  url: string;
  /** How long a write waits for another writer (another process or this one) before UNAVAILABLE. */
  lockTimeoutMs: number;
  /** Connections in the pool; one more is kept for LISTEN while following commits. */
  poolSize?: number;
  /** The longest any one statement may run (0: no limit). */
  statementTimeoutMs?: number;
}

export const DEFAULT_POOL_SIZE = 10;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000;

/** SQLSTATEs this engine acts on (https://www.postgresql.org/docs/15/errcodes-appendix.html). */
const LOCK_NOT_AVAILABLE = "55P03";
const SERIALIZATION_FAILURE = "40001";
const DEADLOCK_DETECTED = "40P01";

/** How often a transaction that lost a serialization race is run again before the error surfaces. */
const MAX_TRANSACTION_ATTEMPTS = 5;

/**
 * PostgreSQL through `pg`'s pool. Writers are serialized the way SQLite serializes them: every
 * write transaction first takes one transaction-scoped advisory lock, so "revision = newest + 1"
 * stays gap-free and revisions commit in order. Other processes' commits are announced with a
 * NOTIFY inside the write transaction (delivered only at commit); followers LISTEN on a dedicated
 * connection, and poll as well in case a notification is lost with that connection.
 */
export class PostgresEngine implements Engine {
  readonly name = "postgres";
  readonly db: Executor;
  private open = true;
  /** Stops every `followCommits` still running, so closing ends their LISTEN connections too. */
  private readonly followers = new Set<() => void>();

  private constructor(
    pool: pg.Pool,
    private readonly connection: pg.ClientConfig,
    private readonly lockTimeoutMs: number,
    /** Advisory lock keys and the NOTIFY channel, derived from database and schema (see `identify`). */
    private readonly names: { writeLock: bigint; migrationLock: bigint; channel: string },
  ) {
    this.db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  }

  static async open(options: PostgresOptions): Promise<PostgresEngine> {
    const connection: pg.ClientConfig = {
      connectionString: options.url,
      // BIGINT (times, revisions) and NUMERIC come back as strings by default; the schema's are all
      // well below 2^53. Parsed for this engine's connections only, not for every `pg` user.
      types: { getTypeParser: numericTypeParser },
      statement_timeout: options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
      // A transaction whose client vanished (a partitioned replica) would keep the write lock until
      // the server's TCP keepalive noticed, hours by default: every replica's writes would stall.
      // None of ours waits on its client for more than milliseconds between statements.
      idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
      application_name: "clusterplane",
      // A replica must notice a dead database server instead of waiting on a half-open socket.
      keepAlive: true,
      connectionTimeoutMillis: Math.max(options.lockTimeoutMs, 1_000),
    };
    const pool = new pg.Pool({ ...connection, max: options.poolSize ?? DEFAULT_POOL_SIZE });
    // An idle connection that breaks (the server restarted) is dropped by the pool; without a
    // listener its error would end the process.
    pool.on("error", () => undefined);
    // A connection in use that breaks (a reset, a partition healing into a RST) fails its query,
    // and `pg` also emits the error on the client, which nobody listens to while it is checked
    // out: without this the process would crash. The pool drops such a client on release.
    pool.on("connect", (client) => client.on("error", () => undefined));
    try {
      const names = await identify(pool);
      return new PostgresEngine(pool, connection, options.lockTimeoutMs, names);
    } catch (error) {
      await pool.end();
      throw error;
    }
  }

  get isOpen(): boolean {
    return this.open;
  }

  writeTransaction<T>(work: (trx: Executor) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const lockTimeoutMs = Math.min(this.lockTimeoutMs, options.lockTimeoutMs ?? Infinity);
    return this.retryingSerializationFailures(() =>
      this.inTransaction(
        // One round trip (the simple protocol runs the three; both values are numbers made here):
        // lock_timeout bounds the wait for the advisory lock (and any row lock), SQLSTATE 55P03
        // after it; the advisory lock is the write lock, held until commit or rollback. READ
        // COMMITTED takes a new snapshot per statement, so every statement after the lock sees
        // all commits that came before it.
        [
          sql.raw(
            `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}; ` +
              `SELECT pg_advisory_xact_lock(${this.names.writeLock.toString()})`,
          ),
        ],
        async (trx) => {
          const result = await work(trx);
          // Delivered to listeners only when (and if) this transaction commits.
          await sql`SELECT pg_notify(${this.names.channel}, '')`.execute(trx);
          return result;
        },
      ),
    );
  }

  readTransaction<T>(work: (trx: Executor) => Promise<T>): Promise<T> {
    // One snapshot for the whole transaction, like SQLite's WAL read transaction.
    return this.retryingSerializationFailures(() =>
      this.inTransaction([sql`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`], work),
    );
  }

  async executeScript(trx: Executor, script: string): Promise<void> {
    // Without parameters `pg` uses the simple query protocol, which runs several statements.
    await sql.raw(script).execute(trx);
  }

  async clockMs(trx: Executor): Promise<number> {
    // clock_timestamp(), not now(): now() is frozen at the start of the transaction, which may
    // have waited for the write lock.
    const { rows } = await sql<{ ms: string }>`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::text AS ms`.execute(trx);
    return Number(rows[0]!.ms);
  }

  isLockTimeout(error: unknown): boolean {
    return sqlState(error) === LOCK_NOT_AVAILABLE;
  }

  /**
   * Runs `work` (the migrations) while holding a session advisory lock on a connection of its own:
   * replicas starting together on a fresh database wait here, without a timeout, for the first one
   * to finish, then each finds nothing left to do.
   */
  async whileMigrating<T>(work: () => Promise<T>): Promise<T> {
    const client = new pg.Client({ ...this.connection, statement_timeout: 0 });
    await client.connect();
    try {
      await client.query("SELECT pg_advisory_lock($1)", [this.names.migrationLock]);
      return await work();
    } finally {
      // Ending the session releases the lock even if the unlock is never sent.
      await client.end().catch(() => undefined);
    }
  }

  followCommits(intervalMs: number, onCommit: () => Promise<void>, onError: (error: unknown) => void): () => void {
    let stopped = false;
    let checking = false;
    let again = false;
    // The revision query (onCommit reads the log forward) is the truth; the notification only says when.
    const check = async () => {
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        do {
          again = false;
          await onCommit();
        } while (again && !stopped);
      } catch (error) {
        if (this.open && !stopped) onError(error);
      } finally {
        checking = false;
      }
    };
    const listener = new CommitListener(this.connection, this.names.channel, () => void check(), onError);
    void listener.start();
    // The poll catches what a lost LISTEN connection missed; with LISTEN working it rarely finds news.
    const timer = setInterval(() => void check(), Math.max(intervalMs, listener.pollFallbackMs));
    timer.unref();
    const stop = () => {
      stopped = true;
      clearInterval(timer);
      this.followers.delete(stop);
      void listener.stop();
    };
    this.followers.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    for (const stop of [...this.followers]) stop();
    // Kysely's destroy ends the pool.
    await this.db.destroy();
  }

  private async inTransaction<T>(begin: ReturnType<typeof sql>[], work: (trx: Executor) => Promise<T>): Promise<T> {
    return this.db.connection().execute(async (connection) => {
      let result: T;
      try {
        for (const statement of begin) await statement.execute(connection);
        result = await work(connection);
      } catch (error) {
        // A broken connection cannot roll back; the server does so when the session ends.
        await sql`ROLLBACK`.execute(connection).catch(() => undefined);
        throw error;
      }
      await sql`COMMIT`.execute(connection);
      return result;
    });
  }

  /**
   * Writers never race (they queue on the write lock), but a deadlock or serialization failure
   * can still come from PostgreSQL itself (a read transaction, an operator's session): run the
   * whole transaction again rather than answer INTERNAL.
   */
  private async retryingSerializationFailures<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        const state = sqlState(error);
        const retryable = state === SERIALIZATION_FAILURE || state === DEADLOCK_DETECTED;
        if (!retryable || attempt >= MAX_TRANSACTION_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
      }
    }
  }
}

/**
 * LISTENs on a connection of its own (a pooled one would be handed to other work), and
 * reconnects after it breaks, calling `onNotify` on every notification and after every
 * (re)connect, since notifications sent while it was away are lost.
 */
class CommitListener {
  /** While LISTEN works the poll is only a fallback, so it may be slow. */
  readonly pollFallbackMs = 1_000;
  private client: pg.Client | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly connection: pg.ClientConfig,
    private readonly channel: string,
    private readonly onNotify: () => void,
    private readonly onError: (error: unknown) => void,
  ) {}

  async start(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ ...this.connection, statement_timeout: 0 });
    client.on("notification", () => this.onNotify());
    client.on("error", (error) => this.reconnect(client, error));
    client.on("end", () => this.reconnect(client));
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdentifier(this.channel)}`);
      if (this.stopped) await client.end();
      else this.onNotify();
    } catch (error) {
      this.reconnect(client, error);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.client?.end().catch(() => undefined);
  }

  private reconnect(client: pg.Client, error?: unknown): void {
    if (this.stopped || this.client !== client) return;
    this.client = null;
    if (error) this.onError(error);
    client.end().catch(() => undefined);
    this.retry = setTimeout(() => void this.start(), this.pollFallbackMs);
    this.retry.unref();
  }
}

/**
 * Advisory lock keys and the NOTIFY channel for this database and schema: stores in different
 * schemas of one database (tests do that) must neither wait for each other nor wake each other.
 */
async function identify(pool: pg.Pool): Promise<{ writeLock: bigint; migrationLock: bigint; channel: string }> {
  const { rows } = await pool.query<{ db: string; schema: string | null }>("SELECT current_database() AS db, current_schema() AS schema");
  const scope = `${rows[0]!.db}/${rows[0]!.schema ?? "public"}`;
  const digest = createHash("sha256").update(`clusterplane:${scope}`).digest();
  return {
    writeLock: digest.readBigInt64BE(0),
    migrationLock: digest.readBigInt64BE(8),
    channel: `clusterplane_commits_${digest.subarray(16, 24).toString("hex")}`,
  };
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

function numericTypeParser(oid: number, format?: string): (value: string) => unknown {
  if (oid === INT8_OID || oid === NUMERIC_OID) return Number;
  return pg.types.getTypeParser(oid, format as "text");
}

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
