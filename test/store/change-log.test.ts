import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { DomainError } from "../../src/core/errors.js";
import type { LogEntry } from "../../src/store/changes.js";
import { LeaderElector, LeaseStore } from "../../src/store/leader-lease.js";
import { openStores, type Stores } from "../../src/store/stores.js";
import { waitFor } from "../support/wait.js";
import { startTestServer } from "../support/server.js";
import { seedCluster } from "../support/fixtures.js";
import { testEngines, type TestDatabase, type TestEngine } from "../support/engines.js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";

const POOL = { objectStoreUri: "s3://bucket", objectStoreEndpoint: "", secretStoreType: "VAULT", secretStoreLocator: "", imageRegistryLocator: "" } as const;
const IN_CLUSTER = { kind: "in_cluster" } as const;

const opened: Stores[] = [];
const databases: TestDatabase[] = [];
afterEach(async () => {
  for (const stores of opened.splice(0)) await stores.engine.close();
  for (const database of databases.splice(0)) await database.drop();
});

/** A second process on the database (see test/support/store-worker.ts). */
function worker(...args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/store-worker.ts", ...args]) as ChildProcessWithoutNullStreams;
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => lines.push(line));
  return { child, lines, say: (line: string) => child.stdin.write(`${line}\n`) };
}

describe.each(testEngines())("on $name", (engine: TestEngine) => {
  let location = "";
  /** A fresh database of this engine for the test; `open` opens it (again, as another process would). */
  const fresh = async () => {
    const database = await engine.fresh();
    databases.push(database);
    location = database.location;
    return location;
  };
  async function open(at = location, lockTimeoutMs?: number): Promise<Stores> {
    const stores = await openStores({ path: at, lockTimeoutMs });
    opened.push(stores);
    return stores;
  }

  describe("the change log", () => {
    it("appends one entry per changed resource in the writing transaction, and stamps its revision on the row", async () => {
      await fresh();
      const stores = await open();
      const seen: LogEntry[] = [];
      stores.changes.subscribe((_change, entry) => seen.push(entry));
      const cluster = await stores.clusters.create({ org: "", name: "dataplane_1", pool: "default", endpoint: "", enabled: true, auth: IN_CLUSTER });
      // The default pool (stored by the first write), the cluster, its implicit queue, and the pool
      // again: its member clusters changed.
      expect(seen.map((e) => [e.revision, e.change.kind, e.op])).toEqual([
        [1, "pool", "put"],
        [2, "cluster", "put"],
        [3, "queue", "put"],
        [4, "pool", "put"],
      ]);
      expect((seen[3]!.state as { memberClusters: string[] }).memberClusters).toEqual(["dataplane_1"]);
      expect(cluster.revision).toBe(2);
      expect((seen[1]!.state as { name: string; createTime: Date }).createTime).toBeInstanceOf(Date);
      expect((await stores.queues.get("", "dataplane_1")).revision).toBe(3);

      const drained = await stores.clusters.setState("", "dataplane_1", "DRAINED");
      expect([drained.revision, (await stores.queues.get("", "dataplane_1")).revision]).toEqual([5, 6]);
      await stores.clusters.delete("", "dataplane_1", drained.etag);
      expect(seen.slice(-3).map((e) => [e.change.kind, e.op])).toEqual([
        ["cluster", "delete"],
        ["queue", "delete"],
        ["pool", "put"],
      ]);
      expect(await stores.changes.currentRevision()).toBe(seen.at(-1)!.revision);
    });

    it("a rejected write leaves neither rows nor entries", async () => {
      await fresh();
      const stores = await open();
      await stores.pools.create("", "prod", POOL);
      const before = await stores.changes.currentRevision();
      await expect(stores.pools.create("", "prod", POOL)).rejects.toThrow(DomainError);
      await expect(stores.clusters.create({ org: "", name: "c1", pool: "missing", endpoint: "", enabled: true, auth: IN_CLUSTER })).rejects.toThrow(DomainError);
      expect(await stores.changes.currentRevision()).toBe(before);
      expect(await stores.changes.readAfter(before)).toEqual([]);
    });

    it("joins nested units of work, and sends every query inside one to its transaction", async () => {
      await fresh();
      const stores = await open();
      const seen: number[] = [];
      stores.changes.subscribe((_change, entry) => seen.push(entry.revision));
      // A unit that fails after a nested write leaves nothing, the nested write included.
      await expect(
        stores.changes.write(async () => {
          await stores.projects.create({ org: "", id: "inner", name: "", description: "" });
          expect(await stores.projects.find("", "inner")).toBeDefined();
          throw new Error("abandoned");
        }),
      ).rejects.toThrow("abandoned");
      expect(await stores.projects.find("", "inner")).toBeUndefined();
      expect(seen).toEqual([]);
      // Two writes in one unit commit together; listeners hear of both, in order, after the commit.
      await stores.changes.write(async () => {
        await stores.projects.create({ org: "", id: "a", name: "", description: "" });
        await stores.projects.create({ org: "", id: "b", name: "", description: "" });
        expect(seen).toEqual([]);
      });
      expect(seen).toEqual([1, 2]);
    });

    it("applies concurrent writes one at a time, and each returns once its change reached the listeners", async () => {
      await fresh();
      const stores = await open();
      let told = 0;
      stores.changes.subscribe(async () => {
        // A listener that reads (as routing does) delays nobody's commit, only its own write's return.
        await stores.changes.currentRevision();
        told++;
      });
      const created = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          stores.projects.create({ org: "", id: `p${i}`, name: "", description: "" }).then((project) => ({ project, told })),
        ),
      );
      expect(created.map(({ project }) => project.revision).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      for (const { project, told: toldThen } of created) expect(toldThen).toBeGreaterThanOrEqual(project.revision);
    });

    it("reaches another process's listeners through the log, in order, without in-process events", async () => {
      await fresh();
      const writer = await open();
      const reader = await open();
      const seen: string[] = [];
      reader.changes.subscribe((change) => seen.push(`${change.kind}`));
      reader.changes.follow(20);
      await writer.projects.create({ org: "", id: "team1", name: "", description: "" });
      await writer.labels.setDefault("", "", "label");
      await waitFor("the other connection's changes", () => seen.length === 2);
      expect(seen).toEqual(["project", "default-label"]);
      expect(reader.changes.appliedRevision).toBe(await writer.changes.currentRevision());
    });

    it("compacts beyond the retention, and knows the oldest revision a reader can resume from", async () => {
      await fresh();
      const stores = await open();
      for (let i = 0; i < 10; i++) await stores.projects.create({ org: "", id: `p${i}`, name: "", description: "" });
      expect(await stores.changes.oldestResumable()).toBe(0);
      const later = Date.now() + 1_000;
      // Either rule alone keeps an entry: young ones stay whatever their number, recent ones whatever their age.
      expect(await stores.changes.compact({ maxEntries: 4, maxAgeMs: 3_600_000 })).toBe(0);
      expect(await stores.changes.compact({ maxEntries: 1_000, maxAgeMs: 0 }, later)).toBe(0);
      expect(await stores.changes.compact({ maxEntries: 4, maxAgeMs: 0 }, later)).toBe(6);
      expect(await stores.changes.oldestResumable()).toBe(6);
      expect((await stores.changes.readAfter(0)).map((e) => e.revision)).toEqual([7, 8, 9, 10]);
      expect(await stores.changes.compact({ maxEntries: 0, maxAgeMs: 0 }, later)).toBe(3);
      expect((await stores.changes.readAfter(0)).map((e) => e.revision)).toEqual([10]);
      // Revisions are never reused after compaction.
      await stores.projects.create({ org: "", id: "p10", name: "", description: "" });
      expect(await stores.changes.currentRevision()).toBe(11);
    });

    it("reads everything again, instead of entry by entry, after compaction removed entries it had not applied", async () => {
      await fresh();
      const writer = await open();
      const reader = await open();
      let resyncs = 0;
      const seen: number[] = [];
      reader.changes.onResync(() => void resyncs++);
      reader.changes.subscribe((_change, entry) => seen.push(entry.revision));
      for (let i = 0; i < 5; i++) await writer.projects.create({ org: "", id: `p${i}`, name: "", description: "" });
      await reader.changes.catchUp();
      expect(seen).toEqual([1, 2, 3, 4, 5]);
      for (let i = 5; i < 9; i++) await writer.projects.create({ org: "", id: `p${i}`, name: "", description: "" });
      expect(await writer.changes.compact({ maxEntries: 1, maxAgeMs: 0 }, Date.now() + 1_000)).toBe(8);
      await reader.changes.catchUp();
      expect([resyncs, reader.changes.appliedRevision]).toEqual([1, 9]);
      expect(seen).toEqual([1, 2, 3, 4, 5]);
      // Caught up again, it follows entry by entry.
      await writer.projects.create({ org: "", id: "p9", name: "", description: "" });
      await reader.changes.catchUp();
      expect([resyncs, seen.at(-1)]).toEqual([1, 10]);
    });

    it("answers UNAVAILABLE, changing nothing, when another writer holds the lock past the lock timeout", async () => {
      await fresh();
      const stores = await open(location, 200);
      // Another connection (as another process would) holds the write lock in an open transaction.
      let release: () => void = () => undefined;
      const locked = new Promise<void>((resolve) => (release = resolve));
      let holding: () => void = () => undefined;
      const held = new Promise<void>((resolve) => (holding = resolve));
      const other = await open();
      const holder = other.changes.write(async () => {
        holding();
        await locked;
      });
      await held;
      try {
        const error = await stores.pools.create("", "prod", POOL).then(
          () => undefined,
          (caught: unknown) => caught as DomainError,
        );
        expect(error?.kind).toBe("unavailable");
        expect(error?.message).toMatch(/retry/);
      } finally {
        release();
        await holder;
      }
      expect(await stores.pools.findStored("", "prod")).toBeUndefined();
      expect((await stores.pools.create("", "prod", POOL)).name).toBe("prod");
    });

    it("fails no API write while another process writes continuously (what sync --once does)", async () => {
      const server = await startTestServer({ databasePath: await fresh() });
      try {
        const clusters = createClient(ClusterService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
        await clusters.createCluster({ cluster: seedCluster("dataplane_1") });
        const other = worker("write-status", location, "dataplane_1");
        await waitFor("the other process writing", () => other.lines.includes("writing"), 30_000);
        let failures = 0;
        for (let i = 0; i < 300; i++) {
          const call = i % 2 === 0 ? clusters.drainCluster({ name: "dataplane_1" }) : clusters.activateCluster({ name: "dataplane_1" });
          await call.catch(() => failures++);
        }
        other.say("stop");
        await waitFor("the other process's count", () => other.lines.some((l) => l.startsWith("wrote")), 30_000);
        const [, wrote, , failed] = other.lines.find((l) => l.startsWith("wrote"))!.split(" ");
        expect(failures).toBe(0);
        expect(Number(failed)).toBe(0);
        expect(Number(wrote)).toBeGreaterThan(0);
        // The other process's sync status reached this server through the log.
        await waitFor("the other process's status", async () => (await clusters.getCluster({ name: "dataplane_1" })).cluster?.syncStatus?.objectsApplied === Number(wrote) - 1);
      } finally {
        await server.stop();
      }
    });

    it("a process killed inside a transaction leaves no partial change behind", async () => {
      await fresh();
      await (await open()).engine.close();
      const hung = worker("hang-in-transaction", location);
      await waitFor("the transaction to be open", () => hung.lines.includes("inside"), 30_000);
      hung.child.kill("SIGKILL");
      await new Promise((resolve) => hung.child.once("exit", resolve));
      const stores = await open();
      expect(await stores.pools.findStored("", "half-written")).toBeUndefined();
      expect(await stores.changes.readAfter(0)).toEqual([]);
      expect((await stores.pools.create("", "after", POOL)).revision).toBe(await stores.changes.currentRevision());
    });

    it("migrates a fresh database from two processes at once, 20 times over", async () => {
      const workers = [worker("migrate"), worker("migrate")];
      await waitFor("both workers", () => workers.every((w) => w.lines.includes("ready")), 30_000);
      for (let i = 0; i < 20; i++) {
        const target = await fresh();
        for (const w of workers) w.say(`go ${target}`);
        await waitFor(`both migrations of ${target}`, () => workers.every((w) => w.lines.some((l) => l.endsWith(target) || l.includes(`${target} `))), 30_000);
        for (const w of workers) expect(w.lines.find((l) => l.includes(target)), w.lines.join("\n")).toBe(`ok ${target}`);
      }
      for (const w of workers) w.child.kill();
    });
  });

  describe("the sync lease", () => {
    it("has one holder at a time; another may take it only once it expired or was released", async () => {
      await fresh();
      const a = new LeaseStore((await open()).changes);
      const b = new LeaseStore((await open()).changes);
      const now = Date.now();
      expect((await a.acquire("sync", "a", 1_000, undefined, now)).holder).toBe("a");
      expect((await b.acquire("sync", "b", 1_000, undefined, now + 500)).holder).toBe("a");
      expect((await a.acquire("sync", "a", 1_000, undefined, now + 900)).expiresAt.getTime()).toBe(now + 1_900);
      expect((await b.acquire("sync", "b", 1_000, undefined, now + 1_800)).holder).toBe("a");
      expect((await b.acquire("sync", "b", 1_000, undefined, now + 1_901)).holder).toBe("b");
      await b.release("sync", "b");
      expect((await a.acquire("sync", "a", 1_000, undefined, now + 1_902)).holder).toBe("a");
    });
  });
});

describe("the leader elector", () => {
  it("a leader whose renewals fail steps down by its renew deadline, before the lease could be taken", async () => {
    let failing = false;
    const leases = {
      acquire: (_name: string, holder: string, durationMs: number) => {
        const now = Date.now();
        if (failing) throw new Error("database is locked");
        return { holder, acquiredAt: new Date(now), renewedAt: new Date(now), expiresAt: new Date(now + durationMs) };
      },
      release: () => undefined,
    } as unknown as LeaseStore;
    const events: string[] = [];
    const elector = new LeaderElector(leases, "sync", "a", { durationMs: 3_000, renewIntervalMs: 100, renewDeadlineMs: 600, retryIntervalMs: 100 }, {
      onStartedLeading: () => events.push("started"),
      onStoppedLeading: () => void events.push(`stopped after ${Date.now() - failedAt} ms`),
    });
    let failedAt = 0;
    await elector.start();
    expect(elector.isLeader).toBe(true);
    failedAt = Date.now();
    failing = true;
    await waitFor("the step-down", () => !elector.isLeader, 10_000);
    // Not before the deadline (a failed renewal alone is no reason), and well before the lease ends.
    const elapsed = Number(/stopped after (\d+)/.exec(events[1]!)![1]);
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(3_000);
    await elector.stop();
  });

  it("stop waits for the work to stop, and a stop followed by a start never releases the new term's lease", async () => {
    const released: string[] = [];
    const leases = {
      acquire: (_name: string, holder: string, durationMs: number) =>
        ({ holder, acquiredAt: new Date(), renewedAt: new Date(), expiresAt: new Date(Date.now() + durationMs) }),
      release: (_name: string, holder: string) => released.push(holder),
    } as unknown as LeaseStore;
    let running = false;
    let finishStop: () => void = () => undefined;
    const elector = new LeaderElector(leases, "sync", "a", { durationMs: 3_000, renewIntervalMs: 100, renewDeadlineMs: 600, retryIntervalMs: 100 }, {
      onStartedLeading: () => (running = true),
      onStoppedLeading: () => new Promise<void>((resolve) => (finishStop = () => { running = false; resolve(); })),
    });
    await elector.start();
    const stopping = elector.stop();
    const restarted = elector.start();
    finishStop();
    await stopping;
    await restarted;
    expect(released).toEqual([]);
    expect(elector.isLeader).toBe(true);
    const last = elector.stop();
    let resolved = false;
    void last.then(() => (resolved = true));
    await new Promise((r) => setImmediate(r));
    expect(resolved).toBe(false);
    finishStop();
    await last;
    expect(running).toBe(false);
    expect(released).toEqual(["a"]);
  });
});
