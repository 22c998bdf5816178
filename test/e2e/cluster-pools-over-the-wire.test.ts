import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import {
  HealthCheckRequestSchema,
  Health,
  HealthCheckResponse_ServingStatus,
} from "../../gen/health/v1/health_pb.js";
import { connectClient, connectTransports, grpcJsClient, GrpcJsError } from "../support/clients.js";
import { seedProdPool } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

async function codeOf(call: Promise<unknown>): Promise<Code> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error).code;
  }
  throw new Error("expected the call to fail");
}

describe.each(Object.keys(connectTransports("http://unused")))("cluster pools over %s", (transportName) => {
  const poolName = `prod-${transportName.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/-+$/, "")}`.slice(0, 63);

  it("creates, gets, lists, updates and deletes a pool", async () => {
    const client = connectClient(ClusterPoolService, connectTransports(server.url)[transportName]!);
    const created = (await client.createClusterPool({ clusterPool: seedProdPool({ name: poolName }) })).clusterPool!;
    expect(created.config?.objectStoreRef?.uri).toBe("s3://my-prod-bucket/prefix");
    expect((await client.getClusterPool({ name: poolName })).clusterPool?.etag).toBe(created.etag);
    const names = (await client.listClusterPools({ pageSize: 1000 })).clusterPools.map((p) => p.name);
    expect(names).toContain(poolName);
    expect(names).toContain("default");
    const updated = await client.updateClusterPool({
      clusterPool: seedProdPool({ name: poolName, etag: created.etag }),
    });
    expect(updated.clusterPool?.etag).not.toBe(created.etag);
    expect(await codeOf(client.updateClusterPool({ clusterPool: seedProdPool({ name: poolName, etag: created.etag }) }))).toBe(
      Code.Aborted,
    );
    await client.deleteClusterPool({ name: poolName });
    expect(await codeOf(client.getClusterPool({ name: poolName }))).toBe(Code.NotFound);
  });

  it("answers bad input with INVALID_ARGUMENT, the default pool's delete with FAILED_PRECONDITION", async () => {
    const client = connectClient(ClusterPoolService, connectTransports(server.url)[transportName]!);
    expect(await codeOf(client.createClusterPool({ clusterPool: seedProdPool({ name: "Not OK" }) }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(client.deleteClusterPool({ name: "default" }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(client.createClusterPool({ clusterPool: seedProdPool({ name: "default" }) }))).toBe(
      Code.AlreadyExists,
    );
  });
});

describe("cluster pools over @grpc/grpc-js", () => {
  const address = () => `127.0.0.1:${server.port}`;

  it("round-trips a pool and reports gRPC status codes", async () => {
    const client = grpcJsClient(ClusterPoolService, address());
    try {
      const created = await client.call("CreateClusterPool", { clusterPool: seedProdPool({ name: "grpc-js" }) });
      expect((created as { clusterPool: { name: string } }).clusterPool.name).toBe("grpc-js");
      const failure = await client
        .call("CreateClusterPool", { clusterPool: seedProdPool({ name: "grpc-js" }) })
        .catch((error: GrpcJsError) => error);
      expect((failure as GrpcJsError).code).toBe(grpc.status.ALREADY_EXISTS);
      const bad = await client
        .call("CreateClusterPool", { clusterPool: seedProdPool({ name: "grpc-js", config: undefined }) })
        .catch((error: GrpcJsError) => error);
      expect((bad as GrpcJsError).code).toBe(grpc.status.INVALID_ARGUMENT);
      await client.call("DeleteClusterPool", { name: "grpc-js" });
    } finally {
      client.close();
    }
  });

  it("serves grpc.health.v1 Check", async () => {
    const client = grpcJsClient(Health, address());
    try {
      const response = await client.call("Check", create(HealthCheckRequestSchema, { service: "" }));
      expect((response as { status: number }).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      client.close();
    }
  });
});
