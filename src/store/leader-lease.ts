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

  /** Takes or renews the lease for `holder`; returns who holds it afterwards. */
  acquire(name: string, holder: string, durationMs: number, now = Date.now()): LeaseHolder {
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
  private leading = false;
  private lastRenewal = 0;
  private stopped = false;
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
    this.tryOnce();
  }

  /** Stops running; a leader steps down and releases the lease so another can take it at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.leading) return;
    await this.stepDown();
    try {
      this.leases.release(this.name, this.identity);
    } catch (error) {
      this.events.onError?.(error);
    }
  }

  private tryOnce(): void {
    if (this.stopped) return;
    const now = Date.now();
    try {
      this.leader = this.leases.acquire(this.name, this.identity, this.timings.durationMs, now);
      this.events.onLeaderSeen?.(this.leader);
      if (this.leader.holder === this.identity) {
        this.lastRenewal = now;
        if (!this.leading) {
          this.leading = true;
          this.events.onStartedLeading();
        }
      } else if (this.leading) {
        void this.stepDown();
      }
    } catch (error) {
      this.events.onError?.(error);
      if (this.leading && Date.now() - this.lastRenewal >= this.timings.renewDeadlineMs) void this.stepDown();
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const delay = this.leading ? this.timings.renewIntervalMs : this.timings.retryIntervalMs;
    this.timer = setTimeout(() => this.tryOnce(), delay);
    this.timer.unref();
  }

  private async stepDown(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    try {
      await this.events.onStoppedLeading();
    } catch (error) {
      this.events.onError?.(error);
    }
  }
}
