import type { ChangeLog } from "./changes.js";

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

/**
 * A dead leader is replaced within 12 s (its lease runs out, plus one retry): kill -9 of a replica
 * stops the sync loop for less than 15 s. Shorter than controller-runtime's 15 s lease; the renew
 * deadline still leaves 3 s between the leader giving up and anyone else starting.
 */
export const DEFAULT_LEASE_TIMINGS: LeaseTimings = {
  durationMs: 10_000,
  renewIntervalMs: 2_000,
  renewDeadlineMs: 7_000,
  retryIntervalMs: 2_000,
};

/**
 * A lease row in the database: one holder at a time, taken and renewed in a write-locked
 * transaction, so two processes can never both believe they took it. Times are the database's
 * clock (`Engine.clockMs`), so replicas on machines whose clocks disagree still agree on expiry.
 */
export class LeaseStore {
  constructor(private readonly changes: ChangeLog) {}

  /**
   * Takes or renews the lease for `holder`; returns who holds it afterwards. `maxWaitMs` bounds the
   * wait for another writer's lock (a renewal must not outwait its own deadline). `now` (tests
   * only) replaces the database's clock.
   */
  acquire(name: string, holder: string, durationMs: number, maxWaitMs?: number, now?: number): Promise<LeaseHolder> {
    const options = maxWaitMs === undefined ? undefined : { lockTimeoutMs: maxWaitMs };
    return this.changes.write(async () => {
      now ??= await this.changes.clockMs();
      const current = await this.get(name);
      if (current && current.holder !== holder && current.expiresAt.getTime() > now) return current;
      const acquiredAt = current?.holder === holder ? current.acquiredAt.getTime() : now;
      await this.changes.db
        .insertInto("leases")
        .values({ name, holder, acquired_at: acquiredAt, renewed_at: now, expires_at: now + durationMs })
        .onConflict((conflict) =>
          conflict.column("name").doUpdateSet((eb) => ({
            holder: eb.ref("excluded.holder"),
            acquired_at: eb.ref("excluded.acquired_at"),
            renewed_at: eb.ref("excluded.renewed_at"),
            expires_at: eb.ref("excluded.expires_at"),
          })),
        )
        .execute();
      return (await this.get(name))!;
    }, options);
  }

  /** Gives the lease up at once (graceful shutdown), if `holder` has it. */
  async release(name: string, holder: string): Promise<void> {
    await this.changes.write(async () => {
      await this.changes.db.deleteFrom("leases").where("name", "=", name).where("holder", "=", holder).execute();
    });
  }

  async get(name: string): Promise<LeaseHolder | undefined> {
    const row = await this.changes.db.selectFrom("leases").selectAll().where("name", "=", name).executeTakeFirst();
    return row && {
      holder: row.holder,
      acquiredAt: new Date(Number(row.acquired_at)),
      renewedAt: new Date(Number(row.renewed_at)),
      expiresAt: new Date(Number(row.expires_at)),
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
  /** The try in flight, if any: stop() waits for it, so it cannot take the lease after the release. */
  private attempt: Promise<void> | null = null;

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

  /** Starts running; resolves once the first try is done (leading or not), and never rejects. */
  start(): Promise<void> {
    this.stopped = false;
    this.generation++;
    this.attempt = this.tryOnce(this.generation);
    return this.attempt;
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
    await this.attempt;
    await this.steppingDown;
    if (!wasLeading || !this.stopped || generation !== this.generation) return;
    try {
      await within(this.timings.renewDeadlineMs, "releasing the lease", this.leases.release(this.name, this.identity));
    } catch (error) {
      this.events.onError?.(error);
    }
  }

  private async tryOnce(generation: number): Promise<void> {
    if (this.stopped) return;
    // The local monotonic clock, read before asking: the database's expiry is at least
    // durationMs after this instant, and the deadline below is renewDeadlineMs after it.
    const now = performance.now();
    // A renewal waits for the lock no longer than the leader may go without one.
    const maxWaitMs = this.leading ? this.lastRenewal + this.timings.renewDeadlineMs - now : undefined;
    try {
      // A database that stopped answering (a partition) must not stall the elector: the try is
      // given up, and its late answer, if one ever comes, is ignored.
      const leader = await within(this.timings.renewDeadlineMs, "taking or renewing the lease",
        this.leases.acquire(this.name, this.identity, this.timings.durationMs, maxWaitMs));
      // Stopped (or stopped and started again) meanwhile: this try's answer is no longer ours to act on.
      if (this.stopped || generation !== this.generation) return;
      this.leader = leader;
      this.events.onLeaderSeen?.(this.leader);
      if (this.leader.holder === this.identity) {
        this.renewed(now);
      } else if (this.leading) {
        void this.stepDown();
      }
    } catch (error) {
      this.events.onError?.(error);
    }
    this.schedule(generation);
  }

  /**
   * Leading until `renewDeadlineMs` after this renewal unless another succeeds: the deadline
   * timer steps down on its own, so a leader whose renewals fail or hang stops before its
   * lease can expire and another process can take it.
   */
  private renewed(at: number): void {
    const remainingMs = at + this.timings.renewDeadlineMs - performance.now();
    // An answer that hung past its own deadline proves nothing about now: the next try decides.
    if (remainingMs <= 0) {
      void this.stepDown();
      return;
    }
    this.lastRenewal = at;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => void this.stepDown(), remainingMs);
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

  private schedule(generation: number): void {
    if (this.stopped || generation !== this.generation) return;
    const delay = this.leading ? this.timings.renewIntervalMs : this.timings.retryIntervalMs;
    this.timer = setTimeout(() => (this.attempt = this.tryOnce(generation)), delay);
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

/** `promise`, or a rejection naming `what` once `ms` have passed without it settling. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the database did not answer within ${ms} ms while ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
