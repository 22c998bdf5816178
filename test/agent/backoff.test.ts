import { describe, expect, it } from "vitest";
import { Backoff, describeWait, RECONNECT_BACKOFF, sleep } from "../../src/agent/backoff.js";

describe("the reconnect backoff", () => {
  it("starts at 250 ms and doubles to 30 s, without jitter at the midpoint", () => {
    const backoff = new Backoff({ ...RECONNECT_BACKOFF, random: () => 0.5 });
    const waits = Array.from({ length: 10 }, () => backoff.next());
    expect(waits).toEqual([250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(backoff.attempts).toBe(10);
  });

  it("spreads every wait by ±20 %", () => {
    const low = new Backoff({ ...RECONNECT_BACKOFF, random: () => 0 });
    const high = new Backoff({ ...RECONNECT_BACKOFF, random: () => 0.999999 });
    expect([low.next(), low.next(), low.next()]).toEqual([200, 400, 800]);
    expect([high.next(), high.next(), high.next()]).toEqual([300, 600, 1200]);
    for (let i = 0; i < 20; i++) {
      low.next();
      high.next();
    }
    expect(low.next()).toBe(24_000);
    expect(high.next()).toBe(36_000);
  });

  it("draws different waits for agents cut off together (Math.random), all within the bounds", () => {
    const waits = Array.from({ length: 200 }, () => new Backoff().next());
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(200);
    expect(Math.max(...waits)).toBeLessThanOrEqual(300);
    expect(new Set(waits).size).toBeGreaterThan(20);
  });

  it("starts again from the initial wait after a reset, and never overflows in a long outage", () => {
    const backoff = new Backoff({ ...RECONNECT_BACKOFF, random: () => 0.5 });
    for (let i = 0; i < 5000; i++) expect(backoff.next()).toBeLessThanOrEqual(30_000);
    backoff.reset();
    expect(backoff.next()).toBe(250);
  });

  it("says waits the way people read them", () => {
    expect(describeWait(250)).toBe("250 ms");
    expect(describeWait(2300)).toBe("2.3 s");
  });

  it("sleeps until aborted, without throwing", async () => {
    const abort = new AbortController();
    const started = Date.now();
    const sleeping = sleep(60_000, abort.signal);
    abort.abort();
    await sleeping;
    expect(Date.now() - started).toBeLessThan(1_000);
    await sleep(60_000, abort.signal);
  });
});
