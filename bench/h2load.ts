/**
 * The load for the gRPC bench: h2load (nghttp2's HTTP/2 and HTTP/1.1 load generator, written in
 * C, so the client costs little next to a Node server), run as a child process. This module finds
 * (or installs) it, runs it, tells the caller when its measured phase starts and ends, and reads
 * its summary and per-request log.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";

export interface LoadOptions {
  url: string;
  /** HTTP/1.1 (h2load --h1) instead of HTTP/2 over cleartext (h2c, prior knowledge). */
  http1: boolean;
  headers: Record<string, string>;
  /** File holding the request body, sent with every request. */
  bodyFile: string;
  connections: number;
  /** Requests in flight per connection (HTTP/2 streams; over HTTP/1.1 more than 1 means pipelining). */
  streams: number;
  warmUpSeconds: number;
  seconds: number;
  /** Where h2load writes one line per request (the latencies come from here). */
  logFile: string;
}

/** What one load run measured, over its main phase only (never the warm-up). */
export interface LoadResult {
  /** Calls answered with a success status (HTTP 200 for h2load: it cannot see grpc-status). */
  calls: number;
  callsPerSecond: number;
  /** Calls that failed, errored, timed out or were answered with a status other than 2xx. */
  failures: number;
  p50Ms: number;
  p99Ms: number;
  /** The load generator's own CPU over the main phase, in cores (1 = one core busy throughout). */
  clientCores: number;
}

/** Called as the load generator enters and leaves its measured phase (to sample server CPU then). */
export interface MeasuredPhase {
  started(loadPid: number): void;
  ended(loadPid: number): void;
}

const H2LOAD = "/usr/bin/h2load";

/**
 * The h2load binary: on the PATH, or installed from Debian's nghttp2-client when we are root and
 * apt-get is there; undefined otherwise (the caller falls back to a grpc-js client).
 */
export function findH2load(): string | undefined {
  const onPath = spawnSync("sh", ["-c", "command -v h2load"], { encoding: "utf8" }).stdout.trim();
  if (onPath) return onPath;
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/apt-get")) return undefined;
  console.log("h2load is missing: apt-get install -y nghttp2-client");
  const install = spawnSync("apt-get", ["install", "-y", "nghttp2-client"], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  return install.status === 0 && existsSync(H2LOAD) ? H2LOAD : undefined;
}

export function h2loadArgs(options: LoadOptions): string[] {
  const args = [
    `--clients=${options.connections}`,
    `--max-concurrent-streams=${options.streams}`,
    // One thread: the server under test gets the machine's other core.
    "--threads=1",
    `--warm-up-time=${options.warmUpSeconds}`,
    `--duration=${options.seconds}`,
    `--data=${options.bodyFile}`,
    `--log-file=${options.logFile}`,
  ];
  if (options.http1) args.push("--h1");
  for (const [name, value] of Object.entries(options.headers)) args.push(`--header=${name}: ${value}`);
  args.push(options.url);
  return args;
}

/** Runs h2load once; `phase` hears when its main (measured) phase starts and ends. */
export async function runH2load(h2load: string, options: LoadOptions, phase: MeasuredPhase): Promise<LoadResult> {
  // h2load appends to its log file: a file left by an earlier run would mix in that run's latencies.
  rmSync(options.logFile, { force: true });
  const { stdout, clientCores } = await runLoadProcess(h2load, h2loadArgs(options), H2LOAD_PHASES, phase);
  const summary = parseSummary(stdout);
  const latencies = parseLogFile(readFileSync(options.logFile, "utf8"));
  return {
    calls: summary.succeeded,
    callsPerSecond: summary.requestsPerSecond,
    failures: summary.failed + summary.errored + summary.timeout + summary.non2xx,
    p50Ms: percentile(latencies, 0.5) / 1000,
    p99Ms: percentile(latencies, 0.99) / 1000,
    clientCores,
  };
}

/** The lines h2load prints (flushed as they happen) around its measured phase. */
export const H2LOAD_PHASES = { start: "Main benchmark duration is started", end: "Main benchmark duration is over" };

/**
 * Spawns a load generator, calls `phase` when its stdout says the measured phase starts and ends
 * (sampling its own CPU at those moments too), and resolves with all it printed once it exits 0.
 */
export function runLoadProcess(
  command: string,
  args: string[],
  markers: { start: string; end: string },
  phase: MeasuredPhase,
): Promise<{ stdout: string; clientCores: number }> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  const pid = child.pid!;
  let stdout = "";
  let stderr = "";
  let cpuAtStart = 0;
  let startedAt = 0;
  let clientCores = 0;
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    stdout += `${line}\n`;
    if (line.startsWith(markers.start)) {
      phase.started(pid);
      cpuAtStart = processCpuSeconds(pid);
      startedAt = performance.now();
    } else if (line.startsWith(markers.end)) {
      phase.ended(pid);
      clientCores = (processCpuSeconds(pid) - cpuAtStart) / ((performance.now() - startedAt) / 1000);
    }
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      if (code === 0) resolve({ stdout, clientCores });
      else reject(new Error(`${command} exited with ${code}: ${stderr.trim() || stdout.trim()}`));
    });
  });
}

interface Summary {
  requestsPerSecond: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  non2xx: number;
}

/**
 * h2load's summary, e.g.
 *   finished in 5.00s, 26234.67 req/s, 999.09KB/s
 *   requests: 78704 total, 78704 started, 78704 done, 78704 succeeded, 0 failed, 0 errored, 0 timeout
 *   status codes: 78672 2xx, 0 3xx, 0 4xx, 0 5xx
 * With a warm-up, "finished in" counts it but req/s and the counts are the main phase alone.
 */
export function parseSummary(text: string): Summary {
  const number = (pattern: RegExp): number => {
    const match = pattern.exec(text);
    if (!match) throw new Error(`h2load printed no ${pattern.source}:\n${text}`);
    return Number(match[1]);
  };
  return {
    requestsPerSecond: number(/finished in [\d.]+\w+, ([\d.]+) req\/s/),
    succeeded: number(/(\d+) succeeded/),
    failed: number(/(\d+) failed/),
    errored: number(/(\d+) errored/),
    timeout: number(/(\d+) timeout/),
    non2xx: number(/status codes: \d+ 2xx, (\d+) 3xx/) + number(/(\d+) 4xx/) + number(/(\d+) 5xx/),
  };
}

/**
 * Latencies in µs, sorted, from h2load's --log-file: tab-separated start time (µs since the
 * epoch), HTTP status (-1 for a failed stream), µs until the end of the response. Only rows with
 * status 200 count: the calls still in flight when the warm-up ends finish in the main phase
 * with status 0 (their headers came during the warm-up) and a start time clipped to its start.
 */
export function parseLogFile(text: string): number[] {
  const latencies: number[] = [];
  for (const line of text.split("\n")) {
    const [, status, micros] = line.split("\t");
    if (status === "200") latencies.push(Number(micros));
  }
  return latencies.sort((a, b) => a - b);
}

/** The value below which a fraction `p` of the sorted values lie (nearest rank); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

// Process CPU from /proc (Linux): the bench reads the server's and the load generator's.

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;

/** CPU time (user + system, all threads) a process has used so far, in seconds; 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, so 11 and 12 after the name and state.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * CPU time the whole machine has spent busy so far (all cores, user + system + interrupts), in
 * seconds: with the server's and the client's, it tells how much other work shared the machine.
 */
export function machineBusySeconds(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLOCK_TICKS;
}

/** Every process below `pid` (children, their children, …), from /proc/PID/task/TID/children. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number) => {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      return; // gone meanwhile
    }
    for (const task of tasks) {
      let children = "";
      try {
        children = readFileSync(`/proc/${parent}/task/${task}/children`, "utf8");
      } catch {
        continue;
      }
      for (const child of children.split(" ").filter(Boolean).map(Number)) {
        found.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return found;
}

/** CPU seconds of a process and all its descendants (a server's forked workers). */
export function treeCpuSeconds(pid: number): number {
  return [pid, ...descendants(pid)].reduce((sum, each) => sum + processCpuSeconds(each), 0);
}
