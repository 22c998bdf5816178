/**
 * A keyed work queue in the shape of client-go's rate-limited workqueue: a key is queued at most
 * once, a key being processed is never handed to a second worker (added meanwhile, it is handed
 * out again once the first is done), delayed adds keep only the earliest, and failures back off
 * per key, exponentially with jitter, until forget() resets them.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  /** Added while being processed: queued again when done. */
  private readonly dirty = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly waiting: ((key: string | undefined) => void)[] = [];
  private shutDownCalled = false;

  constructor(
    private readonly backoff: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Queues `key` now; a delayed add of it is no longer needed. */
  add(key: string): void {
    if (this.shutDownCalled) return;
    this.cancelDelay(key);
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    const waiter = this.waiting.shift();
    if (waiter) this.handOut(key, waiter);
    else this.ready.push(key);
  }

  /**
   * Queues `key` after `delayMs`, unless it is queued already or due sooner. The timer adds the key
   * when it fires, without comparing clocks: a timer that fires a millisecond early is the add it
   * was armed for, not one to skip.
   */
  addAfter(key: string, delayMs: number): void {
    if (this.shutDownCalled || this.queued.has(key) || this.dirty.has(key)) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { at, timer });
  }

  /**
   * Counts a failure of `key` and queues it after its backoff; returns the delay. `atLeastMs` is
   * what the other side asked for (Retry-After): honoured even beyond the maximum backoff.
   */
  addRateLimited(key: string, atLeastMs = 0): number {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const delay = Math.max(atLeastMs, this.jitteredBackoff(failures));
    this.addAfter(key, delay);
    return delay;
  }

  /** The key succeeded: its next failure starts the backoff afresh. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Drops everything about `key` (the cluster is gone); a worker holding it just finishes. */
  remove(key: string): void {
    this.cancelDelay(key);
    this.failures.delete(key);
    this.dirty.delete(key);
    if (this.queued.delete(key)) this.ready.splice(this.ready.indexOf(key), 1);
  }

  /** The next key to process; undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    if (this.shutDownCalled) return Promise.resolve(undefined);
    const key = this.ready.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The worker is done with `key`; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  /** Keys ready to be handed out. */
  get length(): number {
    return this.ready.length;
  }

  /** Nothing queued and nothing being processed (delayed adds do not count). */
  get idle(): boolean {
    return this.queued.size === 0 && this.processing.size === 0;
  }

  get isShutDown(): boolean {
    return this.shutDownCalled;
  }

  /** Disarms every timer, drops what is queued and wakes every waiting worker with undefined. */
  shutDown(): void {
    this.shutDownCalled = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.ready.length = 0;
    this.queued.clear();
    this.dirty.clear();
    for (const resolve of this.waiting.splice(0)) resolve(undefined);
  }

  private handOut(key: string, waiter: (key: string) => void): void {
    this.queued.delete(key);
    this.processing.add(key);
    waiter(key);
  }

  private cancelDelay(key: string): void {
    const pending = this.delayed.get(key);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.delayed.delete(key);
  }

  /** Half the delay fixed, half random, so clusters that failed together do not retry in step. */
  private jitteredBackoff(failures: number): number {
    const ceiling = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(failures - 1, 30));
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }
}
