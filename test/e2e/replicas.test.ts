import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { get } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";
import { testEngines, type TestDatabase } from "../support/engines.js";
import { StandInApiServer } from "../support/kube/stand-in-apiserver.js";

interface Replica {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  /** What it wrote to stderr: a crash's stack, for the failure message. */
  stderr: string[];
}

let dir = "";
let replicas: Replica[] = [];
let database: TestDatabase | undefined;
let kube: StandInApiServer | undefined;
afterEach(async () => {
  await kube?.stop();
  kube = undefined;
  for (const replica of replicas) replica.child.kill("SIGKILL");
  await Promise.all(replicas.map((r) => (r.child.exitCode === null && r.child.signalCode === null ? new Promise((resolve) => r.child.once("exit", resolve)) : null)));
  replicas = [];
  if (dir) rmSync(dir, { recursive: true, force: true });
  await database?.drop();
  database = undefined;
});

/** `clusterplane serve` as its own process (from the sources), on the shared database. */
async function startReplica(args: string[]): Promise<Replica> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (text) => stderr.push(text));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      if (typeof line.url === "string" && String(line.msg).includes("listening")) resolve(line.url);
    });
    child.once("exit", (code) => reject(new Error(`serve exited early with ${code}`)));
  });
  const replica = { child, url, lines, stderr };
  replicas.push(replica);
  return replica;
}

const clients = (url: string) => {
  const transport = createGrpcTransport({ baseUrl: url });
  return {
    pools: createClient(ClusterPoolService, transport),
    clusters: createClient(ClusterService, transport),
    queues: createClient(QueueService, transport),
    projects: createClient(ProjectService, transport),
    ecl: createClient(ExecutionClusterLabelService, transport),
  };
};

/** Polls `call` until `accept` holds for its answer (or its error). */
async function eventually<T>(what: string, call: () => Promise<T>, accept: (outcome: T | ConnectError) => boolean): Promise<void> {
  let last: unknown;
  try {
    await waitFor(what, async () => accept((last = await call().catch((error) => ConnectError.from(error)))), 20_000);
  } catch (error) {
    throw new Error(`${(error as Error).message}; the last answer was ${last instanceof Error ? last.message : JSON.stringify(last, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
  }
}

// SQLite: one file; PostgreSQL (when reachable): one database, every replica on it.
describe.each(testEngines())("two servers on one database ($name)", (engine) => {
  it("B answers from every write made through A: each noun, and routing", async () => {
    database = await engine.fresh();
    const db = database.location;
    const [a, b] = await Promise.all([startReplica(["--db", db, "--no-sync"]), startReplica(["--db", db, "--no-sync"])]);
    const onA = clients(a.url);
    const onB = clients(b.url);
    const select = (queue?: string) =>
      onB.ecl.selectCluster({
        project: "team1",
        domain: "development",
        executionId: "exec-1",
        target: queue ? { case: "queue", value: queue } : { case: undefined },
      });

    await onA.pools.createClusterPool({ clusterPool: seedProdPool() });
    await eventually("the pool on B", () => onB.pools.getClusterPool({ name: "prod" }), (r) => !(r instanceof ConnectError));
    for (const name of ["dataplane_1", "dataplane_2"]) await onA.clusters.createCluster({ cluster: seedCluster(name, "prod") });
    // A write through A is answered by B within a second (a NOTIFY on PostgreSQL, the poll on SQLite).
    const written = Date.now();
    await onA.projects.createProject({ project: { id: "team1" } });
    await eventually("the project on B", () => onB.projects.getProject({ id: "team1" }), (r) => !(r instanceof ConnectError));
    expect(Date.now() - written).toBeLessThan(1_000);
    await onA.ecl.createClusterLabel({ label: { name: "label1", clusters: [{ cluster: "dataplane_1", weight: 1 }] } });
    await onA.ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "team1", domain: "development", value: "label1" } });
    await eventually("B routing by the assignment", () => select(), (r) => !(r instanceof ConnectError) && r.cluster === "dataplane_1");

    // A label edit through A re-routes on B.
    const label = (await onA.ecl.getClusterLabel({ name: "label1" })).label!;
    await onA.ecl.updateClusterLabel({ label: { name: "label1", clusters: [{ cluster: "dataplane_2", weight: 1 }], etag: label.etag } });
    await eventually("B following the label edit", () => select(), (r) => !(r instanceof ConnectError) && r.cluster === "dataplane_2");

    // A drain through A: B routes nowhere and says why.
    await onA.clusters.drainCluster({ name: "dataplane_2" });
    await eventually("B seeing the drain", () => select(), (r) => r instanceof ConnectError && /drained/.test(r.rawMessage));
    await onA.clusters.activateCluster({ name: "dataplane_2" });

    // The default label, when the assignment goes.
    await onA.ecl.createClusterLabel({ label: { name: "fallback", clusters: [{ cluster: "dataplane_1", weight: 1 }] } });
    await onA.ecl.setDefaultClusterLabel({ label: "fallback" });
    await onA.ecl.deleteExecutionClusterLabel({ project: "team1", domain: "development" });
    await eventually("B using the default label", () => select(), (r) => !(r instanceof ConnectError) && r.label === "fallback");

    // A queue drained through A is refused on B.
    await onA.queues.drainQueue({ name: "dataplane_1" }).catch(() => undefined);
    await onA.queues.createQueue({ queue: { name: "batch", pool: "prod", clusters: ["*"] } });
    await eventually("B routing through the queue", () => select("batch"), (r) => !(r instanceof ConnectError) && /queue batch/.test(r.reason));
    await onA.queues.drainQueue({ name: "batch" });
    await eventually("B refusing the drained queue", () => select("batch"), (r) => r instanceof ConnectError && r.code === Code.FailedPrecondition);

    // An archived project is no longer routed on B.
    await onA.projects.archiveProject({ id: "team1" });
    await eventually("B refusing the archived project", () => select(), (r) => r instanceof ConnectError && /archived/i.test(r.rawMessage));
  });

  it("runs one sync loop: the second server follows, and takes over within the lease after the leader is killed", async () => {
    dir = mkdtempSync(join(tmpdir(), "clusterplane-replicas-"));
    database = await engine.fresh();
    const db = database.location;
    const config = join(dir, "clusterplane.yaml");
    writeFileSync(config, "leaderElection:\n  leaseDuration: 3s\n  renewInterval: 500ms\n  renewDeadline: 2s\n  retryInterval: 250ms\n");
    const first = await startReplica(["--db", db, "--config", config]);
    const second = await startReplica(["--db", db, "--config", config]);
    const leader = async (replica: Replica) => {
      const readiness = (await (await fetch(`${replica.url}/readyz`)).json()) as { checks: { syncLeader: string } };
      return readiness.checks.syncLeader.startsWith("this process");
    };
    await waitFor("exactly one leader", async () => (await leader(first)) !== (await leader(second)), 20_000);
    expect(await leader(first)).toBe(true);
    const metrics = await (await fetch(`${second.url}/metrics`)).text();
    expect(metrics).toMatch(/^clusterplane_sync_leader 0$/m);
    expect(second.lines.some((l) => String(l.msg).includes("led by"))).toBe(true);

    first.child.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor("the second server to lead", () => leader(second), 20_000);
    // The lease (3 s) had to expire first: a follower never starts while the leader may still run.
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    expect(await (await fetch(`${second.url}/metrics`)).text()).toMatch(/^clusterplane_sync_leader 1$/m);
  });
});

/** Whether this replica says (on /readyz) that it runs the sync loop. */
async function leads(replica: Replica): Promise<boolean> {
  const readiness = JSON.parse(await getOnFreshConnection(`${replica.url}/readyz`)) as { checks: { syncLeader: string } };
  return readiness.checks.syncLeader.startsWith("this process");
}

/**
 * A GET on a connection of its own: fetch's pooled keep-alive connection may be the one the server
 * is closing as idle just then ("other side closed"), which says nothing about the server.
 */
function getOnFreshConnection(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

describe.each(testEngines())("three replicas on one database ($name)", (engine) => {
  it("answer alike within a second, sync once, fail over within 15 s of a kill -9 and lose no acknowledged write", async () => {
    dir = mkdtempSync(join(tmpdir(), "clusterplane-replicas-"));
    database = await engine.fresh();
    kube = await StandInApiServer.start();
    const credentials = kube.writeCredentials(dir);
    const config = join(dir, "clusterplane.yaml");
    // The default leader election timings: what the 15 s failover promise is about.
    writeFileSync(config, [
      "sync:", "  requestTimeout: 2s", `  credentialDirectories: [${JSON.stringify(dir)}]`, "",
    ].join("\n"));
    const servers = await Promise.all([0, 1, 2].map(() => startReplica(["--db", database!.location, "--config", config])));
    const onEach = servers.map((server) => clients(server.url));

    // Writes through each replica; every one is seen by the others.
    await onEach[0]!.pools.createClusterPool({ clusterPool: seedProdPool() });
    // Both clusters are the one stand-in Kubernetes API: provisioning is idempotent.
    const standIn = (name: string) => {
      const cluster = seedCluster(name, "prod");
      cluster.endpoint = kube!.url;
      cluster.auth = { method: { case: "bearerTokenFile", value: credentials } } as typeof cluster.auth;
      return cluster;
    };
    await onEach[1]!.clusters.createCluster({ cluster: standIn("dataplane_1") });
    await onEach[2]!.clusters.createCluster({ cluster: standIn("dataplane_2") });
    await onEach[0]!.projects.createProject({ project: { id: "team1" } });
    const acknowledged: string[] = ["team1"];

    // Routing: a label written through one replica routes identically on all three within a second.
    const routeOn = (i: number) =>
      onEach[i]!.ecl.selectCluster({ project: "team1", domain: "development", executionId: "exec-7", target: { case: undefined } })
        .then((answer) => answer.cluster, (error: unknown) => ConnectError.from(error).code);
    for (const [i, target] of [[1, "dataplane_1"], [2, "dataplane_2"], [0, "dataplane_1"]] as const) {
      const through = onEach[i]!.ecl;
      const label = await through.getClusterLabel({ name: "route" }).then((r) => r.label, () => undefined);
      const clusters = [{ cluster: target, weight: 1 }];
      if (label) await through.updateClusterLabel({ label: { name: "route", clusters, etag: label.etag } });
      else {
        await through.createClusterLabel({ label: { name: "route", clusters } });
        await through.updateExecutionClusterLabel({ executionClusterLabel: { project: "team1", domain: "development", value: "route" } });
      }
      const written = Date.now();
      await waitFor(`all three routing to ${target}`, async () => (await Promise.all([0, 1, 2].map(routeOn))).every((c) => c === target), 10_000);
      expect(Date.now() - written, `a label written through replica ${i} took this long to route everywhere`).toBeLessThan(1_000);
    }

    // One sync loop: the leader provisions team1's namespaces in the stand-in Kubernetes API.
    await waitFor("exactly one leader", async () => (await Promise.all(servers.map(leads))).filter(Boolean).length === 1, 30_000);
    const leader = servers[(await Promise.all(servers.map(leads))).indexOf(true)]!;
    const followers = servers.filter((s) => s !== leader);
    await waitFor("team1's namespaces", () => kube!.getObject("namespaces", "", "team1-development") !== undefined, 30_000);

    // Writes keep arriving through every replica while the leader dies; the ones answered OK count.
    let writing = true;
    const writers = servers.map(async (server, i) => {
      for (let n = 0; writing; n++) {
        const id = `p${i}x${n}`;
        const ok = await onEach[i]!.projects.createProject({ project: { id } }).then(() => true, () => false);
        if (ok) acknowledged.push(id);
        if (!ok && server !== leader) await new Promise((resolve) => setTimeout(resolve, 50));
        if (!ok && server === leader) return;
      }
    });
    await waitFor("a few writes through every replica", () => acknowledged.length > 12, 30_000);
    leader.child.kill("SIGKILL");
    const killedAt = Date.now();

    // A project created after the kill is provisioned by whichever survivor takes over.
    await clients(followers[0]!.url).projects.createProject({ project: { id: "after-the-kill" } });
    acknowledged.push("after-the-kill");
    await waitFor("a survivor to provision after-the-kill", () => kube!.getObject("namespaces", "", "after-the-kill-production") !== undefined, 30_000);
    expect(Date.now() - killedAt, "sync resumed this long after the kill").toBeLessThan(15_000);
    const crashed = followers.filter((f) => f.child.exitCode !== null || f.child.signalCode !== null);
    expect(crashed.map((f) => f.stderr.join("\n") + JSON.stringify(f.lines.slice(-5))), "a survivor exited").toEqual([]);
    expect((await Promise.all(followers.map(leads))).filter(Boolean)).toHaveLength(1);

    writing = false;
    await Promise.all(writers);
    for (const survivor of followers) {
      const projects = clients(survivor.url).projects;
      const ids = new Set<string>();
      let pageToken = "";
      do {
        const page = await projects.listProjects({ pageSize: 500, pageToken });
        for (const project of page.projects) ids.add(project.id);
        pageToken = page.nextPageToken;
      } while (pageToken);
      expect(acknowledged.filter((id) => !ids.has(id)), `acknowledged writes missing on ${survivor.url}`).toEqual([]);
    }
  });
});
