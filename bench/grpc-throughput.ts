import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape } from "@bufbuild/protobuf";
import { ClusterPoolService } from "../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { Health } from "../gen/health/v1/health_pb.js";
import type { RunningServer } from "../src/server/server.js";
import type { Fixture } from "./fixture.js";
import { bestOf, callsPerSecond } from "./throughput.js";

const IN_FLIGHT = 64;
const DURATION_MS = 3000;

/** A grpc-js unary caller for one method, serializing with protobuf-es. */
function unaryCaller<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
): () => Promise<unknown> {
  const path = `/${method.parent.typeName}/${method.name}`;
  const message = create(method.input, request);
  const serialize = (value: unknown) => Buffer.from(toBinary(method.input, value as never));
  const deserialize = (bytes: Buffer) => fromBinary(method.output, bytes);
  return () =>
    new Promise((resolve, reject) =>
      client.makeUnaryRequest(path, serialize, deserialize, message, (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
}

/**
 * RPC throughput with 64 calls in flight from a @grpc/grpc-js client, against grpc.health.v1
 * Check (a handler that does next to nothing) on the same server in the same run.
 */
export async function grpcThroughputBench(server: RunningServer, fixture: Fixture): Promise<void> {
  const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  let executions = 0;
  const selectRequest = fixture.selectRequest();
  const select = unaryCaller(client, ExecutionClusterLabelService.method.selectCluster, selectRequest);
  const selectVaried = () => {
    executions++;
    return unaryCaller(client, ExecutionClusterLabelService.method.selectCluster, {
      ...selectRequest,
      executionId: `exec-${executions}`,
    })();
  };
  const getPool = unaryCaller(client, ClusterPoolService.method.getClusterPool, { name: "default" });
  const check = unaryCaller(client, Health.method.check, {});

  for (const call of [check, select, getPool]) await callsPerSecond(call, IN_FLIGHT, 500); // warm up
  const baseline = await bestOf(3, () => callsPerSecond(check, IN_FLIGHT, DURATION_MS));
  const selectRate = await bestOf(3, () => callsPerSecond(selectVaried, IN_FLIGHT, DURATION_MS));
  const poolRate = await bestOf(3, () => callsPerSecond(getPool, IN_FLIGHT, DURATION_MS));
  client.close();

  console.log(`\ngRPC throughput, @grpc/grpc-js client, ${IN_FLIGHT} calls in flight (best of 3 × ${DURATION_MS} ms)`);
  console.log(`  baseline  grpc.health.v1.Health/Check                ${baseline.toFixed(0).padStart(7)} calls/s`);
  console.log(`  SelectCluster (workflow scope, weighted label)      ${selectRate.toFixed(0).padStart(7)} calls/s  ratio ${(selectRate / baseline).toFixed(2)}  (goal >= 0.80)`);
  console.log(`  GetClusterPool (SQLite read)                        ${poolRate.toFixed(0).padStart(7)} calls/s  ratio ${(poolRate / baseline).toFixed(2)}`);
}
