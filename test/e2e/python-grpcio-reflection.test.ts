import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestServer, type TestServer } from "../support/server.js";

const PYTHON = "/usr/bin/python3";
const run = promisify(execFile);
const REFLECTION_PROTO = "node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto";

/** grpcio and protoc come from Debian (python3-grpcio, protobuf-compiler); .ci/run installs them. */
function pythonGrpcAvailable(): boolean {
  const probe = spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { stdio: "ignore" });
  const protoc = spawnSync("protoc", ["--version"], { stdio: "ignore" });
  return probe.status === 0 && protoc.status === 0;
}

const available = pythonGrpcAvailable();
if (!available && process.env.CI) {
  throw new Error("CI must install python3-grpcio, python3-protobuf and protobuf-compiler (see .ci/run)");
}

describe.skipIf(!available)("a client that is not ours: Python grpcio through reflection alone", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it("lists services, fetches descriptors and calls CreateClusterPool", async () => {
    // Compiled at the root of a temporary directory: under grpc/… it would shadow the grpc package.
    const generated = mkdtempSync(join(tmpdir(), "clusterplane-py-"));
    copyFileSync(REFLECTION_PROTO, join(generated, "reflection.proto"));
    execFileSync("protoc", [`-I${generated}`, `--python_out=${generated}`, "reflection.proto"]);
    // Asynchronously: the server answering the client runs in this very process.
    const { stdout } = await run(PYTHON, ["test/e2e/python/reflection_client.py", `127.0.0.1:${server.port}`, generated]);
    const seen = JSON.parse(stdout);

    expect(seen.services).toEqual(
      expect.arrayContaining([
        "clusterplane.v1.ClusterPoolService",
        "clusterplane.v1.ClusterService",
        "clusterplane.v1.QueueService",
        "clusterplane.v1.ExecutionClusterLabelService",
        "clusterplane.v1.ProjectService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
      ]),
    );
    expect(seen.methods).toEqual([
      "CreateClusterPool",
      "GetClusterPool",
      "ListClusterPools",
      "UpdateClusterPool",
      "DeleteClusterPool",
    ]);
    expect(seen.create.code).toBe("OK");
    expect(seen.create.body.clusterPool.name).toBe("py-prod");
    expect(seen.create.body.clusterPool.config.secretStore.type).toBe("SECRET_STORE_TYPE_AWS_SECRETS_MANAGER");
    expect(seen.create_again.code).toBe("ALREADY_EXISTS");
    expect(seen.create_bad.code).toBe("INVALID_ARGUMENT");
    expect(seen.get.body.clusterPool.config.imageRegistry.locator).toBe(
      "123456789012.dkr.ecr.us-east-1.amazonaws.com/union",
    );
    expect(seen.delete_default.code).toBe("FAILED_PRECONDITION");
  });
});
