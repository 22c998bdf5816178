import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethodUnary } from "@bufbuild/protobuf";
import { ClusterPoolService, GetClusterPoolRequestSchema } from "../gen/clusterplane/v1/cluster_pool_pb.js";
import { Health, HealthCheckRequestSchema } from "../gen/health/v1/health_pb.js";
import type { RunningServer } from "../src/server/server.js";
import { bestOf, callsPerSecond } from "./throughput.js";

const IN_FLIGHT = 64;
const DURATION_MS = 3000;

/** A grpc-js unary caller for one method, serializing with protobuf-es. */
function unaryCaller<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  path: string,
  method: DescMethodUnary<I, O>,
  request: object,
): () => Promise<unknown> {
  const message = create(method.input, request as never);
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
 * GetClusterPool (validation, SQLite read, mapping) against grpc.health.v1 Check (a near-empty
 * handler) on the same server, with 64 calls in flight from a @grpc/grpc-js client.
 */
export async function grpcThroughputBench(server: RunningServer): Promise<void> {
  const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  const getPool = unaryCaller(client, "/clusterplane.v1.ClusterPoolService/GetClusterPool",
    ClusterPoolService.method.getClusterPool, create(GetClusterPoolRequestSchema, { name: "default" }));
  const check = unaryCaller(client, "/grpc.health.v1.Health/Check", Health.method.check,
    create(HealthCheckRequestSchema, {}));
  await callsPerSecond(getPool, IN_FLIGHT, 500); // warm up both paths
  await callsPerSecond(check, IN_FLIGHT, 500);
  const baseline = await bestOf(3, () => callsPerSecond(check, IN_FLIGHT, DURATION_MS));
  const measured = await bestOf(3, () => callsPerSecond(getPool, IN_FLIGHT, DURATION_MS));
  client.close();
  console.log(`grpc-js, ${IN_FLIGHT} in flight:`);
  console.log(`  baseline  grpc.health.v1.Health/Check      ${baseline.toFixed(0)} calls/s`);
  console.log(`  measured  ClusterPoolService/GetClusterPool ${measured.toFixed(0)} calls/s`);
  console.log(`  ratio     ${(measured / baseline).toFixed(2)}`);
}
