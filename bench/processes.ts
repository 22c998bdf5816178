/**
 * What the benches that serve clusterplane as processes share: building and starting
 * `clusterplane serve` (output to files, port from its start-up line) and stopping it, gRPC load
 * from a worker thread with the server's CPU per call, and a Watch client process that times
 * when each write arrives.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Worker } from "node:worker_threads";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ProjectService } from "../gen/clusterplane/v1/project_pb.js";
import { descendants, machineBusySeconds, processCpuSeconds, treeCpuSeconds } from "./h2load.js";

/** dist/ from the sources as they are now; an older build is measured (and said so) if that fails. */
export function buildCli(): void {
  const build = spawnSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
  if (build.status !== 0) console.log("npm run build failed: measuring the dist/ already there, which may be stale");
}

/** A gRPC message on the wire: a byte saying "not compressed", the length (big-endian), the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

export interface Server {
  name: string;
  child: ChildProcess;
  port: number;
  /** Its stdout, in a file: the bench reads it between runs, never while the load runs. */
  logFile: string;
  /** How far the log has been read for failed calls. */
  logRead: number;
}

export function serveArgs(database: string, extra: string[] = []): string[] {
  return ["dist/main.js", "serve", "--db", database, "--port", "0", "--no-sync", ...extra];
}

/** The port from serve's JSON log line "clusterplane listening on http://127.0.0.1:PORT (…)". */
export function listeningPort(line: string): number | undefined {
  const match = /clusterplane listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
  return match ? Number(match[1]) : undefined;
}

/**
 * `node ARGS` as its own process, once a line of its stdout gives its port. Output goes to files:
 * the bench must not spend the machine's CPU reading a log while it measures.
 */
export async function startServer(name: string, args: string[], dir: string, portOf: (line: string) => number | undefined): Promise<Server> {
  const logFile = join(dir, `${name.replace(/\W+/g, "-")}.log`);
  const errFile = `${logFile}.err`;
  const [out, err] = [openSync(logFile, "w"), openSync(errFile, "w")];
  // The default per-RPC log policy, set explicitly: a successful read writes no log line.
  const env = { ...process.env, CLUSTERPLANE_LOG_RPC_CALLS: "notable" };
  const child = spawn(process.execPath, args, { stdio: ["ignore", out, err], env });
  closeSync(out);
  closeSync(err);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const log = readFileSync(logFile, "utf8");
    const port = log.split("\n").map(portOf).find((each) => each !== undefined);
    if (port !== undefined) return { name, child, port, logFile, logRead: log.length };
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill("SIGKILL");
      throw new Error(`${name} did not start (exit ${child.exitCode}): ${readFileSync(errFile, "utf8").trim() || log.trim()}`);
    }
    await sleep(25);
  }
}

/** The log lines a server wrote since the last look: failed calls (by grpc code) and all lines. */
export function readNewLog(server: Server): { failedCalls: number; lines: number } {
  const log = readFileSync(server.logFile, "utf8");
  const fresh = log.slice(server.logRead).split("\n").filter(Boolean);
  server.logRead = log.length;
  let failedCalls = 0;
  for (const line of fresh) {
    try {
      const entry = JSON.parse(line) as { msg?: string; code?: string };
      if (entry.msg === "rpc" && entry.code !== "OK") failedCalls++;
    } catch {
      // Not JSON (a Node warning); not a call.
    }
  }
  return { failedCalls, lines: fresh.length };
}

export async function stop(server: Server): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const workers = descendants(child.pid!);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  if ((await Promise.race([exited, sleep(5_000).then(() => "late")])) === "late") child.kill("SIGKILL");
  // Forked workers left behind by a primary that did not wait for them (still ours: same command).
  for (const pid of workers) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("main.js")) process.kill(pid, "SIGKILL");
    } catch {
      // Already gone, as it should be.
    }
  }
}

export function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function fixed(value: number, digits: number, width = 0): string {
  return value.toFixed(digits).padStart(width);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- Load from a worker thread ---------------------------------------------------------------

export interface ThreadLoad {
  /** A gRPC method path, e.g. /clusterplane.v1.ProjectService/CreateProject. */
  path: string;
  /** Serialized request messages, sent in turn (each once, if there are enough). */
  requests: Uint8Array[];
  concurrency: number;
  durationMs: number;
  /** CPU seconds of other processes doing the calls' work (database backends), sampled with the server's. */
  alsoSample?: () => number;
}

export interface ThreadLoadResult {
  callsPerSecond: number;
  calls: number;
  /** The server's CPU (its process and any under it) per call over the loaded phase, in µs. */
  cpuUsPerCall: number;
  /** The same for what `alsoSample` measures (0 without it). */
  alsoUsPerCall: number;
  /** CPU the rest of the machine (neither the server nor this process) used meanwhile, in cores. */
  otherCores: number;
}

/**
 * Closed-loop unary calls from bench/grpc-load-thread.mjs (a @grpc/grpc-js client in a worker
 * thread, so the calls do not share this event loop); CPU is sampled once the client has
 * connected and again when the calls stop. A failed call fails the run.
 */
export async function threadLoad(server: { child: ChildProcess; port: number }, { alsoSample = () => 0, ...load }: ThreadLoad): Promise<ThreadLoadResult> {
  const pid = server.child.pid!;
  const sample = () => ({ server: treeCpuSeconds(pid), also: alsoSample(), self: processCpuSeconds(process.pid), machine: machineBusySeconds() });
  let start = sample();
  const worker = new Worker(new URL("./grpc-load-thread.mjs", import.meta.url), {
    workerData: { address: `127.0.0.1:${server.port}`, ...load },
  });
  const { calls, seconds } = await new Promise<{ calls: number; seconds: number }>((resolve, reject) => {
    worker.on("message", (message: { started?: true; calls?: number; seconds?: number }) => {
      if (message.started) start = sample();
      else resolve(message as { calls: number; seconds: number });
    });
    worker.once("error", reject);
  });
  const end = sample();
  const serverCpu = end.server - start.server;
  const alsoCpu = end.also - start.also;
  return {
    callsPerSecond: calls / seconds,
    calls,
    cpuUsPerCall: (serverCpu * 1e6) / calls,
    alsoUsPerCall: (alsoCpu * 1e6) / calls,
    otherCores: (end.machine - start.machine - serverCpu - alsoCpu - (end.self - start.self)) / seconds,
  };
}

// --- Watch: when does a write arrive? ---------------------------------------------------------

export interface Watcher {
  /** Arrival times (wall-clock ms) of each change since the last report, by revision. */
  report(): Promise<Record<string, number[]>>;
  close(): void;
}

/** Starts the Watch client process (bench/watch-client.ts) and waits until its streams are open. */
export async function watcher(url: string, streams: number): Promise<Watcher> {
  const child = spawn(process.execPath, ["--import", "tsx", "bench/watch-client.ts", url, String(streams)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const next = () => new Promise<string>((resolveLine) => lines.once("line", resolveLine));
  if ((await next()) !== "ready") throw new Error("the watch client did not get ready");
  return {
    async report() {
      child.stdin!.write("report\n");
      return JSON.parse(await next()) as Record<string, number[]>;
    },
    close() {
      child.kill("SIGKILL");
    },
  };
}

export interface Deliveries {
  /** From the start of each write call to each arrival at the watcher, in ms. */
  delays: number[];
  /** How long each write call took (to its answer), in ms. */
  writes: number[];
  /** From each write's answer to its arrival, in ms (below 0 when it arrived before the answer did). */
  afterAnswer: number[];
  missing: number;
}

let nextSampleProject = 0;

/**
 * Writes `count` projects through `writeUrl`, one at a time, with `pauseMs()` between them; when
 * each reached the watcher. Times run from the start of the call, so they include the write.
 */
export async function deliveryTimes(
  writeUrl: string,
  watching: Watcher,
  { count, expectedPerWrite = 1, pauseMs = () => 50 }: { count: number; expectedPerWrite?: number; pauseMs?: () => number },
): Promise<Deliveries> {
  const projects = createClient(ProjectService, createGrpcTransport({ baseUrl: writeUrl }));
  const sent = new Map<string, { started: number; answered: number }>();
  const writes: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.timeOrigin + performance.now();
    const created = await projects.createProject({ project: { id: `sample-${process.pid}-${nextSampleProject++}` } });
    const answered = performance.timeOrigin + performance.now();
    writes.push(answered - started);
    sent.set(String(created.project!.revision), { started, answered });
    await sleep(pauseMs());
  }
  await sleep(1_000);
  const arrivals = await watching.report();
  const delays: number[] = [];
  const afterAnswer: number[] = [];
  let missing = 0;
  for (const [revision, { started, answered }] of sent) {
    const times = arrivals[revision] ?? [];
    missing += expectedPerWrite - times.length;
    for (const time of times) {
      delays.push(time - started);
      afterAnswer.push(time - answered);
    }
  }
  return { delays, writes, afterAnswer, missing };
}

/** The value below which p % of the values lie (nearest rank on a sorted copy); NaN when empty. */
export function percentileOf(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
