/**
 * Closed-loop load: `concurrency` callers each issue the next call as soon as the previous one
 * answers, for `durationMs`. Returns calls per second.
 */
export async function callsPerSecond(
  call: () => Promise<unknown>,
  concurrency: number,
  durationMs: number,
): Promise<number> {
  const deadline = performance.now() + durationMs;
  let completed = 0;
  const worker = async () => {
    while (performance.now() < deadline) {
      await call();
      completed++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return completed / ((performance.now() - started) / 1000);
}

/** Runs `fn` a few times and keeps the best result, to damp noise from other work on the machine. */
export async function bestOf(runs: number, fn: () => Promise<number>): Promise<number> {
  let best = 0;
  for (let i = 0; i < runs; i++) best = Math.max(best, await fn());
  return best;
}
