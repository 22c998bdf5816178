/**
 * `npm run bench -- agents`: what pull-mode agents cost the control plane (issue 15 §6).
 *
 * One `clusterplane serve` process (SQLite file, sync on, auth off on loopback) with 100 pull
 * clusters; 100 agents in another process (bench/agent-fleet.ts), each on its own HTTP/2
 * connection, joining, holding WatchDesiredState open and renewing their lease every second
 * (agents renew every 10 s; a shorter heartbeat makes its cost measurable). Measured on the
 * server, from /proc:
 * - idle CPU with the agents connected and heartbeating, and so per agent per heartbeat;
 * - desired-state fan-out: a project created through the API, timed until all 100 agents have
 *   the new desired state, over a series of creations spaced apart, and the server CPU per one.
 * The baseline, in the same run and on the same server: as many plain Watch streams (projects),
 * one connection each, receiving the same kind of change; and the same creations with nobody
 * listening, the floor both include. It prints; it never fails.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../gen/clusterplane/v1/cluster_pb.js";
import { ProjectService } from "../gen/clusterplane/v1/project_pb.js";
import { percentile, processCpuSeconds } from "./h2load.js";
import { lineProcess, serve, type Served } from "./serve.js";

const AGENTS = 100;
const HEARTBEAT_MS = 1_000;
const PRODUCTION_HEARTBEAT_MS = 10_000;
const INITIAL_PROJECTS = 5;
const CREATIONS = 20;
/** Between one fan-out's end and the next creation. */
const SPACING_MS = 300;
const IDLE_MS = 8_000;
const FAN_OUT_TIMEOUT_MS = 15_000;

type Fleet = ReturnType<typeof lineProcess>;

interface FleetStats {
  heartbeats: number;
  heartbeatFailures: number;
  heartbeatP50Ms: number;
  heartbeatP99Ms: number;
  streamErrors: number;
  lastState: { objects: number; bytes: number };
}

interface FanOut {
  /** Per creation: from the call to the last member's arrival, ms. */
  toLast: number[];
  /** Every arrival: from the call, ms. */
  each: number[];
  /** Creations that did not reach every member in time. */
  incomplete: number;
  /** Server CPU ms per creation, the idle rate over the same time taken off. */
  cpuMs: number;
  /** The fleet process's CPU ms per creation. */
  fleetCpuMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const wallNow = () => performance.timeOrigin + performance.now();
const ms = (value: number, digits = 1) => value.toFixed(digits);

/** Server CPU ms per second over `durationMs` of whatever is running (no calls from the bench). */
async function idleCpu(server: Served, durationMs: number): Promise<number> {
  const before = processCpuSeconds(server.child.pid!);
  const started = performance.now();
  await sleep(durationMs);
  return ((processCpuSeconds(server.child.pid!) - before) * 1000) / ((performance.now() - started) / 1000);
}

/** Established connections the server holds on its port (its side of each), from /proc/net/tcp. */
function serverConnections(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (local?.endsWith(`:${hexPort}`) && state === "01") count++;
    }
  }
  return count;
}

async function startFleet(spec: object): Promise<Fleet> {
  const fleet = lineProcess("bench/agent-fleet.ts", [JSON.stringify(spec)]);
  const line = await fleet.next(60_000);
  if (line !== "ready") throw new Error(`the fleet did not get ready (it said ${line ?? "nothing"})`);
  return fleet;
}

async function stats(fleet: Fleet): Promise<FleetStats> {
  fleet.send("stats");
  return JSON.parse((await fleet.next(10_000))!) as FleetStats;
}

async function stopFleet(fleet: Fleet): Promise<void> {
  fleet.send("exit");
  const exited = new Promise((resolve) => fleet.child.once("exit", resolve));
  if ((await Promise.race([exited, sleep(5_000).then(() => "late")])) === "late") fleet.child.kill("SIGKILL");
}

let nextProject = 0;

/**
 * CREATIONS projects, one at a time, each once the last has reached every member (or, with no
 * fleet, once created), SPACING_MS apart. `idleMsPerSecond` is taken off the server's CPU.
 */
async function fanOut(server: Served, projects: Client<typeof ProjectService>, fleet: Fleet | undefined, idleMsPerSecond: number): Promise<FanOut> {
  const result: FanOut = { toLast: [], each: [], incomplete: 0, cpuMs: 0, fleetCpuMs: 0 };
  const cpuBefore = processCpuSeconds(server.child.pid!);
  const fleetBefore = fleet ? processCpuSeconds(fleet.child.pid!) : 0;
  const started = performance.now();
  for (let i = 0; i < CREATIONS; i++) {
    const id = `fan-out-${nextProject++}`;
    const sent = wallNow();
    await projects.createProject({ project: { id } });
    if (fleet) {
      const line = await fleet.next(FAN_OUT_TIMEOUT_MS);
      const reached = line ? (JSON.parse(line) as { project: string; arrivals: number[] }) : undefined;
      if (reached?.project !== id) {
        result.incomplete++;
        console.log(`  (!) ${id}: ${line === undefined ? `not every member had it after ${FAN_OUT_TIMEOUT_MS} ms` : `unexpected line ${line}`}`);
      } else {
        const delays = reached.arrivals.map((at) => at - sent);
        result.each.push(...delays);
        result.toLast.push(Math.max(...delays));
      }
    }
    await sleep(SPACING_MS);
  }
  const seconds = (performance.now() - started) / 1000;
  result.cpuMs = ((processCpuSeconds(server.child.pid!) - cpuBefore) * 1000 - idleMsPerSecond * seconds) / CREATIONS;
  result.fleetCpuMs = fleet ? ((processCpuSeconds(fleet.child.pid!) - fleetBefore) * 1000) / CREATIONS : 0;
  return result;
}

const p = (values: number[], fraction: number) => percentile([...values].sort((a, b) => a - b), fraction);

export async function agentsBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-agents-bench-"));
  let server: Served | undefined;
  let fleet: Fleet | undefined;
  try {
    // The Watch baseline's streams all come from one (anonymous) caller: allow it that many.
    const config = join(dir, "clusterplane.yaml");
    writeFileSync(config, `watch:\n  maxStreamsPerCaller: ${AGENTS * 2}\n`);
    server = await serve(process.cwd(), join(dir, "agents.db"), ["--config", config], { sync: true });
    const admin = createGrpcTransport({ baseUrl: server.url });
    const projects = createClient(ProjectService, admin);
    const clusters = createClient(ClusterService, admin);
    for (let i = 0; i < INITIAL_PROJECTS; i++) await projects.createProject({ project: { id: `team-${i}` } });
    const joinTokens: string[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const created = await clusters.createCluster({ cluster: { name: `edge-${String(i).padStart(3, "0")}` } });
      joinTokens.push(created.join!.joinToken);
    }

    // Nobody listening: the server's own idle and what a creation costs by itself (also a warm-up).
    await fanOut(server, projects, undefined, 0);
    const idleAlone = await idleCpu(server, IDLE_MS);
    const alone = await fanOut(server, projects, undefined, idleAlone);

    // 100 agents.
    const ownConnections = serverConnections(server.port);
    fleet = await startFleet({ url: server.url, mode: "agents", joinTokens, heartbeatMs: HEARTBEAT_MS });
    const agentConnections = serverConnections(server.port) - ownConnections;
    await sleep(2_000); // every heartbeat timer started, joins settled
    await stats(fleet);
    const idleAgents = await idleCpu(server, IDLE_MS);
    const beats = await stats(fleet);
    const beatsPerSecond = beats.heartbeats / (IDLE_MS / 1000);
    /** The initial projects, and those of the two runs with nobody listening. */
    const projectsHeld = INITIAL_PROJECTS + 2 * CREATIONS;
    const agents = await fanOut(server, projects, fleet, idleAgents);
    const { streamErrors: agentErrors, lastState } = await stats(fleet);
    await stopFleet(fleet);
    fleet = undefined;

    // The baseline: as many plain Watch streams on projects, one connection each.
    await sleep(500);
    fleet = await startFleet({ url: server.url, mode: "watch", streams: AGENTS });
    const watchConnections = serverConnections(server.port) - ownConnections;
    await sleep(1_000);
    const idleWatch = await idleCpu(server, IDLE_MS);
    const watch = await fanOut(server, projects, fleet, idleWatch);
    const watchErrors = (await stats(fleet)).streamErrors;
    await stopFleet(fleet);
    fleet = undefined;

    const perBeat = (idleAgents - idleAlone) / beatsPerSecond;
    console.log(`\nPull-mode agents: ${AGENTS} agents in another process against one serve process (SQLite file, sync on), ${availableParallelism()} cores shared, load average ${loadavg()[0]!.toFixed(2)}`);
    console.log(`  connections the fleet opened to the server: ${agentConnections} for the agents, ${watchConnections} for the Watch streams`);
    console.log(`Idle (server CPU over ${IDLE_MS / 1000} s)`);
    console.log(`  nobody connected                         ${ms(idleAlone).padStart(7)} ms/s`);
    console.log(`  ${AGENTS} Watch streams                         ${ms(idleWatch).padStart(7)} ms/s`);
    console.log(
      `  ${AGENTS} agents, heartbeat every ${HEARTBEAT_MS / 1000} s         ${ms(idleAgents).padStart(7)} ms/s  (${beatsPerSecond.toFixed(0)} heartbeats/s, ` +
        `RenewLease p50 ${ms(beats.heartbeatP50Ms)} ms p99 ${ms(beats.heartbeatP99Ms)} ms at the agent, ${beats.heartbeatFailures} failed)`,
    );
    console.log(`  per agent per heartbeat, idle server taken off: ${ms((perBeat * 1000), 0)} µs of server CPU`);
    console.log(
      `  so at the agents' real ${PRODUCTION_HEARTBEAT_MS / 1000} s: about ${ms(idleAlone + (perBeat * AGENTS * 1000) / PRODUCTION_HEARTBEAT_MS)} ms/s for ${AGENTS} agents ` +
        `(${ms(((perBeat * AGENTS * 1000) / PRODUCTION_HEARTBEAT_MS / 1000) * 100, 2)} % of a core above idle)`,
    );
    console.log(`Fan-out: ${CREATIONS} CreateProject calls ${SPACING_MS} ms apart, timed from the call to the last of ${AGENTS} members to have the project`);
    console.log(`  (an agent gets the whole desired state each time: ${projectsHeld}-${projectsHeld + CREATIONS} projects here, the last one ${lastState.objects} objects, ${ms(lastState.bytes / 1024)} KiB; a Watch stream gets the one change)`);
    const line = (label: string, run: FanOut) =>
      `  ${label.padEnd(40)} last p50 ${ms(p(run.toLast, 0.5)).padStart(6)} ms  p99 ${ms(p(run.toLast, 0.99)).padStart(6)} ms   each p50 ${ms(p(run.each, 0.5)).padStart(6)} ms` +
      `   server CPU ${ms(run.cpuMs).padStart(6)} ms/creation   fleet CPU ${ms(run.fleetCpuMs).padStart(6)} ms` +
      (run.incomplete ? `   ${run.incomplete} INCOMPLETE` : "");
    console.log(line(`${AGENTS} agents, WatchDesiredState`, agents));
    console.log(line(`${AGENTS} plain Watch streams (baseline)`, watch));
    console.log(`  nobody listening: the creation alone      server CPU ${ms(alone.cpuMs)} ms/creation`);
    const net = (run: FanOut) => run.cpuMs - alone.cpuMs;
    console.log(
      `  agents vs Watch: fan-out p99 ${(p(agents.toLast, 0.99) / p(watch.toLast, 0.99)).toFixed(2)}x, server CPU per fan-out ${(agents.cpuMs / watch.cpuMs).toFixed(2)}x ` +
        `(${(net(agents) / net(watch)).toFixed(1)}x beyond the creation itself: ${ms((net(agents) * 1000) / AGENTS, 0)} vs ${ms((net(watch) * 1000) / AGENTS, 0)} µs per member)`,
    );
    if (agentErrors || watchErrors) console.log(`  (!) streams that failed: ${agentErrors} agents, ${watchErrors} Watch`);
  } finally {
    if (fleet) fleet.child.kill("SIGKILL");
    server?.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}
