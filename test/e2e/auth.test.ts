import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { mkdtempSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { CLUSTERPLANE_SERVICES } from "../../src/services/index.js";
import { createLogger } from "../../src/server/logging.js";
import { bearer, newToken, writeTokensFile, type TestToken } from "../support/auth.js";
import { grpcJsClient, GrpcJsError } from "../support/clients.js";
import { seedProdPool } from "../support/fixtures.js";
import { READS, ROUTES } from "../support/procedures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";

const admin = newToken("admin", "ops team");
const viewer = newToken("viewer", "grafana");
const router = newToken("router", "execution-engine");

let server: TestServer;
let tokensPath: string;
const logLines: Record<string, unknown>[] = [];
let logText = "";

beforeAll(async () => {
  tokensPath = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
  writeTokensFile(tokensPath, [admin, viewer, router]);
  const destination = {
    write(line: string) {
      logText += line;
      logLines.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
  server = await startTestServer({ auth: { tokensFile: tokensPath } }, { logger: createLogger("info", destination) });
});
afterAll(() => server.stop());

function connectTransport(...interceptors: Interceptor[]) {
  return createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors });
}

/** "OK", or the name of the code the call failed with. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "OK";
  } catch (error) {
    return Code[ConnectError.from(error).code];
  }
}

type AnyClient = Record<string, (request: object) => Promise<unknown>>;

/** Calls every clusterplane.v1 method (with an empty request) and returns each outcome. */
async function callEverything(...interceptors: Interceptor[]): Promise<Record<string, string>> {
  const transport = connectTransport(...interceptors);
  const outcomes: Record<string, string> = {};
  for (const service of CLUSTERPLANE_SERVICES as readonly DescService[]) {
    const client = createClient(service, transport) as unknown as AnyClient;
    for (const method of service.methods) {
      outcomes[`${service.typeName}/${method.name}`] = await outcome(client[method.localName]!({}));
    }
  }
  return outcomes;
}

async function reflect(useV1Alpha: boolean, ...interceptors: Interceptor[]): Promise<string> {
  const transport = createGrpcTransport({ baseUrl: server.url, interceptors });
  const requests = async function* () {
    yield { messageRequest: { case: "listServices" as const, value: "" } };
  };
  return outcome(
    (async () => {
      if (useV1Alpha) {
        for await (const response of createClient(ServerReflectionV1Alpha, transport).serverReflectionInfo(requests())) void response;
      } else {
        for await (const response of createClient(ServerReflection, transport).serverReflectionInfo(requests())) void response;
      }
    })(),
  );
}

async function healthCheck(...interceptors: Interceptor[]) {
  return createClient(Health, createGrpcTransport({ baseUrl: server.url, interceptors })).check({ service: "" });
}

describe("bearer-token authentication", () => {
  const allRoles: [string, TestToken, (name: string) => boolean][] = [
    ["admin", admin, () => true],
    ["viewer", viewer, (name) => READS.includes(name)],
    ["router", router, (name) => READS.includes(name) || ROUTES.includes(name)],
  ];

  it.each(allRoles)("lets %s call exactly what its role allows, every other procedure is PERMISSION_DENIED", async (_role, token, allowed) => {
    const outcomes = await callEverything(bearer(token.token));
    expect(Object.keys(outcomes).length).toBeGreaterThan(30);
    for (const [name, result] of Object.entries(outcomes)) {
      // An allowed call with an empty request may still fail validation; it must not fail auth.
      if (allowed(name)) expect([name, result]).not.toEqual([name, expect.stringMatching(/^(Unauthenticated|PermissionDenied)$/)]);
      else expect([name, result]).toEqual([name, "PermissionDenied"]);
    }
  });

  it("answers UNAUTHENTICATED without a token, with an unknown one and with a malformed header", async () => {
    const malformed: Interceptor = (next) => (request) => {
      request.header.set("Authorization", `Basic ${Buffer.from("ops:pw").toString("base64")}`);
      return next(request);
    };
    for (const interceptors of [[], [bearer("not-a-token-we-know-of")], [malformed]]) {
      const outcomes = await callEverything(...interceptors);
      expect(new Set(Object.values(outcomes))).toEqual(new Set(["Unauthenticated"]));
    }
  });

  it("keeps grpc.health.v1 open and lets any valid token use reflection (v1 and v1alpha)", async () => {
    expect((await healthCheck()).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    for (const useV1Alpha of [false, true]) {
      expect(await reflect(useV1Alpha)).toBe("Unauthenticated");
      expect(await reflect(useV1Alpha, bearer("unknown-token-0123456789"))).toBe("Unauthenticated");
      for (const token of [admin, viewer, router]) expect(await reflect(useV1Alpha, bearer(token.token))).toBe("OK");
    }
  });

  it("reads the token from gRPC metadata (grpc-js)", async () => {
    const address = `127.0.0.1:${server.port}`;
    const code = async (token: string | null, method: string, request: object) => {
      const client = grpcJsClient(ClusterPoolService, address, token ? { metadata: { authorization: `Bearer ${token}` } } : {});
      try {
        await client.call(method, request);
        return grpc.status.OK;
      } catch (error) {
        return (error as GrpcJsError).code;
      } finally {
        client.close();
      }
    };
    expect(await code(admin.token, "CreateClusterPool", { clusterPool: seedProdPool({ name: "grpc-js-auth" }) })).toBe(grpc.status.OK);
    expect(await code(viewer.token, "GetClusterPool", { name: "grpc-js-auth" })).toBe(grpc.status.OK);
    expect(await code(viewer.token, "DeleteClusterPool", { name: "grpc-js-auth" })).toBe(grpc.status.PERMISSION_DENIED);
    expect(await code(router.token, "DeleteClusterPool", { name: "grpc-js-auth" })).toBe(grpc.status.PERMISSION_DENIED);
    expect(await code(null, "GetClusterPool", { name: "grpc-js-auth" })).toBe(grpc.status.UNAUTHENTICATED);
    expect(await code("wrong-token-0123456789", "GetClusterPool", { name: "grpc-js-auth" })).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("says why a call was refused, without echoing the token", async () => {
    const pools = createClient(ClusterPoolService, connectTransport(bearer(viewer.token)));
    const denied = await pools.deleteClusterPool({ name: "default" }).catch((error: unknown) => ConnectError.from(error));
    expect(denied).toBeInstanceOf(ConnectError);
    expect((denied as ConnectError).rawMessage).toBe(
      "grafana (role viewer) may not call clusterplane.v1.ClusterPoolService/DeleteClusterPool: it is a write and needs role admin",
    );
    const unknown = await createClient(ClusterPoolService, connectTransport(bearer("x".repeat(40))))
      .listClusterPools({})
      .catch((error: unknown) => ConnectError.from(error));
    expect((unknown as ConnectError).rawMessage).toBe("unknown bearer token");
  });

  it("picks up a rotated tokens file without a restart; a malformed line is refused, never kept", async () => {
    const next = newToken("admin", "ops team (rotated)");
    const list = (token: TestToken) => outcome(createClient(ClusterPoolService, connectTransport(bearer(token.token))).listClusterPools({}));
    expect(await list(next)).toBe("Unauthenticated");
    // Overlap: both the old and the new admin token work.
    writeTokensFile(tokensPath, [admin, next, viewer, router]);
    await waitFor("the new token", async () => (await list(next)) === "OK");
    expect(await list(admin)).toBe("OK");
    // The old one is retired.
    writeTokensFile(tokensPath, [next, viewer, router]);
    await waitFor("the old token to stop working", async () => (await list(admin)) === "Unauthenticated");
    expect(await list(next)).toBe("OK");
    // A broken edit: the bad line is refused (revocation must not fail open), the valid lines apply.
    const before = logLines.length;
    writeTokensFile(tokensPath, [{ ...next, role: "superuser" as never }, viewer]);
    await waitFor("the warning", () => logLines.slice(before).some((line) => line.msg === "tokens file reloaded; malformed lines refused"));
    expect(await list(next)).toBe("Unauthenticated");
    expect(await list(viewer)).toBe("OK");
    // A deleted file: no token at all until it is back.
    unlinkSync(tokensPath);
    await waitFor("every token refused", async () => (await list(viewer)) === "Unauthenticated");
    writeTokensFile(tokensPath, [admin, viewer, router]);
    await waitFor("the original tokens", async () => (await list(admin)) === "OK");
  });

  it("logs a JSON line per notable call (a write, a refusal) with request id, caller, role, code and duration, and never a token", async () => {
    const pools = createClient(ClusterPoolService, connectTransport(bearer(router.token)));
    await pools.listClusterPools({}, { headers: { "x-request-id": "req-read-1" } });
    await createClient(ClusterPoolService, connectTransport(bearer(admin.token)))
      .createClusterPool({ clusterPool: seedProdPool({ name: "logged" }) }, { headers: { "x-request-id": "req-write-1" } });
    await pools.deleteClusterPool({ name: "default" }, { headers: { "x-request-id": "req-denied-1" } }).catch(() => undefined);
    const stranger = "stranger-token-" + "z".repeat(30);
    await createClient(ClusterPoolService, connectTransport(bearer(stranger)))
      .listClusterPools({}, { headers: { "x-request-id": "req-unknown-1" } })
      .catch(() => undefined);

    const line = (id: string) => logLines.find((entry) => entry.requestId === id);
    // log.rpcCalls "notable" (the default): a fast, successful read has no line.
    expect(line("req-read-1")).toBeUndefined();
    expect(line("req-write-1")).toMatchObject({
      msg: "rpc",
      service: "clusterplane",
      procedure: "clusterplane.v1.ClusterPoolService/CreateClusterPool",
      caller: admin.name,
      role: "admin",
      code: "OK",
      durationMs: expect.any(Number),
    });
    expect(line("req-denied-1")).toMatchObject({ caller: "execution-engine", role: "router", code: "PERMISSION_DENIED" });
    expect(line("req-unknown-1")).toMatchObject({ code: "UNAUTHENTICATED", error: "unknown bearer token" });
    expect(line("req-unknown-1")).not.toHaveProperty("caller");
    for (const secret of [admin.token, viewer.token, router.token, stranger]) expect(logText).not.toContain(secret);
  });
});

describe("the open-bind rule", () => {
  it("refuses to listen beyond loopback without authentication", async () => {
    await expect(startTestServer({ host: "0.0.0.0" })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without authentication/);
  });

  it("listens beyond loopback with a tokens file, or when told to run open", async () => {
    const withTokens = await startTestServer({ host: "0.0.0.0", auth: { tokensFile: tokensPath } });
    await withTokens.stop();
    const open = await startTestServer({ host: "0.0.0.0", auth: { allowUnauthenticated: true } });
    await open.stop();
  });
});
