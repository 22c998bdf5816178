// A @grpc/grpc-js load generator in its own thread: closed-loop unary calls with `concurrency` in
// flight for `durationMs`, cycling through pre-serialized requests. Posts { started: true } once
// connected (one call made), then { calls, seconds } for the timed phase. A failed call throws.
import * as grpc from "@grpc/grpc-js";
import { parentPort, workerData } from "node:worker_threads";

const { address, path, requests, concurrency, durationMs } = workerData;
const client = new grpc.Client(address, grpc.credentials.createInsecure());
const identity = (bytes) => bytes;
const bodies = requests.map((bytes) => Buffer.from(bytes));

function call(body) {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(path, identity, identity, body, (error) => (error ? reject(error) : resolve())),
  );
}

let next = 0;
// The connection is made, and the first call's lazy work done, before the clock starts.
await call(bodies[next++ % bodies.length]);
parentPort.postMessage({ started: true });
let completed = 0;
const started = performance.now();
const deadline = started + durationMs;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      await call(bodies[next++ % bodies.length]);
      completed++;
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
client.close();
parentPort.postMessage({ calls: completed, seconds });
