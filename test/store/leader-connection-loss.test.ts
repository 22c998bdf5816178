import { afterEach, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { isDatabaseUnavailable } from "../../src/store/database-errors.js";
import { LeaderElector, LeaseStore, type LeaseTimings } from "../../src/store/leader-lease.js";
import { openStores, type Stores } from "../../src/store/stores.js";
import { postgresEngines, type TestDatabase } from "../support/engines.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/wait.js";

const TIMINGS: LeaseTimings = { durationMs: 3_000, renewIntervalMs: 300, renewDeadlineMs: 2_000, retryIntervalMs: 200 };

let database: TestDatabase | undefined;
let proxy: TcpProxy | undefined;
let electors: LeaderElector[] = [];
let stores: Stores[] = [];
afterEach(async () => {
  // The proxy first: a blackholed connection only fails (and lets the rest stop) once it is cut.
  await proxy?.close();
  await Promise.all(electors.map((elector) => elector.stop()));
  await Promise.all(stores.map((s) => s.engine.close()));
  await database?.drop();
  [database, proxy, electors, stores] = [undefined, undefined, [], []];
});

interface Moment {
  who: string;
  what: "started" | "stopped";
  at: number;
}

async function candidate(location: string, who: string, timeline: Moment[]): Promise<LeaderElector> {
  const opened = await openStores({ path: location, lockTimeoutMs: 1_000 });
  stores.push(opened);
  const elector = new LeaderElector(new LeaseStore(opened.changes), "cluster-sync", who, TIMINGS, {
    onStartedLeading: () => void timeline.push({ who, what: "started", at: performance.now() }),
    onStoppedLeading: () => void timeline.push({ who, what: "stopped", at: performance.now() }),
  });
  electors.push(elector);
  await elector.start();
  return elector;
}

describe.each(postgresEngines())("a leader that loses its database connection ($name)", (engine) => {
  it.each(["cut", "blackhole"] as const)("stops leading before another replica can start (%s)", async (loss) => {
    database = await engine.fresh();
    const direct = new URL(database.location);
    proxy = await TcpProxy.start(direct.hostname, Number(direct.port || 5432));
    const throughProxy = new URL(direct);
    throughProxy.host = `127.0.0.1:${proxy.port}`;
    const timeline: Moment[] = [];
    const a = await candidate(throughProxy.toString(), "a", timeline);
    const b = await candidate(direct.toString(), "b", timeline);
    expect([a.isLeader, b.isLeader]).toEqual([true, false]);

    const lostAt = performance.now();
    proxy[loss]();
    await waitFor("replica b to lead", () => b.isLeader, 60_000);

    const stoppedA = timeline.find((m) => m.who === "a" && m.what === "stopped");
    const startedB = timeline.find((m) => m.who === "b" && m.what === "started")!;
    expect(stoppedA, JSON.stringify(timeline)).toBeDefined();
    // Not a tie broken by luck: the lease outlives the renew deadline by a second.
    expect(startedB.at - stoppedA!.at).toBeGreaterThan(500);
    expect(stoppedA!.at - lostAt).toBeLessThanOrEqual(TIMINGS.renewDeadlineMs + 1_000);
    expect(a.isLeader).toBe(false);
  });
});

describe.each(postgresEngines())("a replica whose database connection breaks ($name)", (engine) => {
  async function replicaBehindProxy(): Promise<{ behind: Stores; direct: Stores }> {
    database = await engine.fresh();
    const url = new URL(database.location);
    proxy = await TcpProxy.start(url.hostname, Number(url.port || 5432));
    const throughProxy = new URL(url);
    throughProxy.host = `127.0.0.1:${proxy.port}`;
    const behind = await openStores({ path: throughProxy.toString(), lockTimeoutMs: 1_000 });
    const direct = await openStores({ path: url.toString(), lockTimeoutMs: 1_000 });
    stores.push(behind, direct);
    return { behind, direct };
  }

  it("fails the query in flight as unavailable when the connection is reset, and keeps running", async () => {
    const { behind } = await replicaBehindProxy();
    const query = sql`SELECT pg_sleep(30)`.execute(behind.engine.db);
    await waitFor("the query to reach the server", async () => (await activeSleeps(stores[1]!)) > 0, 10_000);
    proxy!.cut();
    const error = await query.then(() => undefined, (e: unknown) => e);
    expect(isDatabaseUnavailable(error), String(error)).toBe(true);
  });

  it("a replica cut off inside a write transaction holds the write lock for seconds, not until TCP gives up", async () => {
    const { behind, direct } = await replicaBehindProxy();
    let inside: () => void = () => undefined;
    let letGo: () => void = () => undefined;
    const entered = new Promise<void>((resolve) => (inside = resolve));
    const released = new Promise<void>((resolve) => (letGo = resolve));
    const stranded = behind.changes.write(async () => {
      await behind.changes.db.selectFrom("leases").selectAll().execute();
      inside();
      await released;
    }).catch(() => undefined);
    await entered;
    proxy!.blackhole();
    const cutOffAt = performance.now();
    // Writes elsewhere wait for the lock, answer UNAVAILABLE after the lock timeout, and succeed
    // once PostgreSQL ends the stranded session (idle_in_transaction_session_timeout).
    let written = false;
    while (!written) {
      written = await direct.projects.create({ org: "o", id: "flytesnacks", name: "flytesnacks", description: "" }).then(() => true, (error: unknown) => {
        if (!direct.engine.isLockTimeout(error) && !/lock/i.test(String(error))) throw error;
        return false;
      });
      expect(performance.now() - cutOffAt).toBeLessThan(30_000);
    }
    proxy!.cut();
    letGo();
    await stranded;
  });
});

/** Sessions of this database running pg_sleep: the query under test has reached the server. */
async function activeSleeps(observer: Stores): Promise<number> {
  const { rows } = await sql<{ n: string }>`SELECT count(*)::text AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active' AND datname = current_database()`.execute(observer.engine.db);
  return Number(rows[0]!.n);
}
