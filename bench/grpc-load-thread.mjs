// A @grpc/grpc-js load generator in its own thread: closed-loop unary calls with `concurrency` in
// flight for `durationMs`, cycling through pre-serialized requests. Posts back calls per second.
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

let completed = 0;
let next = 0;
const deadline = performance.now() + durationMs;
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      await call(bodies[next++ % bodies.length]);
      completed++;
    }
  }),
);
client.close();
parentPort.postMessage(completed / ((performance.now() - started) / 1000));
