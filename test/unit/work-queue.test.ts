import { afterEach, describe, expect, it, vi } from "vitest";
import { Controller, type ReconcileVerdict } from "../../src/sync/controller.js";
import { WorkQueue } from "../../src/sync/work-queue.js";

const BACKOFF = { initialMs: 100, maxMs: 1_000 };

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("the work queue", () => {
  it("holds a key once however often it is added", async () => {
    const queue = new WorkQueue(BACKOFF);
    queue.add("a");
    queue.add("b");
    queue.add("a");
    expect(await queue.get()).toBe("a");
    expect(await queue.get()).toBe("b");
    expect(queue.idle).toBe(false);
    queue.done("a");
    queue.done("b");
    expect(queue.idle).toBe(true);
  });

  it("never hands a key to two workers: added while processed, it comes back once done", async () => {
    const queue = new WorkQueue(BACKOFF);
    queue.add("a");
    expect(await queue.get()).toBe("a");
    queue.add("a");
    queue.add("a");
    expect(queue.length).toBe(0);
    queue.done("a");
    expect(queue.length).toBe(1);
    expect(await queue.get()).toBe("a");
    queue.done("a");
    expect(queue.length).toBe(0);
    expect(queue.idle).toBe(true);
  });

  it("wakes a waiting worker when a key arrives", async () => {
    const queue = new WorkQueue(BACKOFF);
    const waiting = queue.get();
    queue.add("a");
    expect(await waiting).toBe("a");
  });

  it("keeps the earliest of several delayed adds, and an add now cancels the delay", () => {
    vi.useFakeTimers();
    const queue = new WorkQueue(BACKOFF);
    queue.addAfter("a", 500);
    queue.addAfter("a", 200);
    queue.addAfter("a", 900);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(199);
    expect(queue.idle).toBe(true);
    vi.advanceTimersByTime(1);
    expect(queue.idle).toBe(false);

    const other = new WorkQueue(BACKOFF);
    other.addAfter("b", 500);
    expect(vi.getTimerCount()).toBe(1);
    other.add("b");
    expect(vi.getTimerCount()).toBe(0);
    expect(other.length).toBe(1);
  });

  it("adds the key when its timer fires, even if the clock says it is a millisecond early", () => {
    vi.useFakeTimers();
    const queue = new WorkQueue(BACKOFF);
    const armedAt = Date.now();
    queue.addAfter("a", 100);
    // Timers and Date.now() are different clocks; a timer may fire just before Date.now() gets there.
    vi.spyOn(Date, "now").mockReturnValue(armedAt + 99);
    vi.advanceTimersByTime(100);
    expect(queue.idle).toBe(false);
  });

  it("backs off exponentially with jitter per key, up to the maximum, and forget() starts over", () => {
    vi.useFakeTimers();
    const lowest = new WorkQueue(BACKOFF, () => 0);
    expect([1, 2, 3, 4, 5].map(() => lowest.addRateLimited("a"))).toEqual([50, 100, 200, 400, 500]);
    const highest = new WorkQueue(BACKOFF, () => 1);
    expect([1, 2, 3, 4, 5].map(() => highest.addRateLimited("a"))).toEqual([100, 200, 400, 800, 1_000]);
    expect(highest.addRateLimited("b")).toBe(100);
    highest.forget("a");
    expect(highest.failuresOf("a")).toBe(0);
    expect(highest.addRateLimited("a")).toBe(100);
  });

  it("waits at least what the server asked for (Retry-After), even beyond the maximum backoff", () => {
    vi.useFakeTimers();
    const queue = new WorkQueue(BACKOFF, () => 0);
    expect(queue.addRateLimited("a", 700)).toBe(700);
    expect(queue.addRateLimited("b", 60_000)).toBe(60_000);
    expect(queue.addRateLimited("c", 10)).toBe(50);
  });

  it("forgets a removed key entirely: not queued, no timer, no failures", async () => {
    vi.useFakeTimers();
    const queue = new WorkQueue(BACKOFF);
    queue.add("a");
    queue.addRateLimited("b");
    queue.remove("a");
    queue.remove("b");
    expect(vi.getTimerCount()).toBe(0);
    expect(queue.failuresOf("b")).toBe(0);
    expect(queue.idle).toBe(true);
  });

  it("shuts down with no timer armed, and wakes waiting workers with nothing", async () => {
    vi.useFakeTimers();
    const queue = new WorkQueue(BACKOFF);
    const waiting = queue.get();
    queue.addAfter("a", 1_000);
    queue.addRateLimited("b");
    queue.shutDown();
    expect(vi.getTimerCount()).toBe(0);
    expect(await waiting).toBeUndefined();
    queue.add("c");
    queue.addAfter("d", 10);
    expect(vi.getTimerCount()).toBe(0);
    expect(await queue.get()).toBeUndefined();
  });
});

/** A reconcile whose calls the test finishes by hand. */
function manualReconcile() {
  const calls: { key: string; signal: AbortSignal; finish(verdict: ReconcileVerdict): void }[] = [];
  const reconcile = (key: string, signal: AbortSignal) =>
    new Promise<ReconcileVerdict>((resolve) => calls.push({ key, signal, finish: resolve }));
  return { calls, reconcile };
}

function controllerOf(reconcile: (key: string, signal: AbortSignal) => Promise<ReconcileVerdict>, workers = 2, stopGraceMs = 5_000) {
  return new Controller(reconcile, { workers, backoff: BACKOFF, stopGraceMs, onError: () => undefined });
}

/** Lets queued promise callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("the controller", () => {
  it("runs at most `workers` reconciles at once", async () => {
    const { calls, reconcile } = manualReconcile();
    const controller = controllerOf(reconcile, 2);
    controller.start();
    for (const key of ["a", "b", "c", "d"]) controller.enqueue(key);
    await settle();
    expect(calls.map((call) => call.key)).toEqual(["a", "b"]);
    calls[0]!.finish({ requeueAfterMs: null });
    await settle();
    expect(calls.map((call) => call.key)).toEqual(["a", "b", "c"]);
    for (const call of calls.slice(1)) call.finish({ requeueAfterMs: null });
    await settle();
    calls[3]!.finish({ requeueAfterMs: null });
    await controller.idle();
    await controller.stop();
  });

  it("cancel() aborts the signal of that key's reconcile only", async () => {
    const { calls, reconcile } = manualReconcile();
    const controller = controllerOf(reconcile);
    controller.start();
    controller.enqueue("a");
    controller.enqueue("b");
    await settle();
    controller.cancel("a", "the cluster was deleted");
    expect(calls[0]!.signal.aborted).toBe(true);
    expect((calls[0]!.signal.reason as Error).message).toBe("the cluster was deleted");
    expect(calls[1]!.signal.aborted).toBe(false);
    for (const call of calls) call.finish({ requeueAfterMs: null });
    await controller.stop();
  });

  it("stop() aborts every reconcile and returns within its grace even if one ignores the signal", async () => {
    const { calls, reconcile } = manualReconcile();
    const controller = controllerOf(reconcile, 2, 50);
    controller.start();
    controller.enqueue("obedient");
    controller.enqueue("stubborn");
    await settle();
    calls[0]!.signal.addEventListener("abort", () => calls[0]!.finish({ requeueAfterMs: null }));
    const before = process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length;
    await controller.stop();
    expect(calls.every((call) => call.signal.aborted)).toBe(true);
    // The grace timer is cleared, and nothing requeued the keys.
    expect(process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length).toBeLessThanOrEqual(before);
    calls[1]!.finish({ requeueAfterMs: 10 });
    await settle();
    expect(process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length).toBeLessThanOrEqual(before);
  });

  it("retries a failed key after exponentially growing delays, capped at the maximum, and starts over after a success", async () => {
    // WorkQueue takes no clock (only a random source, which Controller leaves at Math.random):
    // fake timers drive the retries, and Math.random() at 1 takes the jitter out, so each delay
    // is its full ceiling.
    vi.useFakeTimers();
    vi.spyOn(Math, "random").mockReturnValue(1);
    const fail: ReconcileVerdict = { failed: true, retryAfterMs: 0 };
    const verdicts: ReconcileVerdict[] = [fail, fail, fail, fail, fail, fail, { requeueAfterMs: null }, fail, fail, { requeueAfterMs: null }];
    const calls: number[] = [];
    const controller = controllerOf(async () => {
      calls.push(Date.now());
      return verdicts.shift()!;
    }, 1);
    controller.start();

    /** Lets the controller act on what it has, then moves the clock on by `ms`. */
    const elapse = (ms: number) => vi.advanceTimersByTimeAsync(ms);
    /** Asserts the next retry comes exactly `delay` after the previous pass, not a millisecond sooner. */
    async function expectRetryAfter(delay: number): Promise<void> {
      const before = calls.length;
      await elapse(delay - 1);
      expect([delay, calls.length]).toEqual([delay, before]);
      await elapse(1);
      expect([delay, calls.length]).toEqual([delay, before + 1]);
      expect(calls[before]! - calls[before - 1]!).toBe(delay);
    }

    controller.enqueue("a");
    await elapse(0);
    expect(calls).toHaveLength(1);
    // 100, doubling, then held at maxMs (1 000).
    for (const delay of [100, 200, 400, 800, 1_000, 1_000]) await expectRetryAfter(delay);
    // The seventh pass succeeded: nothing is armed, and nothing runs however long we wait.
    expect(calls).toHaveLength(7);
    expect(vi.getTimerCount()).toBe(0);
    await elapse(60_000);
    expect(calls).toHaveLength(7);

    // A failure after that success backs off from initialMs again, not from where it was.
    controller.enqueue("a");
    await elapse(0);
    expect(calls).toHaveLength(8);
    for (const delay of [100, 200]) await expectRetryAfter(delay);
    expect(verdicts).toEqual([]);
    await controller.stop();
  });

  it("treats a reconcile that throws as a failure, never as a crash of its worker", async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const controller = new Controller(
      async () => {
        calls++;
        if (calls === 1) throw new Error("bug");
        return { requeueAfterMs: null };
      },
      { workers: 1, backoff: { initialMs: 1, maxMs: 1 }, stopGraceMs: 1_000, onError: (_, error) => errors.push(error) },
    );
    controller.start();
    controller.enqueue("a");
    await vi.waitFor(() => expect(calls).toBe(2), { timeout: 10_000 });
    expect(errors).toHaveLength(1);
    await controller.stop();
  });
});
