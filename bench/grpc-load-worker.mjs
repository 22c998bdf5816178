// The gRPC bench's fallback load generator, for machines without h2load: closed-loop calls from a
// process of its own (so its work never lands on the server's CPU), over several connections.
// It mimics what the bench reads from h2load: a line as the measured phase starts and one as it
// ends, then one JSON line with what that phase measured.
//
// Usage: node bench/grpc-load-worker.mjs '<spec as JSON>', the spec being
//   { protocol: "grpc" | "connect-json", port, path, body (base64: the protobuf message for gRPC,
//     the JSON for Connect), connections, streams, warmUpSeconds, seconds }
import * as grpc from "@grpc/grpc-js";
import http from "node:http";

// bench/grpc-throughput.ts (FALLBACK_PHASES) waits for these lines to sample the server's CPU.
const PHASES = { start: "main-start", end: "main-end" };

const spec = JSON.parse(process.argv[2]);
const body = Buffer.from(spec.body, "base64");

/** One function per connection: each call resolves true on success, false on any failure. */
function openConnections() {
  if (spec.protocol === "grpc") {
    const identity = (bytes) => bytes;
    return Array.from({ length: spec.connections }, () => {
      // A local subchannel pool gives each client a connection of its own (grpc-js shares them otherwise).
      const client = new grpc.Client(`127.0.0.1:${spec.port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
      const call = () => new Promise((resolve) => client.makeUnaryRequest(spec.path, identity, identity, body, (error) => resolve(!error)));
      return { call, close: () => client.close() };
    });
  }
  // Connect's unary JSON over HTTP/1.1, as curl sends it: keep-alive, one request at a time per connection.
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.connections });
  const headers = { "content-type": "application/json", "content-length": body.length };
  const call = () =>
    new Promise((resolve) => {
      const request = http.request({ agent, host: "127.0.0.1", port: spec.port, path: spec.path, method: "POST", headers }, (response) => {
        response.resume();
        response.once("end", () => resolve(response.statusCode === 200));
      });
      request.once("error", () => resolve(false));
      request.end(body);
    });
  return Array.from({ length: spec.connections }, (_, i) => ({ call, close: () => i === 0 && agent.destroy() }));
}

const latenciesMs = [];
let failures = 0;
let measuring = false;
let stopped = false;

async function loop(call) {
  while (!stopped) {
    const started = performance.now();
    const ok = await call();
    if (!measuring) continue;
    if (ok) latenciesMs.push(performance.now() - started);
    else failures++;
  }
}

const connections = openConnections();
const loops = connections.flatMap(({ call }) => Array.from({ length: spec.streams }, () => loop(call)));

await new Promise((resolve) => setTimeout(resolve, spec.warmUpSeconds * 1000));
measuring = true;
const started = performance.now();
console.log(PHASES.start);
await new Promise((resolve) => setTimeout(resolve, spec.seconds * 1000));
measuring = false;
const seconds = (performance.now() - started) / 1000;
console.log(PHASES.end);
stopped = true;
await Promise.all(loops);
for (const { close } of connections) close();

latenciesMs.sort((a, b) => a - b);
const at = (p) => latenciesMs[Math.min(latenciesMs.length - 1, Math.max(0, Math.ceil(p * latenciesMs.length) - 1))] ?? NaN;
console.log(JSON.stringify({ calls: latenciesMs.length, callsPerSecond: latenciesMs.length / seconds, failures, p50Ms: at(0.5), p99Ms: at(0.99) }));
