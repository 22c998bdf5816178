/**
 * Exponential backoff with jitter for reconnecting to the control plane: 250 ms doubling to 30 s,
 * each wait spread ±20 % so that a hundred agents cut off by one restart do not all come back in
 * the same millisecond (and again in lockstep at every step after).
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** The spread of each wait, as a fraction: 0.2 gives ±20 %. */
  jitter: number;
  /** A number in [0, 1); Math.random by default (tests pass their own). */
  random?: () => number;
}

export const RECONNECT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000, factor: 2, jitter: 0.2 };

export class Backoff {
  private attempt = 0;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions = RECONNECT_BACKOFF) {
    this.random = options.random ?? Math.random;
  }

  /** How many waits since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The wait before the next try: the base (capped) times a factor in [1 - jitter, 1 + jitter). */
  next(): number {
    const { initialMs, maxMs, factor, jitter } = this.options;
    // The exponent stops growing at the cap, so a long outage never overflows to Infinity.
    const base = Math.min(maxMs, initialMs * factor ** Math.min(this.attempt, 64));
    this.attempt++;
    return Math.round(base * (1 - jitter + 2 * jitter * this.random()));
  }

  /** After a success: the next failure starts from the initial wait again. */
  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** "2.3 s" or "250 ms", for log lines people read. */
export function describeWait(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
