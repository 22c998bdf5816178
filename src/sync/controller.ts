import { WorkQueue, type BackoffPolicy } from "./work-queue.js";

/** What a reconcile asks of the queue next. */
export type ReconcileVerdict =
  /** Done; reconcile again after this long (null: only when something is added). */
  | { requeueAfterMs: number | null }
  /** Failed; back off (at least `retryAfterMs`, what the server asked for). */
  | { failed: true; retryAfterMs: number };

/** Reconciles one key; `signal` aborts on shutdown and when `cancel(key)` is called. Never throws. */
export type Reconcile = (key: string, signal: AbortSignal) => Promise<ReconcileVerdict>;

export interface ControllerOptions {
  workers: number;
  backoff: BackoffPolicy;
  /** How long stop() waits for reconciles to end once their signals are aborted. */
  stopGraceMs: number;
  /** A reconcile that threw anyway (a bug): reported, and backed off like a failure. */
  onError(key: string, error: unknown): void;
}

/**
 * controller-runtime's shape: a rate-limited work queue and a bounded pool of workers, each
 * taking a key and reconciling it with a signal that is aborted when the key's work is no longer
 * wanted (shutdown, or the object changed under it).
 */
export class Controller {
  private readonly queue: WorkQueue;
  private readonly inFlight = new Map<string, AbortController>();
  private readonly idleWaiters: (() => void)[] = [];
  private workers: Promise<void>[] = [];

  constructor(
    private readonly reconcile: Reconcile,
    private readonly options: ControllerOptions,
  ) {
    this.queue = new WorkQueue(options.backoff);
  }

  start(): void {
    this.workers = Array.from({ length: this.options.workers }, () => this.work());
  }

  /** Reconcile `key` as soon as a worker is free (again after the current pass, if one runs). */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Aborts the pass running for `key`, if any. */
  cancel(key: string, reason: string): void {
    this.inFlight.get(key)?.abort(new Error(reason));
  }

  /** Cancels `key`'s pass and forgets it: nothing queued, no backoff left. */
  drop(key: string, reason: string): void {
    this.cancel(key, reason);
    this.queue.remove(key);
  }

  /** Resolves when nothing is queued or running (delayed retries do not count). */
  idle(): Promise<void> {
    if (this.queue.idle || this.queue.isShutDown) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops handing out work, disarms every timer, aborts every pass in flight and waits for them
   * to end — at most `stopGraceMs`, whatever the clusters do.
   */
  async stop(): Promise<void> {
    this.queue.shutDown();
    for (const controller of this.inFlight.values()) controller.abort(new Error("shutting down"));
    let grace: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      grace = setTimeout(resolve, this.options.stopGraceMs);
    });
    try {
      await Promise.race([Promise.all(this.workers), graceOver]);
    } finally {
      clearTimeout(grace);
    }
    this.notifyIdle();
  }

  private async work(): Promise<void> {
    for (let key = await this.queue.get(); key !== undefined; key = await this.queue.get()) {
      const verdict = await this.reconcileOne(key);
      this.queue.done(key);
      this.follow(key, verdict);
      this.notifyIdle();
    }
  }

  private async reconcileOne(key: string): Promise<ReconcileVerdict> {
    const abort = new AbortController();
    this.inFlight.set(key, abort);
    try {
      return await this.reconcile(key, abort.signal);
    } catch (error) {
      this.options.onError(key, error);
      return { failed: true, retryAfterMs: 0 };
    } finally {
      this.inFlight.delete(key);
    }
  }

  private follow(key: string, verdict: ReconcileVerdict): void {
    if (this.queue.isShutDown) return;
    if ("failed" in verdict) {
      this.queue.addRateLimited(key, verdict.retryAfterMs);
      return;
    }
    this.queue.forget(key);
    if (verdict.requeueAfterMs !== null) this.queue.addAfter(key, verdict.requeueAfterMs);
  }

  private notifyIdle(): void {
    if (!this.queue.idle && !this.queue.isShutDown) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
