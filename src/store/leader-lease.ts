import type { ChangeLog } from "./changes.js";
import type { Db } from "./database.js";

/** Who holds a lease, until when. */
export interface LeaseHolder {
  holder: string;
  acquiredAt: Date;
  renewedAt: Date;
  expiresAt: Date;
}

export interface LeaseTimings {
  /** How long a lease lasts without renewal; another process may take it after that. */
  durationMs: number;
  /** How often the holder renews it. */
  renewIntervalMs: number;
  /** How long the holder keeps leading without a successful renewal; below `durationMs`. */
  renewDeadlineMs: number;
  /** How often a process that does not lead tries to take the lease. */
  retryIntervalMs: number;
}

/** controller-runtime's defaults: a dead leader is replaced within about 17 s. */
export const DEFAULT_LEASE_TIMINGS: LeaseTimings = {
  durationMs: 15_000,
  renewIntervalMs: 5_000,
  renewDeadlineMs: 10_000,
  retryIntervalMs: 2_000,
};

/**
 * A lease row in the database: one holder at a time, taken and renewed in a write-locked
 * transaction, so two processes can never both believe they took it. Expiry compares wall
 * clocks of the processes sharing the database (on one machine for SQLite).
 */
export class LeaseStore {
  constructor(
    private readonly db: Db,
    private readonly changes: ChangeLog,
  ) {}

  /**
   * Takes or renews the lease for `holder`; returns who holds it afterwards. `maxWaitMs` bounds the
   * wait for another writer's lock (a renewal must not outwait its own deadline).
   */
  acquire(name: string, holder: string, durationMs: number, now = Date.now(), maxWaitMs?: number): LeaseHolder {
    if (maxWaitMs === undefined) return this.acquireNow(name, holder, durationMs, now);
    const usual = this.db.pragma("busy_timeout", { simple: true }) as number;
    this.db.pragma(`busy_timeout = ${Math.max(0, Math.min(usual, Math.floor(maxWaitMs)))}`);
    try {
      return this.acquireNow(name, holder, durationMs, now);
    } finally {
      this.db.pragma(`busy_timeout = ${usual}`);
    }
  }

  private acquireNow(name: string, holder: string, durationMs: number, now: number): LeaseHolder {
    return this.changes.write(() => {
      const current = this.get(name);
      if (current && current.holder !== holder && current.expiresAt.getTime() > now) return current;
      const acquiredAt = current?.holder === holder ? current.acquiredAt.getTime() : now;
      this.db
        .prepare(
          `INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
             renewed_at = excluded.renewed_at, expires_at = excluded.expires_at`,
        )
        .run(name, holder, acquiredAt, now, now + durationMs);
      return this.get(name)!;
    });
  }

  /** Gives the lease up at once (graceful shutdown), if `holder` has it. */
  release(name: string, holder: string): void {
    this.changes.write(() => {
      this.db.prepare("DELETE FROM leases WHERE name = ? AND holder = ?").run(name, holder);
    });
  }

  get(name: string): LeaseHolder | undefined {
    const row = this.db.prepare("SELECT * FROM leases WHERE name = ?").get(name) as
      | { holder: string; acquired_at: number; renewed_at: number; expires_at: number }
      | undefined;
    return row && {
      holder: row.holder,
      acquiredAt: new Date(row.acquired_at),
      renewedAt: new Date(row.renewed_at),
      expiresAt: new Date(row.expires_at),
    };
  }
}

export interface ElectorEvents {
  /** This process now leads: start the work only the leader does. */
  onStartedLeading(): void;
  /** This process stopped leading (lost or gave up the lease): stop that work now. */
  onStoppedLeading(): Promise<void> | void;
  /** Another process leads (or nobody does), as seen at the last try. */
  onLeaderSeen?(holder: LeaseHolder | undefined): void;
  onError?(error: unknown): void;
}

/**
 * Runs for leadership of one lease: tries every `retryIntervalMs`, renews every
 * `renewIntervalMs` while leading, and steps down when no renewal succeeded for
 * `renewDeadlineMs` — before the lease can expire and anyone else can take it.
 */
export class LeaderElector {
  private timer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private leading = false;
  private lastRenewal = 0;
  private stopped = false;
  private generation = 0;
  private steppingDown: Promise<void> | null = null;
  private leader: LeaseHolder | undefined;

  constructor(
    private readonly leases: LeaseStore,
    private readonly name: string,
    readonly identity: string,
    private readonly timings: LeaseTimings,
    private readonly events: ElectorEvents,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder seen at the last try, if any. */
  get currentLeader(): LeaseHolder | undefined {
    return this.leader;
  }

  start(): void {
    this.stopped = false;
    this.generation++;
    this.tryOnce();
  }

  /**
   * Stops running; a leader steps down (its work stopped first) and releases the lease so another
   * can take it at once. A start() after this stop() is a new term: this stop never releases it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    const generation = this.generation;
    this.clearTimers();
    const wasLeading = this.leading;
    if (wasLeading) void this.stepDown();
    await this.steppingDown;
    if (!wasLeading || !this.stopped || generation !== this.generation) return;
    try {
      this.leases.release(this.name, this.identity);
    } catch (error) {
      this.events.onError?.(error);
    }
  }

  private tryOnce(): void {
    if (this.stopped) return;
    const now = Date.now();
    // A renewal waits for the lock no longer than the leader may go without one.
    const maxWaitMs = this.leading ? this.lastRenewal + this.timings.renewDeadlineMs - now : undefined;
    try {
      this.leader = this.leases.acquire(this.name, this.identity, this.timings.durationMs, now, maxWaitMs);
      this.events.onLeaderSeen?.(this.leader);
      if (this.leader.holder === this.identity) {
        this.renewed(now);
      } else if (this.leading) {
        void this.stepDown();
      }
    } catch (error) {
      this.events.onError?.(error);
    }
    this.schedule();
  }

  /**
   * Leading until `renewDeadlineMs` after this renewal unless another succeeds: the deadline
   * timer steps down on its own, so a leader whose renewals fail or hang stops before its
   * lease can expire and another process can take it.
   */
  private renewed(at: number): void {
    this.lastRenewal = at;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => void this.stepDown(), Math.max(0, at + this.timings.renewDeadlineMs - Date.now()));
    this.deadline.unref();
    if (!this.leading) {
      this.leading = true;
      this.events.onStartedLeading();
    }
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.deadline) clearTimeout(this.deadline);
    this.timer = null;
    this.deadline = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    const delay = this.leading ? this.timings.renewIntervalMs : this.timings.retryIntervalMs;
    this.timer = setTimeout(() => this.tryOnce(), delay);
    this.timer.unref();
  }

  private stepDown(): Promise<void> {
    if (!this.leading) return this.steppingDown ?? Promise.resolve();
    this.leading = false;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
    this.steppingDown = (async () => {
      try {
        await this.events.onStoppedLeading();
      } catch (error) {
        this.events.onError?.(error);
      }
    })();
    return this.steppingDown;
  }
}
