import { Worker } from "node:worker_threads";
import { create, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape } from "@bufbuild/protobuf";
import { ClusterPoolService } from "../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { Health } from "../gen/health/v1/health_pb.js";
import type { RunningServer } from "../src/server/server.js";
import type { Fixture } from "./fixture.js";
import { bestOf } from "./throughput.js";

const IN_FLIGHT = 64;
const DURATION_MS = 3000;

/**
 * Calls per second from a @grpc/grpc-js client in a worker thread (a separate event loop, as a
 * real caller would be), cycling through `requests`.
 */
function callsPerSecondFromWorker<I extends DescMessage, O extends DescMessage>(
  port: number,
  method: DescMethodUnary<I, O>,
  requests: MessageInitShape<I>[],
  durationMs: number,
): Promise<number> {
  const worker = new Worker(new URL("./grpc-load-worker.mjs", import.meta.url), {
    workerData: {
      address: `127.0.0.1:${port}`,
      path: `/${method.parent.typeName}/${method.name}`,
      requests: requests.map((request) => toBinary(method.input, create(method.input, request))),
      concurrency: IN_FLIGHT,
      durationMs,
    },
  });
  return new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
}

/**
 * RPC throughput with 64 calls in flight from a @grpc/grpc-js client, against grpc.health.v1
 * Check (a handler that does next to nothing) on the same server in the same run.
 */
export async function grpcThroughputBench(server: RunningServer, fixture: Fixture): Promise<void> {
  const selectRequest = fixture.selectRequest();
  const selects = Array.from({ length: 1024 }, (_, i) => ({ ...selectRequest, executionId: `exec-${i}` }));
  const measure = {
    check: (ms: number) => callsPerSecondFromWorker(server.port, Health.method.check, [{}], ms),
    select: (ms: number) => callsPerSecondFromWorker(server.port, ExecutionClusterLabelService.method.selectCluster, selects, ms),
    getPool: (ms: number) => callsPerSecondFromWorker(server.port, ClusterPoolService.method.getClusterPool, [{ name: "default" }], ms),
  };
  for (const run of Object.values(measure)) await run(500); // warm up
  const baseline = await bestOf(3, () => measure.check(DURATION_MS));
  const selectRate = await bestOf(3, () => measure.select(DURATION_MS));
  const poolRate = await bestOf(3, () => measure.getPool(DURATION_MS));

  console.log(`\ngRPC throughput, @grpc/grpc-js client in a worker thread, ${IN_FLIGHT} calls in flight (best of 3 x ${DURATION_MS} ms)`);
  console.log(`  baseline  grpc.health.v1.Health/Check                ${baseline.toFixed(0).padStart(7)} calls/s`);
  console.log(`  SelectCluster (workflow scope, weighted label)      ${selectRate.toFixed(0).padStart(7)} calls/s  ratio ${(selectRate / baseline).toFixed(2)}  (goal >= 0.80)`);
  console.log(`  GetClusterPool (SQLite read)                        ${poolRate.toFixed(0).padStart(7)} calls/s  ratio ${(poolRate / baseline).toFixed(2)}`);
}
