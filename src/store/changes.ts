import { AsyncLocalStorage } from "node:async_hooks";
import type { Kysely } from "kysely";
import { unavailable } from "../core/errors.js";
import type { Engine, TransactionOptions } from "./engine.js";
import type { Executor, Tables } from "./schema.js";

/**
 * What changed in the store. Every write appends one entry per changed resource to the change
 * log, in its own transaction; in-memory views (routing, the sync loop, Watch streams) follow the
 * log forward, whichever process wrote it.
 */
export type Change =
  | { kind: "pool"; org: string; name: string }
  | { kind: "cluster"; org: string; name: string }
  /** The sync loop's verdict on a cluster changed (routing eligibility may follow). */
  | { kind: "cluster-sync"; org: string; name: string }
  | { kind: "queue"; org: string; name: string }
  | { kind: "project"; org: string; id: string }
  | { kind: "label"; org: string; name: string }
  | { kind: "assignment"; org: string; project: string; domain: string; workflow: string; launchPlan: string }
  | { kind: "default-label"; org: string };

export type ChangeKind = Change["kind"];

/** One committed change, as read back from the log. */
export interface LogEntry {
  revision: number;
  change: Change;
  op: "put" | "delete";
  /** The resource as the change left it (domain object, dates revived); null when deleted. */
  state: unknown;
  commitTime: Date;
}

/** Told of every committed change in order; a returned promise is awaited before the next entry. */
export type ChangeListener = (change: Change, entry: LogEntry) => unknown;

/** Reads a resource as stored now (inside the writing transaction); undefined, null or false when it is gone. */
export type Snapshot = (change: Change) => unknown;

/**
 * Where the revision of each kind's row is kept, so every resource says which change last touched
 * it: the table and the columns (with their values) that identify the row.
 */
const REVISION_COLUMNS: Record<ChangeKind, { table: keyof Tables; key: (change: Change) => Record<string, string> }> = {
  pool: { table: "cluster_pools", key: (c) => ({ org: c.org, name: nameOf(c) }) },
  cluster: { table: "clusters", key: (c) => ({ org: c.org, name: nameOf(c) }) },
  "cluster-sync": { table: "cluster_sync_status", key: (c) => ({ org: c.org, cluster: nameOf(c) }) },
  queue: { table: "queues", key: (c) => ({ org: c.org, name: nameOf(c) }) },
  project: { table: "projects", key: (c) => ({ org: c.org, id: nameOf(c) }) },
  label: { table: "cluster_labels", key: (c) => ({ org: c.org, name: nameOf(c) }) },
  assignment: {
    table: "execution_cluster_labels",
    key: (c) => {
      const { org, project, domain, workflow, launchPlan } = c as Extract<Change, { kind: "assignment" }>;
      return { org, project, domain, workflow, launch_plan: launchPlan };
    },
  },
  "default-label": { table: "default_cluster_labels", key: (c) => ({ org: c.org }) },
};

/** A readable name of the changed resource: cluster name, project id, `project/domain/workflow/launch-plan`. */
export function nameOf(change: Change): string {
  switch (change.kind) {
    case "project":
      return change.id;
    case "assignment":
      return [change.project, change.domain, change.workflow, change.launchPlan].join("/");
    case "default-label":
      return "";
    default:
      return change.name;
  }
}

interface LogRow {
  revision: number;
  change_key: string;
  op: "put" | "delete";
  state: string | null;
  commit_time: number;
}

const READ_BATCH = 500;

/** The transaction a piece of work runs in; every repository query inside it goes there. */
interface UnitOfWork {
  db: Executor;
  writing: boolean;
  /** The revision the next recorded change gets: read once per unit, as the writer holds the lock. */
  nextRevision?: number;
}

const NO_CHANGE: Change = { kind: "default-label", org: "" };

/**
 * The one write path and the change log.
 *
 * `write(fn)` runs `fn` in a transaction that holds the write lock from its start (a read-to-write
 * upgrade can never fail half-way; another process's lock is waited for up to the lock timeout,
 * then UNAVAILABLE). Inside it, repositories call `record(change)`; the entry is committed with the
 * rows it describes or not at all. Every query a repository runs inside `fn` goes to that
 * transaction (`db` follows the unit of work through the awaits), so no code can read around it.
 *
 * After commit, and whenever another process has committed (the engine's commit probe, polled by
 * `follow`), `catchUp` reads the log forward from the last revision applied and tells every
 * listener — the same path for this process's writes and everybody else's.
 */
export class ChangeLog {
  private readonly listeners = new Set<ChangeListener>();
  private readonly snapshots = new Map<ChangeKind, Snapshot>();
  private readonly resyncListeners = new Set<() => unknown>();
  private readonly units = new AsyncLocalStorage<UnitOfWork>();
  /** Set while listeners are being told: a listener's own write must not wait for its catch-up. */
  private readonly publishing = new AsyncLocalStorage<true>();
  private lastApplied = 0;
  private catchUpWanted = false;
  private catchingUp: Promise<void> | null = null;
  private stopFollowing: (() => void) | null = null;
  /** Writers waiting for their entries to reach the listeners. */
  private waiters: { revision: number; resolve: () => void; reject: (error: unknown) => void }[] = [];

  constructor(private readonly engine: Engine) {}

  /** Starts after everything already in the log: whoever opens it reads the current state itself. */
  async open(): Promise<void> {
    this.lastApplied = await this.currentRevision();
  }

  /** Where a query runs: the current unit of work's transaction, or the shared handle outside one. */
  get db(): Executor {
    return this.units.getStore()?.db ?? this.engine.db;
  }

  /** The database's clock (see `Engine.clockMs`), read in the current unit of work. */
  clockMs(): Promise<number> {
    return this.engine.clockMs(this.db);
  }

  /** Tells the log how to read each kind's current state, for the entries it appends. */
  describe(kind: ChangeKind, snapshot: Snapshot): void {
    this.snapshots.set(kind, snapshot);
  }

  /** Runs `fn` as one unit of work; nested calls join the outer one. */
  async write<T>(fn: () => Promise<T>, options?: TransactionOptions): Promise<T> {
    const current = this.units.getStore();
    if (current?.writing) return fn();
    if (current) throw new Error("a unit of work cannot start inside a read transaction");
    const unit: UnitOfWork = { db: this.engine.db, writing: true };
    let result: T;
    try {
      result = await this.engine.writeTransaction((trx) => {
        // The engine may run the transaction again (after a serialization failure): each run
        // starts the unit afresh, so its revisions are read again under the lock.
        unit.db = trx;
        unit.nextRevision = undefined;
        return this.units.run(unit, fn);
      }, options);
    } catch (error) {
      if (this.engine.isLockTimeout(error)) {
        throw unavailable("the database is locked by another writer for longer than the lock timeout; retry the request");
      }
      throw error;
    }
    // The write returns once its own entries reached every listener (routing answers with it), not
    // when the log is drained: under a stream of writes that could take until the stream ends.
    if (unit.nextRevision !== undefined) await this.appliedThrough(unit.nextRevision - 1);
    return result;
  }

  /** Appends a change to the log and stamps its revision on the row; only inside `write`. */
  async record(anyChange: Change): Promise<void> {
    const unit = this.units.getStore();
    if (!unit?.writing) throw new Error(`change ${anyChange.kind} recorded outside a unit of work`);
    const change = keyOf(anyChange);
    // Writers hold the write lock, so the next revision is known before the entry is appended:
    // the row is stamped first and its state read once, revision included.
    const revision = unit.nextRevision ?? (await this.currentRevision()) + 1;
    await stampRevision(unit.db, change, revision);
    const state = stateOf(await this.snapshots.get(change.kind)?.(change));
    await unit.db
      .insertInto("change_log")
      .values({
        revision,
        org: change.org,
        kind: change.kind,
        name: nameOf(change),
        change_key: JSON.stringify(change),
        op: state === undefined ? "delete" : "put",
        state: state === undefined ? null : JSON.stringify(state),
        commit_time: Date.now(),
      })
      .execute();
    unit.nextRevision = revision + 1;
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The revision of the last committed change (0 for a new database). */
  async currentRevision(): Promise<number> {
    // The newest entry is never compacted away, so the largest revision present is the newest ever.
    const row = await this.db
      .selectFrom("change_log")
      .select((eb) => eb.fn.max("revision").as("revision"))
      .executeTakeFirst();
    return Number(row?.revision ?? 0);
  }

  /** Runs `read` in one read transaction: what it reads is the state at the returned revision. */
  async readAt<T>(read: () => Promise<T>): Promise<{ revision: number; value: T }> {
    const readBoth = async () => ({ revision: await this.currentRevision(), value: await read() });
    if (this.units.getStore()) return readBoth();
    return this.engine.readTransaction((trx) => this.units.run({ db: trx, writing: false }, readBoth));
  }

  /** The last revision this process has told its listeners about. */
  get appliedRevision(): number {
    return this.lastApplied;
  }

  /** Entries after `revision`, oldest first; `from` older than the retention is the caller's problem (see `oldestRetained`). */
  async readAfter(revision: number, limit = READ_BATCH): Promise<LogEntry[]> {
    const rows = await this.db
      .selectFrom("change_log")
      .select(["revision", "change_key", "op", "state", "commit_time"])
      .where("revision", ">", revision)
      .orderBy("revision")
      .limit(limit)
      .execute();
    return rows.map(toEntry);
  }

  /**
   * The oldest revision a reader may resume after: every entry after it is still in the log.
   * Resuming from anything older has missed compacted changes.
   */
  async oldestResumable(): Promise<number> {
    const row = await this.db.selectFrom("change_log_meta").select("compacted_through").where("id", "=", 1).executeTakeFirst();
    return Number(row?.compacted_through ?? 0);
  }

  /**
   * Removes the entries beyond the retention: more than `maxEntries` behind the newest and older
   * than `maxAgeMs` (either rule alone keeps an entry). The newest entry is always kept. Returns
   * how many were removed.
   */
  compact(retention: { maxEntries: number; maxAgeMs: number }, now = Date.now()): Promise<number> {
    return this.write(async () => {
      const newest = await this.currentRevision();
      const byCount = newest - retention.maxEntries;
      const oldEnough = await this.db
        .selectFrom("change_log")
        .select((eb) => eb.fn.max("revision").as("revision"))
        .where("commit_time", "<", now - retention.maxAgeMs)
        .where("revision", "<", newest)
        .executeTakeFirst();
      const byAge = Number(oldEnough?.revision ?? 0);
      // An entry goes only when both rules let it go: beyond the newest maxEntries AND older than maxAgeMs.
      const through = Math.min(newest - 1, byCount, byAge);
      if (through <= (await this.oldestResumable())) return 0;
      const { numDeletedRows } = await this.db.deleteFrom("change_log").where("revision", "<=", through).executeTakeFirstOrThrow();
      await this.db.updateTable("change_log_meta").set({ compacted_through: through }).where("id", "=", 1).execute();
      return Number(numDeletedRows);
    });
  }

  /**
   * Reads the log forward from the last applied revision and tells the listeners; resolves once
   * everything committed before the call has been told. One catch-up runs at a time: a call while
   * it runs is folded into it (it reads once more before it ends), and a listener that writes does
   * not wait for the catch-up that is telling it.
   */
  catchUp(): Promise<void> {
    this.catchUpWanted = true;
    if (this.publishing.getStore()) return Promise.resolve();
    // Outside any unit of work: the reads must not go to a transaction that is about to end.
    this.catchingUp ??= this.units.exit(() => this.publishing.run(true, () => this.readForward()));
    return this.catchingUp;
  }

  /**
   * Resolves once the listeners have been told of every entry up to `revision` (at once when they
   * have); a listener's own write does not wait for the catch-up that is telling that listener.
   */
  private appliedThrough(revision: number): Promise<void> {
    if (this.lastApplied >= revision) return Promise.resolve();
    if (this.publishing.getStore()) {
      this.catchUpWanted = true;
      return Promise.resolve();
    }
    const applied = new Promise<void>((resolve, reject) => this.waiters.push({ revision, resolve, reject }));
    // A failed catch-up rejects the waiters; the catch-up's own promise needs no other handler.
    this.catchUp().catch(() => undefined);
    return applied;
  }

  private async readForward(): Promise<void> {
    // Every path below awaits before it ends, so `catchingUp` is set before this clears it.
    try {
      while (this.catchUpWanted) {
        this.catchUpWanted = false;
        let batch: LogEntry[];
        do {
          batch = await this.readAfter(this.lastApplied);
          // Revisions only skip where entries were compacted away (or a writer rolled back): only
          // then is it worth asking whether this process fell behind the retention.
          if (batch.length > 0 && batch[0]!.revision > this.lastApplied + 1 && (await this.resyncIfCompactedPast())) {
            this.catchUpWanted = true;
            break;
          }
          for (const entry of batch) {
            this.lastApplied = entry.revision;
            await this.publish(entry);
            this.releaseWaiters();
          }
        } while (batch.length === READ_BATCH);
      }
    } catch (error) {
      for (const waiter of this.waiters.splice(0)) waiter.reject(error);
      throw error;
    } finally {
      this.catchingUp = null;
    }
  }

  private releaseWaiters(): void {
    if (this.waiters.length === 0) return;
    const waiting: typeof this.waiters = [];
    for (const waiter of this.waiters) {
      if (waiter.revision <= this.lastApplied) waiter.resolve();
      else waiting.push(waiter);
    }
    this.waiters = waiting;
  }

  /**
   * Called when this process fell so far behind that compaction removed entries it had not
   * applied (it was stopped or blocked for longer than the retention): what it holds in memory
   * can no longer be brought up to date entry by entry, and must be read again whole.
   */
  onResync(listener: () => unknown): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  /** Reads everything again (see onResync) when entries after the last applied one are gone; says whether it did. */
  private async resyncIfCompactedPast(): Promise<boolean> {
    const oldest = await this.oldestResumable();
    if (this.lastApplied >= oldest) return false;
    this.lastApplied = await this.currentRevision();
    for (const listener of this.resyncListeners) {
      try {
        await listener();
      } catch (error) {
        this.onListenerError(error, NO_CHANGE);
      }
    }
    this.releaseWaiters();
    return true;
  }

  /** Follows commits by other processes, checking every `intervalMs` (see Engine.followCommits). */
  follow(intervalMs: number): void {
    this.unfollow();
    this.stopFollowing = this.engine.followCommits(intervalMs, () => this.catchUp(), (error) => this.onListenerError(error, NO_CHANGE));
  }

  unfollow(): void {
    this.stopFollowing?.();
    this.stopFollowing = null;
  }

  /** Where listener failures go; the server points it at its logger. */
  onListenerError: (error: unknown, change: Change) => void = (error) => {
    process.emitWarning(`change listener failed: ${(error as Error).message}`);
  };

  /**
   * The write is already committed: a listener that throws must neither turn it into an error for
   * the caller nor keep the listeners after it from hearing of it.
   */
  private async publish(entry: LogEntry): Promise<void> {
    for (const listener of this.listeners) {
      try {
        await listener(entry.change, entry);
      } catch (error) {
        this.onListenerError(error, entry.change);
      }
    }
  }
}

/** Stamps `revision` on the row the change names. */
async function stampRevision(db: Executor, change: Change, revision: number): Promise<void> {
  const { table, key } = REVISION_COLUMNS[change.kind];
  // The table is chosen at run time; every one of them has a revision column and the key columns.
  let update = (db as unknown as Kysely<Record<string, { revision: number } & Record<string, unknown>>>)
    .updateTable(table)
    .set({ revision });
  for (const [column, value] of Object.entries(key(change))) update = update.where(column, "=", value);
  await update.execute();
}

/** Only the identifying fields: callers may pass richer objects (a request message) as the key. */
function keyOf(change: Change): Change {
  switch (change.kind) {
    case "project":
      return { kind: change.kind, org: change.org, id: change.id };
    case "assignment": {
      const { org, project, domain, workflow, launchPlan } = change;
      return { kind: change.kind, org, project, domain, workflow, launchPlan };
    }
    case "default-label":
      return { kind: change.kind, org: change.org };
    default:
      return { kind: change.kind, org: change.org, name: change.name };
  }
}

/** The resource as stored now, or undefined when there is none. */
function stateOf(state: unknown): unknown {
  return state === null || state === false ? undefined : state;
}

function toEntry(row: LogRow): LogEntry {
  let state: unknown;
  return {
    revision: row.revision,
    change: JSON.parse(row.change_key) as Change,
    op: row.op,
    // Parsed on first use: routing re-reads the row it needs, only watchers look at the state.
    get state() {
      if (state === undefined) state = row.state === null ? null : JSON.parse(row.state, reviveTimes);
      return state;
    },
    commitTime: new Date(row.commit_time),
  };
}

/** Domain objects carry their times as Dates, named `…Time`; JSON has them as ISO strings. */
function reviveTimes(key: string, value: unknown): unknown {
  return typeof value === "string" && key.endsWith("Time") ? new Date(value) : value;
}
