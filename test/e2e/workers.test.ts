import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { get } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { grpcJsAsConnectClient } from "../support/clients.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { waitFor } from "../support/wait.js";

// `clusterplane serve --workers 2` as a user runs it: the built CLI, one primary and two workers
// sharing the port and one database file.

const BIN = "bin/clusterplane.mjs";
/** The machine is small and shared: starting and restarting processes can take seconds. */
const DEADLINE_MS = 20_000;

interface LogLine {
  msg: string;
  worker?: number;
  [key: string]: unknown;
}

interface Served {
  child: ChildProcess;
  lines: LogLine[];
  stderr: string[];
  url: string;
  /** host:port, for grpc-js. */
  address: string;
  port: number;
  /** The workers the start-up line named. */
  workers: { worker: number; pid: number }[];
  exit: Promise<number | null>;
}

const dirs: string[] = [];
const running: Served[] = [];

afterAll(async () => {
  for (const served of running) if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill("SIGTERM");
  await Promise.all(running.map((served) => served.exit));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function databaseFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-workers-"));
  dirs.push(dir);
  return join(dir, "state.db");
}

/** Starts `serve --workers 2` and waits for the one start-up line, which the primary prints once all workers listen. */
async function serveWithWorkers(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [BIN, "serve", "--workers", "2", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CLUSTERPLANE_LOG_RPC_CALLS: "all" },
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const lines: LogLine[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (text) => stderr.push(text));
  const started = await new Promise<LogLine>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (text) => {
      const line = JSON.parse(text) as LogLine;
      lines.push(line);
      if (typeof line.url === "string" && line.msg.includes("listening on")) resolve(line);
    });
    void exit.then((code) => reject(new Error(`serve exited early with ${code}: ${stderr.join("\n")}`)));
  });
  const url = String(started.url);
  const port = Number(new URL(url).port);
  const served = { child, lines, stderr, url, port, address: `127.0.0.1:${port}`, workers: started.workers as Served["workers"], exit };
  running.push(served);
  return served;
}

/** Its own connection: grpc-js shares subchannels between channels to one address unless told not to. */
function ownConnection<S extends Parameters<typeof grpcJsAsConnectClient>[0]>(service: S, address: string) {
  return grpcJsAsConnectClient(service, address, { channelOptions: { "grpc.use_local_subchannel_pool": 1 } });
}

/** The workers whose log has a line for an RPC of `method` (every RPC logs one with CLUSTERPLANE_LOG_RPC_CALLS=all). */
function workersServing(served: Served, method: string): Set<number> {
  return new Set(served.lines.filter((line) => line.worker !== undefined && JSON.stringify(line).includes(`/${method}`)).map((line) => line.worker!));
}

/** A GET on a connection of its own, so that it may land on any worker. */
function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`${url}/metrics`, { agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      response.on("end", () => (response.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${response.statusCode}: ${body}`))));
    }).on("error", reject);
  });
}

function sample(metrics: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  const line = metrics
    .split("\n")
    .find((text) => (text.startsWith(`${name}{`) || text.startsWith(`${name} `)) && wanted.every((label) => text.includes(label)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("clusterplane serve --workers 2", () => {
  let served: Served;
  const CONNECTIONS = 6;
  let labels: ReturnType<typeof ownConnection<typeof ExecutionClusterLabelService>>[] = [];
  let pools: ReturnType<typeof ownConnection<typeof ClusterPoolService>>[] = [];
  const select = (client: (typeof labels)[number]) =>
    client.selectCluster({ project: "team1", domain: "development", executionId: "exec-1", target: { case: undefined } });

  beforeAll(async () => {
    served = await serveWithWorkers(["--db", databaseFile(), "--no-sync"]);
    labels = Array.from({ length: CONNECTIONS }, () => ownConnection(ExecutionClusterLabelService, served.address));
    pools = Array.from({ length: CONNECTIONS }, () => ownConnection(ClusterPoolService, served.address));
  });
  afterAll(() => {
    for (const client of [...labels, ...pools]) client.close();
  });

  it("announces itself once, naming both workers", () => {
    expect(served.lines.filter((line) => line.msg.includes("listening on"))).toHaveLength(1);
    expect(served.workers).toHaveLength(2);
    expect(served.workers.every((w) => alive(w.pid))).toBe(true);
  });

  it("serves independent connections from both workers", async () => {
    for (const client of labels) await client.listClusterLabels({});
    await waitFor("the RPC log lines", () => served.lines.filter((l) => JSON.stringify(l).includes("/ListClusterLabels")).length >= CONNECTIONS, DEADLINE_MS);
    expect(workersServing(served, "ListClusterLabels")).toEqual(new Set(served.workers.map((w) => w.worker)));
  });

  it("shows a write through one connection to SelectCluster on every connection within a second", async () => {
    const writer = labels[0]!;
    const clusters = ownConnection(ClusterService, served.address);
    const projects = ownConnection(ProjectService, served.address);
    try {
      await pools[0]!.createClusterPool({ clusterPool: seedProdPool() });
      for (const name of ["dataplane_1", "dataplane_2"]) await clusters.createCluster({ cluster: seedCluster(name, "prod") });
      await projects.createProject({ project: { id: "team1" } });
      await writer.createClusterLabel({ label: { name: "label1", clusters: [{ cluster: "dataplane_1", weight: 1 }] } });
      await writer.updateExecutionClusterLabel({ executionClusterLabel: { project: "team1", domain: "development", value: "label1" } });
    } finally {
      clusters.close();
      projects.close();
    }
    // A worker that has not yet followed a write answers as before it (or refuses the project it does not know yet).
    const everywhere = async (cluster: string) =>
      (await Promise.all(labels.map((client) => select(client).catch(() => undefined)))).every((answer) => answer?.cluster === cluster);
    await waitFor("every connection routing to dataplane_1", () => everywhere("dataplane_1"), DEADLINE_MS);

    const label = (await writer.getClusterLabel({ name: "label1" })).label!;
    await writer.updateClusterLabel({ label: { name: "label1", clusters: [{ cluster: "dataplane_2", weight: 1 }], etag: label.etag } });
    const written = Date.now();
    await waitFor("every connection routing to dataplane_2", () => everywhere("dataplane_2"), DEADLINE_MS);
    expect(Date.now() - written).toBeLessThan(1_000);
  });

  it("counts RPCs in /metrics over all workers, whichever worker answers the scrape", async () => {
    const CALLS = 2 * CONNECTIONS;
    for (const client of pools) for (let i = 0; i < 2; i++) await client.getClusterPool({ name: "prod" });
    // Each worker served some of them: a scrape that saw one worker's counts would see fewer.
    await waitFor("the RPC log lines", () => served.lines.filter((l) => JSON.stringify(l).includes("/GetClusterPool")).length >= CALLS, DEADLINE_MS);
    expect(workersServing(served, "GetClusterPool").size).toBe(2);

    const counted = { service: "clusterplane.v1.ClusterPoolService", method: "GetClusterPool", code: "OK" };
    for (let i = 0; i < 2; i++) {
      const metrics = await scrape(served.url);
      expect(sample(metrics, "clusterplane_rpc_requests_total", counted)).toBe(CALLS);
      expect(sample(metrics, "clusterplane_rpc_duration_seconds_count", { method: "GetClusterPool" })).toBe(CALLS);
      // One family each, not one per worker; sync is off in both.
      expect(metrics.match(/^# TYPE clusterplane_rpc_requests_total /gm)).toHaveLength(1);
      expect(sample(metrics, "clusterplane_sync_leader")).toBe(0);
      expect(sample(metrics, "clusterplane_change_log_revision")).toBeGreaterThan(0);
    }
  });

  it("replaces a worker killed with SIGKILL while the other keeps serving", async () => {
    const victim = served.workers[0]!;
    process.kill(victim.pid, "SIGKILL");
    await waitFor("the primary to report the exit", () => served.lines.some((l) => l.msg.includes("exited unexpectedly") && l.worker === victim.worker), DEADLINE_MS);
    const exitLine = served.lines.find((l) => l.msg.includes("exited unexpectedly"))!;
    expect(exitLine).toMatchObject({ level: 50, signal: "SIGKILL" });

    // New connections meanwhile go to the worker still listening.
    const during = ownConnection(ClusterPoolService, served.address);
    expect((await during.getClusterPool({ name: "prod" })).clusterPool?.name).toBe("prod");
    during.close();

    await waitFor("the replacement to listen", () => served.lines.some((l) => l.msg.includes("replacement worker listens")), DEADLINE_MS);
    const replacement = served.lines.find((l) => l.msg.includes("replacement worker listens"))!;
    expect(alive(Number(replacement.pid))).toBe(true);
    served.workers = [...served.workers.slice(1), { worker: replacement.worker!, pid: Number(replacement.pid) }];

    // Every connection carries on; those the killed worker held reconnect.
    for (const client of labels) expect((await select(client)).cluster).toBe("dataplane_2");
    // The replacement takes its share of new connections.
    const fresh = Array.from({ length: CONNECTIONS }, () => ownConnection(ClusterPoolService, served.address));
    for (const client of fresh) await client.listClusterPools({});
    for (const client of fresh) client.close();
    await waitFor("the replacement serving", () => workersServing(served, "ListClusterPools").has(replacement.worker!), DEADLINE_MS);
  });

  it("stops every process on SIGTERM: exit 0, each worker closed its database, the port is closed", async () => {
    served.child.kill("SIGTERM");
    expect(await served.exit).toBe(0);
    for (const { worker, pid } of served.workers) {
      expect(alive(pid)).toBe(false);
      expect(served.lines.some((l) => l.worker === worker && l.msg === "stopped; database closed")).toBe(true);
    }
    const refused = await new Promise<string>((resolve) => {
      const socket = connect(served.port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve("connected");
      });
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(String(error.code)));
    });
    expect(refused).toBe("ECONNREFUSED");
    expect(served.stderr).toEqual([]);
  });
});

describe("clusterplane serve --workers 2 with sync on", () => {
  it("runs one sync loop: exactly one worker leads, and /metrics says 1", async () => {
    const served = await serveWithWorkers(["--db", databaseFile()]);
    await waitFor("a sync leader", async () => sample(await scrape(served.url), "clusterplane_sync_leader") === 1, DEADLINE_MS);
    const leads = served.lines.filter((l) => l.msg === "this process leads the cluster-sync loop");
    const follows = served.lines.filter((l) => /led by/.test(l.msg));
    expect(leads).toHaveLength(1);
    expect(follows).toHaveLength(1);
    expect(leads[0]!.worker).not.toBe(follows[0]!.worker);
    served.child.kill("SIGTERM");
    expect(await served.exit).toBe(0);
  });
});

describe("clusterplane serve --workers 2 that cannot start", () => {
  it("exits 2 once, with the port problem, without restarting workers in a loop", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const result = spawnSync(process.execPath, [BIN, "serve", "--workers", "2", "--port", String(port), "--db", databaseFile(), "--no-sync"], {
        encoding: "utf8",
        timeout: DEADLINE_MS,
      });
      expect(result.status).toBe(2);
      expect(result.stderr.match(/already in use/g)).toHaveLength(1);
      expect(result.stderr).toContain("--port");
      expect(result.stdout).not.toMatch(/listening on|exited unexpectedly/);
    } finally {
      taken.close();
    }
  });
});
