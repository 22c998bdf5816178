import { SqliteError, type Statement } from "better-sqlite3";
import { unavailable } from "../core/errors.js";
import type { Db } from "./database.js";

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

export type ChangeListener = (change: Change, entry: LogEntry) => void;

/** Reads a resource as stored now (inside the writing transaction); undefined, null or false when it is gone. */
export type Snapshot = (change: Change) => unknown;

/** Where the revision of each kind's row is kept, so every resource says which change last touched it. */
const REVISION_COLUMNS: Record<ChangeKind, { table: string; where: string; key: (change: Change) => unknown[] }> = {
  pool: { table: "cluster_pools", where: "org = ? AND name = ?", key: (c) => [c.org, nameOf(c)] },
  cluster: { table: "clusters", where: "org = ? AND name = ?", key: (c) => [c.org, nameOf(c)] },
  "cluster-sync": { table: "cluster_sync_status", where: "org = ? AND cluster = ?", key: (c) => [c.org, nameOf(c)] },
  queue: { table: "queues", where: "org = ? AND name = ?", key: (c) => [c.org, nameOf(c)] },
  project: { table: "projects", where: "org = ? AND id = ?", key: (c) => [c.org, nameOf(c)] },
  label: { table: "cluster_labels", where: "org = ? AND name = ?", key: (c) => [c.org, nameOf(c)] },
  assignment: {
    table: "execution_cluster_labels",
    where: "org = ? AND project = ? AND domain = ? AND workflow = ? AND launch_plan = ?",
    key: (c) => (c.kind === "assignment" ? [c.org, c.project, c.domain, c.workflow, c.launchPlan] : []),
  },
  "default-label": { table: "default_cluster_labels", where: "org = ?", key: (c) => [c.org] },
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

/**
 * The one write path and the change log.
 *
 * `write(fn)` runs `fn` in an IMMEDIATE transaction (the write lock is taken first, so a
 * read-to-write upgrade can never fail half-way; another process's lock is waited for up to the
 * busy timeout, then UNAVAILABLE). Inside it, repositories call `record(change)`; the entry is
 * committed with the rows it describes or not at all.
 *
 * After commit, and whenever another process has committed (`PRAGMA data_version` moved, polled
 * by `follow`), `catchUp` reads the log forward from the last revision applied and tells every
 * listener — the same path for this process's writes and everybody else's.
 */
export class ChangeLog {
  private readonly listeners = new Set<ChangeListener>();
  private readonly snapshots = new Map<ChangeKind, Snapshot>();
  private readonly statements = new Map<string, Statement>();
  private readonly resyncListeners = new Set<() => void>();
  private lastApplied: number;
  private lastDataVersion = -1;
  private catchingUp = false;
  private catchUpAgain = false;
  private followTimer: NodeJS.Timeout | null = null;

  constructor(private readonly db: Db) {
    this.lastApplied = this.currentRevision();
  }

  /** Tells the log how to read each kind's current state, for the entries it appends. */
  describe(kind: ChangeKind, snapshot: Snapshot): void {
    this.snapshots.set(kind, snapshot);
  }

  /** Runs `fn` as one unit of work; nested calls join the outer one. */
  write<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    let result: T;
    try {
      result = this.db.transaction(fn).immediate();
    } catch (error) {
      if (isBusy(error)) {
        throw unavailable("the database is locked by another writer for longer than the lock timeout; retry the request");
      }
      throw error;
    }
    this.catchUp();
    return result;
  }

  /** Appends a change to the log and stamps its revision on the row; only inside `write`. */
  record(anyChange: Change): void {
    if (!this.db.inTransaction) throw new Error(`change ${anyChange.kind} recorded outside a unit of work`);
    const change = keyOf(anyChange);
    // Writers hold the write lock, so the next revision is known before the entry is appended:
    // the row is stamped first and its state read once, revision included.
    const revision = this.currentRevision() + 1;
    const columns = REVISION_COLUMNS[change.kind];
    this.statement(`UPDATE ${columns.table} SET revision = ? WHERE ${columns.where}`).run(revision, ...columns.key(change));
    const state = stateOf(this.snapshots.get(change.kind), change);
    this.statement(
      "INSERT INTO change_log (revision, org, kind, name, change_key, op, state, commit_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      revision,
      change.org,
      change.kind,
      nameOf(change),
      JSON.stringify(change),
      state === undefined ? "delete" : "put",
      state === undefined ? null : JSON.stringify(state),
      Date.now(),
    );
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The revision of the last committed change (0 for a new database). */
  currentRevision(): number {
    // The newest entry is never compacted away, so the largest revision present is the newest ever.
    return (this.statement("SELECT MAX(revision) FROM change_log").pluck().get() as number | null) ?? 0;
  }

  /** Runs `read` in one read transaction: what it reads is the state at the returned revision. */
  readAt<T>(read: () => T): { revision: number; value: T } {
    return this.db.transaction(() => ({ revision: this.currentRevision(), value: read() }))();
  }

  /** The last revision this process has told its listeners about. */
  get appliedRevision(): number {
    return this.lastApplied;
  }

  /** Entries after `revision`, oldest first; `from` older than the retention is the caller's problem (see `oldestRetained`). */
  readAfter(revision: number, limit = READ_BATCH): LogEntry[] {
    const rows = this.statement("SELECT revision, change_key, op, state, commit_time FROM change_log WHERE revision > ? ORDER BY revision LIMIT ?")
      .all(revision, limit) as LogRow[];
    return rows.map(toEntry);
  }

  /**
   * The oldest revision a reader may resume after: every entry after it is still in the log.
   * Resuming from anything older has missed compacted changes.
   */
  oldestResumable(): number {
    return (this.db.prepare("SELECT compacted_through FROM change_log_meta WHERE id = 1").pluck().get() as number) ?? 0;
  }

  /**
   * Removes the entries beyond the retention: more than `maxEntries` behind the newest and older
   * than `maxAgeMs` (either rule alone keeps an entry). The newest entry is always kept. Returns
   * how many were removed.
   */
  compact(retention: { maxEntries: number; maxAgeMs: number }, now = Date.now()): number {
    return this.write(() => {
      const newest = this.currentRevision();
      const byCount = newest - retention.maxEntries;
      const byAge = (this.db
        .prepare("SELECT MAX(revision) FROM change_log WHERE commit_time < ? AND revision < ?")
        .pluck()
        .get(now - retention.maxAgeMs, newest) as number | null) ?? 0;
      // An entry goes only when both rules let it go: beyond the newest maxEntries AND older than maxAgeMs.
      const through = Math.min(newest - 1, byCount, byAge);
      if (through <= this.oldestResumable()) return 0;
      const { changes } = this.db.prepare("DELETE FROM change_log WHERE revision <= ?").run(through);
      this.db.prepare("UPDATE change_log_meta SET compacted_through = ? WHERE id = 1").run(through);
      return changes;
    });
  }

  /**
   * Reads the log forward from the last applied revision and tells the listeners. Re-entrant
   * calls (a listener that writes) are folded into the running one.
   */
  catchUp(): void {
    if (this.catchingUp) {
      this.catchUpAgain = true;
      return;
    }
    this.catchingUp = true;
    try {
      do {
        this.catchUpAgain = false;
        this.resyncIfCompactedPast();
        let batch: LogEntry[];
        do {
          batch = this.readAfter(this.lastApplied);
          for (const entry of batch) {
            this.lastApplied = entry.revision;
            this.publish(entry);
          }
        } while (batch.length === READ_BATCH);
      } while (this.catchUpAgain);
    } finally {
      this.catchingUp = false;
    }
  }

  /**
   * Called when this process fell so far behind that compaction removed entries it had not
   * applied (it was stopped or blocked for longer than the retention): what it holds in memory
   * can no longer be brought up to date entry by entry, and must be read again whole.
   */
  onResync(listener: () => void): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  private resyncIfCompactedPast(): void {
    const oldest = this.oldestResumable();
    if (this.lastApplied >= oldest) return;
    this.lastApplied = this.currentRevision();
    for (const listener of this.resyncListeners) {
      try {
        listener();
      } catch (error) {
        this.onListenerError(error, { kind: "default-label", org: "" });
      }
    }
  }

  /**
   * Polls for commits by other processes every `intervalMs`. `PRAGMA data_version` changes only
   * when another connection has committed, so an idle poll costs one pragma.
   */
  follow(intervalMs: number): void {
    this.unfollow();
    this.followTimer = setInterval(() => this.pollOtherWriters(), intervalMs);
    this.followTimer.unref();
  }

  unfollow(): void {
    if (this.followTimer) clearInterval(this.followTimer);
    this.followTimer = null;
  }

  /** Where listener failures go; the server points it at its logger. */
  onListenerError: (error: unknown, change: Change) => void = (error) => {
    process.emitWarning(`change listener failed: ${(error as Error).message}`);
  };

  /** Prepared once per connection: the log is on every write's path. */
  private statement(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private pollOtherWriters(): void {
    try {
      const version = this.db.pragma("data_version", { simple: true }) as number;
      if (version === this.lastDataVersion) return;
      this.catchUp();
      // Only once caught up: after a failure the next poll must try again.
      this.lastDataVersion = version;
    } catch (error) {
      // A closed or briefly locked database: the next poll tries again.
      if (!this.db.open) this.unfollow();
      else this.onListenerError(error, { kind: "default-label", org: "" });
    }
  }

  /**
   * The write is already committed: a listener that throws must neither turn it into an error for
   * the caller nor keep the listeners after it from hearing of it.
   */
  private publish(entry: LogEntry): void {
    for (const listener of this.listeners) {
      try {
        listener(entry.change, entry);
      } catch (error) {
        this.onListenerError(error, entry.change);
      }
    }
  }
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
function stateOf(snapshot: Snapshot | undefined, change: Change): unknown {
  const state = snapshot?.(change);
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

function isBusy(error: unknown): boolean {
  return error instanceof SqliteError && (error.code === "SQLITE_BUSY" || error.code.startsWith("SQLITE_BUSY_"));
}
