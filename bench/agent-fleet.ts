/**
 * Many pull-mode agents (or, for the baseline, as many plain Watch streams) in a process of their
 * own, for `npm run bench -- agents`. Each holds its own HTTP/2 connection: one connect-node gRPC
 * transport each, and a transport made without `sessionManager` opens a session of its own.
 *
 * Usage: node --import tsx bench/agent-fleet.ts '<spec as JSON>', the spec being
 *   { url, mode: "agents", joinTokens: string[], heartbeatMs } or { url, mode: "watch", streams }.
 * An agent joins with its token, opens WatchDesiredState and renews its lease every heartbeatMs
 * (spread evenly over the fleet). A Watch stream watches projects.
 *
 * Prints `ready` once every agent has its first desired state (every stream its snapshot); then
 * `{"project":ID,"arrivals":[ms,…]}` once a new project has reached all of them, with when it
 * reached each (wall-clock ms, performance.timeOrigin + performance.now(), comparable with the
 * bench's own). On the stdin line `stats` it prints heartbeat and error counts since the last
 * `stats`; on `exit` it closes everything and exits.
 */
import { setMaxListeners } from "node:events";
import { createInterface } from "node:readline";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { toBinary } from "@bufbuild/protobuf";
import { AgentService, WatchDesiredStateResponseSchema } from "../gen/clusterplane/v1/agent_pb.js";
import { ResourceKind, WatchService } from "../gen/clusterplane/v1/watch_pb.js";
import { percentile } from "./h2load.js";

type Spec = { url: string; mode: "agents"; joinTokens: string[]; heartbeatMs: number } | { url: string; mode: "watch"; streams: number };

const spec = JSON.parse(process.argv[2]!) as Spec;
const members = spec.mode === "agents" ? spec.joinTokens.length : spec.streams;
const closing = new AbortController();
// Every member's stream and call listens on it.
setMaxListeners(0, closing.signal);
const now = () => performance.timeOrigin + performance.now();
const arrivals = new Map<string, number[]>();
const timers: NodeJS.Timeout[] = [];
let ready = 0;
let streamErrors = 0;
let heartbeats: number[] = [];
let heartbeatFailures = 0;
/** The size of the last desired state the first agent received. */
let lastState = { objects: 0, bytes: 0 };

/** One member has the project: say so once all have it. */
function arrived(project: string): void {
  const times = arrivals.get(project) ?? [];
  times.push(now());
  arrivals.set(project, times);
  if (times.length === members) {
    process.stdout.write(`${JSON.stringify({ project, arrivals: times })}\n`);
    arrivals.delete(project);
  }
}

function isReady(): void {
  if (++ready === members) process.stdout.write("ready\n");
}

async function agent(index: number, joinToken: string, heartbeatMs: number): Promise<void> {
  let credential = "";
  const bearer: Interceptor = (next) => (request) => {
    if (credential) request.header.set("authorization", `Bearer ${credential}`);
    return next(request);
  };
  // Its own transport, so its own HTTP/2 session: agents are separate clusters, not one client.
  const client = createClient(AgentService, createGrpcTransport({ baseUrl: spec.url, interceptors: [bearer] }));
  const joined = await client.joinCluster({ joinToken, agentVersion: "bench" });
  credential = joined.credential!.token;
  const start = setTimeout(() => {
    const beat = async () => {
      const started = performance.now();
      try {
        await client.renewLease({ agentVersion: "bench" }, { signal: closing.signal });
        heartbeats.push(performance.now() - started);
      } catch {
        if (!closing.signal.aborted) heartbeatFailures++;
      }
    };
    void beat();
    timers.push(setInterval(beat, heartbeatMs));
  }, (index / members) * heartbeatMs);
  timers.push(start);
  const seen = new Set<string>();
  let first = true;
  for await (const state of client.watchDesiredState({}, { signal: closing.signal })) {
    if (index === 0) lastState = { objects: state.objects.length, bytes: toBinary(WatchDesiredStateResponseSchema, state).length };
    for (const { project } of state.projectDomains) {
      if (seen.has(project)) continue;
      seen.add(project);
      if (!first) arrived(project);
    }
    if (first) {
      first = false;
      isReady();
    }
  }
}

async function watcher(): Promise<void> {
  const client = createClient(WatchService, createGrpcTransport({ baseUrl: spec.url }));
  let snapshotDone = false;
  for await (const response of client.watch({ kinds: [ResourceKind.PROJECT] }, { signal: closing.signal })) {
    if (response.event.case === "snapshotComplete" && !snapshotDone) {
      snapshotDone = true;
      isReady();
    } else if (response.event.case === "change" && snapshotDone) arrived(response.event.value.name);
  }
}

for (let i = 0; i < members; i++) {
  const member = spec.mode === "agents" ? agent(i, spec.joinTokens[i]!, spec.heartbeatMs) : watcher();
  member.catch((error: unknown) => {
    if (closing.signal.aborted) return;
    streamErrors++;
    process.stderr.write(`fleet member ${i}: ${String(error)}\n`);
  });
}

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "stats") {
    const sorted = heartbeats.sort((a, b) => a - b);
    const stats = { heartbeats: sorted.length, heartbeatFailures, heartbeatP50Ms: percentile(sorted, 0.5), heartbeatP99Ms: percentile(sorted, 0.99), streamErrors, lastState };
    heartbeats = [];
    heartbeatFailures = 0;
    process.stdout.write(`${JSON.stringify(stats)}\n`);
  } else if (line === "exit") {
    closing.abort();
    timers.forEach(clearTimeout);
    process.stdout.write("bye\n", () => process.exit(0));
  }
});
