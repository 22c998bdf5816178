/**
 * `npm run bench -- grpc`: what a caller gets from `clusterplane serve`, measured from outside.
 *
 * The server under test is the built CLI in a process of its own, loaded by h2load (a C client,
 * in another process) over real sockets; the baseline is a bare @grpc/grpc-js server with an empty
 * handler, loaded the same way in the same run. The cases take turns (A B C D E, A B C D E, …) so
 * a shared machine's noise lands on all of them alike, and each figure is the median of the rounds.
 * Server CPU per call comes from /proc (the server's process and any workers it forks), so a
 * server that is fast only because it has the machine to itself shows up as costly.
 *
 * It prints; it never fails on a missed goal.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:http2";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { SelectClusterRequestSchema } from "../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { HealthCheckRequestSchema } from "../gen/health/v1/health_pb.js";
import { openStores } from "../src/store/stores.js";
import { populate } from "./fixture.js";
import { buildCli, fixed, grpcFrame, listeningPort, medianOf, readNewLog, serveArgs, sleep, startServer, stop, type Server } from "./processes.js";
import {
  descendants,
  findH2load,
  machineBusySeconds,
  runH2load,
  runLoadProcess,
  treeCpuSeconds,
  type LoadResult,
  type MeasuredPhase,
} from "./h2load.js";

/** At least 3; more (BENCH_ROUNDS=5) steadies the medians on a busy machine. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS) || 3);
const WARM_UP_SECONDS = 1;
const SECONDS = 4;
/** HTTP/2: 8 connections with 16 calls in flight on each, as a handful of busy callers would. */
const H2 = { connections: 8, streams: 16 };
/** HTTP/1.1 as curl-style clients use it: one request at a time per keep-alive connection, no pipelining. */
const H1 = { connections: 32, streams: 1 };
const WORKERS = 2;

const SELECT_PATH = "/clusterplane.v1.ExecutionClusterLabelService/SelectCluster";
const CHECK_PATH = "/grpc.health.v1.Health/Check";
const BARE_SERVER = fileURLToPath(new URL("./bare-grpc-server.mjs", import.meta.url));
const FALLBACK_LOAD = fileURLToPath(new URL("./grpc-load-worker.mjs", import.meta.url));
/** The lines bench/grpc-load-worker.mjs prints around its measured phase. */
const FALLBACK_PHASES = { start: "main-start", end: "main-end" };

type Protocol = "grpc" | "connect-json";

/** One request, written where the load generator reads it. */
interface BenchRequest {
  protocol: Protocol;
  path: string;
  /** The HTTP body: a length-prefixed protobuf message (gRPC) or JSON (Connect). */
  body: Buffer;
  file: string;
}

interface Case {
  name: string;
  server: Server;
  request: BenchRequest;
}

/** One run of one case: the load generator's figures and the server's CPU over the same phase. */
interface Sample extends LoadResult {
  cpuUsPerCall: number;
  /** Lines the server logged during the run, warm-up included. */
  logLines: number;
  /** CPU the rest of the machine (neither server nor load generator) used meanwhile, in cores. */
  otherCores: number;
}

type LoadRunner = (port: number, request: BenchRequest, phase: MeasuredPhase, seconds: number) => Promise<LoadResult>;

export async function grpcThroughputBench(): Promise<void> {
  buildCli();
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-bench-grpc-"));
  const servers: Server[] = [];
  try {
    const database = join(dir, "bench.db");
    const requests = await writeRequests(dir, database);
    const load = chooseLoad(dir);

    // Every server stays up for the whole run; an idle one costs the others next to nothing.
    const bare = await startServer("bare grpc-js", [BARE_SERVER], dir, bareServerPort);
    servers.push(bare);
    const ours = await startServer("clusterplane", serveArgs(database), dir, listeningPort);
    servers.push(ours);
    const baseline: Case = { name: "bare grpc-js, empty Health/Check", server: bare, request: requests.check };
    const select: Case = { name: "SelectCluster, gRPC", server: ours, request: requests.select };
    const cases: Case[] = [
      baseline,
      select,
      { name: "Health/Check, gRPC", server: ours, request: requests.check },
      { name: "SelectCluster, Connect JSON, HTTP/1.1", server: ours, request: requests.selectJson },
    ];
    let selectOnWorkers: Case | undefined;
    const workers = await startWorkers(database, dir);
    if (typeof workers === "string") console.log(`\n(--workers ${WORKERS} not measured: ${workers})`);
    else {
      servers.push(workers);
      selectOnWorkers = { name: `SelectCluster, gRPC, --workers ${WORKERS}`, server: workers, request: requests.select };
      cases.push(selectOnWorkers);
    }

    // h2load counts HTTP 200 as success and cannot see grpc-status: check one answer of each first.
    for (const each of cases) await verifyAnswer(each);
    // Unmeasured: the servers' JIT warms up before the first round.
    for (const each of cases) await load(each.server.port, each.request, { started() {}, ended() {} }, 1);

    const samples = new Map<Case, Sample[]>(cases.map((each) => [each, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const each of cases) samples.get(each)!.push(await measure(each, load));
    }
    report(samples, { baseline, select, selectOnWorkers }, load === fallbackLoad);
  } finally {
    for (const server of servers) await stop(server);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fixture's database (written in process, then closed) and the request bodies. */
async function writeRequests(dir: string, database: string): Promise<Record<"select" | "selectJson" | "check", BenchRequest>> {
  const stores = await openStores({ path: database });
  const fixture = await populate(stores);
  await stores.engine.close();
  // One body for every call (h2load sends one file), so every call has the same executionId and
  // the weighted pick (a hash of it) lands on the same cluster each time; the work is the same as
  // for varied ids, only the answer never changes.
  const select = create(SelectClusterRequestSchema, fixture.selectRequest());
  const request = (name: string, protocol: Protocol, path: string, body: Buffer): BenchRequest => {
    const file = join(dir, name);
    writeFileSync(file, body);
    return { protocol, path, body, file };
  };
  return {
    select: request("select.grpc", "grpc", SELECT_PATH, grpcFrame(toBinary(SelectClusterRequestSchema, select))),
    selectJson: request("select.json", "connect-json", SELECT_PATH, Buffer.from(toJsonString(SelectClusterRequestSchema, select))),
    check: request("check.grpc", "grpc", CHECK_PATH, grpcFrame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)))),
  };
}

// --- Servers -------------------------------------------------------------------------------

/** The port from bare-grpc-server.mjs's {"port":N}. */
function bareServerPort(line: string): number | undefined {
  return /^\{"port":(\d+)\}$/.exec(line) ? (JSON.parse(line) as { port: number }).port : undefined;
}

/**
 * `serve --workers 2` when this build has the flag and it starts; otherwise why not. Resolves once
 * the workers are up (or a few seconds have shown there are none to wait for).
 */
async function startWorkers(database: string, dir: string): Promise<Server | string> {
  const help = spawnSync(process.execPath, ["dist/main.js", "serve", "--help"], { encoding: "utf8" }).stdout;
  if (!help.includes("--workers")) return "this build of serve has no --workers flag";
  let server: Server;
  try {
    server = await startServer(`clusterplane --workers ${WORKERS}`, serveArgs(database, ["--workers", String(WORKERS)]), dir, listeningPort);
  } catch (error) {
    return (error as Error).message;
  }
  const deadline = Date.now() + 3_000;
  while (descendants(server.child.pid!).length < WORKERS && Date.now() < deadline) await sleep(50);
  return server;
}

// --- Checking the answers ------------------------------------------------------------------

/** One call of each case before any load: a gRPC answer must carry grpc-status 0, a Connect one HTTP 200 and JSON. */
async function verifyAnswer({ name, server, request }: Case): Promise<void> {
  const answer = request.protocol === "grpc" ? await grpcCall(server.port, request) : await connectCall(server.port, request);
  if (!answer.ok) throw new Error(`${name}: the server did not answer the bench's request: ${answer.detail}`);
}

function grpcCall(port: number, request: BenchRequest): Promise<{ ok: boolean; detail: string }> {
  const session = connect(`http://127.0.0.1:${port}`);
  return new Promise<{ ok: boolean; detail: string }>((resolve, reject) => {
    session.once("error", reject);
    const stream = session.request({ ":method": "POST", ":path": request.path, "content-type": "application/grpc", te: "trailers" });
    let status: unknown;
    let bytes = 0;
    // A trailers-only answer (every error, from some servers) puts grpc-status in the headers.
    stream.on("response", (headers) => (status = headers["grpc-status"]));
    stream.on("trailers", (trailers) => (status = trailers["grpc-status"] ?? status));
    stream.on("data", (chunk: Buffer) => (bytes += chunk.length));
    stream.once("error", reject);
    stream.once("end", () => resolve({ ok: status === "0" && bytes >= 5, detail: `grpc-status ${String(status)}, ${bytes} bytes` }));
    stream.end(request.body);
  }).finally(() => session.close());
}

async function connectCall(port: number, request: BenchRequest): Promise<{ ok: boolean; detail: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${request.path}`, { method: "POST", headers: { "content-type": "application/json" }, body: request.body.toString() });
  const text = await response.text();
  let answer: { cluster?: string } = {};
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    // Not JSON: not the answer wanted, said below.
  }
  return { ok: response.status === 200 && typeof answer.cluster === "string", detail: `HTTP ${response.status}: ${text}` };
}

// --- Load ----------------------------------------------------------------------------------

/** h2load when there is one (or it can be installed), else (or with BENCH_LOAD=grpc-js) the grpc-js fallback. */
function chooseLoad(dir: string): LoadRunner {
  if (process.env.BENCH_LOAD === "grpc-js") return fallbackLoad;
  const h2load = findH2load();
  if (!h2load) {
    console.log("\nNo h2load (Debian: apt-get install nghttp2-client): the load comes from a grpc-js client process instead");
    return fallbackLoad;
  }
  return (port, request, phase, seconds) => {
    const shape = request.protocol === "grpc" ? H2 : H1;
    const headers: Record<string, string> =
      request.protocol === "grpc" ? { "content-type": "application/grpc", te: "trailers" } : { "content-type": "application/json" };
    return runH2load(
      h2load,
      {
        url: `http://127.0.0.1:${port}${request.path}`,
        http1: request.protocol === "connect-json",
        headers,
        bodyFile: request.file,
        ...shape,
        warmUpSeconds: WARM_UP_SECONDS,
        seconds,
        logFile: join(dir, "h2load.log"),
      },
      phase,
    );
  };
}

/** bench/grpc-load-worker.mjs in a process of its own, with the same connections and calls in flight. */
async function fallbackLoad(port: number, request: BenchRequest, phase: MeasuredPhase, seconds: number): Promise<LoadResult> {
  const shape = request.protocol === "grpc" ? H2 : H1;
  // grpc-js frames the message itself: it gets the bare protobuf bytes.
  const body = request.protocol === "grpc" ? request.body.subarray(5) : request.body;
  const spec = { protocol: request.protocol, port, path: request.path, body: body.toString("base64"), ...shape, warmUpSeconds: WARM_UP_SECONDS, seconds };
  const { stdout, clientCores } = await runLoadProcess(process.execPath, [FALLBACK_LOAD, JSON.stringify(spec)], FALLBACK_PHASES, phase);
  const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as Omit<LoadResult, "clientCores">;
  return { ...result, clientCores };
}

/**
 * One run of one case, with the CPU of the server (all its processes) and of the whole machine
 * over the load's measured phase.
 */
async function measure({ server, request }: Case, load: LoadRunner): Promise<Sample> {
  const pid = server.child.pid!;
  const sample = () => ({ server: treeCpuSeconds(pid), machine: machineBusySeconds(), at: performance.now() });
  let start = sample();
  let end = start;
  const result = await load(server.port, request, { started: () => (start = sample()), ended: () => (end = sample()) }, SECONDS);
  const seconds = (end.at - start.at) / 1000;
  const serverCpu = end.server - start.server;
  // h2load cannot see grpc-status; the server logs every failed call under the "notable" policy.
  const { failedCalls, lines } = readNewLog(server);
  return {
    ...result,
    failures: result.failures + failedCalls,
    cpuUsPerCall: (serverCpu * 1e6) / result.calls,
    logLines: lines,
    otherCores: (end.machine - start.machine - serverCpu) / seconds - result.clientCores,
  };
}

// --- Report --------------------------------------------------------------------------------

/** The table (medians over the rounds), then the goals as ratios. */
function report(
  samples: Map<Case, Sample[]>,
  { baseline, select, selectOnWorkers }: { baseline: Case; select: Case; selectOnWorkers: Case | undefined },
  fallback: boolean,
): void {
  const cases = [...samples.keys()];
  const median = (each: Case, field: keyof Sample) => medianOf(samples.get(each)!.map((sample) => sample[field]));
  const bareRate = median(baseline, "callsPerSecond");
  const bareCpu = median(baseline, "cpuUsPerCall");
  const loadShape = fallback
    ? `grpc-js client process (${H2.connections} connections x ${H2.streams} calls in flight; HTTP/1.1: ${H1.connections} connections)`
    : `h2load -t 1 -c ${H2.connections} -m ${H2.streams} over h2c (HTTP/1.1: --h1 -c ${H1.connections} -m ${H1.streams})`;

  console.log(`\ngRPC throughput: separate processes, ${loadShape}`);
  console.log(`  ${WARM_UP_SECONDS} s warm-up + ${SECONDS} s measured per run, median of ${ROUNDS} interleaved rounds; ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(2)}`);
  console.log(`  ${"".padEnd(40)}   calls/s (min-max)      p50 ms   p99 ms  server µs/call  load cores  other cores  vs bare: calls/s  CPU/call`);
  for (const each of cases) {
    const rates = samples.get(each)!.map((sample) => sample.callsPerSecond);
    const rate = median(each, "callsPerSecond");
    const cpu = median(each, "cpuUsPerCall");
    const failures = samples.get(each)!.reduce((sum, sample) => sum + sample.failures, 0);
    console.log(
      `  ${each.name.padEnd(40)} ${fixed(rate, 0, 9)} (${fixed(Math.min(...rates), 0)}-${fixed(Math.max(...rates), 0)})`.padEnd(68) +
        `${fixed(median(each, "p50Ms"), 2, 7)}  ${fixed(median(each, "p99Ms"), 2, 7)}  ${fixed(cpu, 1, 14)}  ${fixed(median(each, "clientCores"), 2, 10)}  ${fixed(median(each, "otherCores"), 2, 11)}` +
        `   ${fixed(rate / bareRate, 2, 12)}  ${fixed(bareCpu / cpu, 2, 8)}` +
        (failures ? `   ${failures} FAILED calls` : ""),
    );
  }

  const selectRate = median(select, "callsPerSecond");
  const selectCpu = median(select, "cpuUsPerCall");
  console.log("Goals (ratios vs the bare grpc-js server; CPU is bare/ours, so higher is better):");
  console.log(`  SelectCluster calls/s   >= 0.80x: ${verdict(selectRate / bareRate, 0.8)}`);
  console.log(`  SelectCluster CPU/call  >= 0.80x: ${verdict(bareCpu / selectCpu, 0.8)}`);
  if (selectOnWorkers) {
    // A build whose serve takes --workers without forking shows 1 process here.
    const processes = 1 + descendants(selectOnWorkers.server.child.pid!).length;
    console.log(
      `  --workers ${WORKERS} calls/s >= 1.60x one worker: ${verdict(median(selectOnWorkers, "callsPerSecond") / selectRate, 1.6)}` +
        `  (${processes} server process${processes === 1 ? "" : "es"}; the load generator shares the ${availableParallelism()} cores)`,
    );
  }
  // CLUSTERPLANE_LOG_RPC_CALLS=notable logs no successful read: lines here mean a policy not (yet) in effect.
  for (const each of cases) {
    const runs = samples.get(each)!;
    const lines = runs.reduce((sum, sample) => sum + sample.logLines, 0);
    if (lines) console.log(`  (${each.name}: the server logged ${lines} lines over ${ROUNDS} runs, ${(lines / runs.reduce((sum, sample) => sum + sample.calls, 0)).toFixed(2)} per measured call)`);
  }
}

function verdict(ratio: number, goal: number): string {
  return `${ratio.toFixed(2)}x ${ratio >= goal ? "(goal met)" : "(goal MISSED)"}`;
}
