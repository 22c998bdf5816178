import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type http2 from "node:http2";
import { brotliCompressSync, gzipSync } from "node:zlib";
import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { grpcJsClient, GrpcJsError } from "../support/clients.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { isUnary, methodsOf, pathOf, servicesInGen } from "./gen-services.js";
import { connectCode, envelope, grpcStatus, grpcWebStatus, h1Request, h2Connect, h2Request, type RawAnswer } from "./raw-http.js";

const GRPC = { "content-type": "application/grpc", te: "trailers" };
const GRPC_WEB = { "content-type": "application/grpc-web+proto" };
const CONNECT_STREAM = { "content-type": "application/connect+proto", "connect-protocol-version": "1" };
const ONE_ZERO_BYTE = new Uint8Array([0x00]);
const CLOSING_BRACE = new TextEncoder().encode("}");
/** A gzip stream cut short: connect-node calls it INTERNAL ("decompression failed"). */
const TRUNCATED_GZIP = gzipSync(Buffer.from("{}".repeat(1000))).subarray(0, 20);
const BAD_BROTLI = brotliCompressSync(Buffer.from("x".repeat(1000))).subarray(0, 5);

/** An unknown field (99) made of 200 nested groups: past protobuf-es's 100 levels. */
function deeplyNested(levels = 200): Uint8Array {
  const start = [0x9b, 0x06]; // field 99, start group
  const end = [0x9c, 0x06]; // field 99, end group
  return new Uint8Array([...Array.from({ length: levels }, () => start).flat(), ...Array.from({ length: levels }, () => end).flat()]);
}

let server: TestServer;
let session: http2.ClientHttp2Session;
let methods: DescMethod[];
beforeAll(async () => {
  server = await startTestServer();
  session = await h2Connect(server.url);
  methods = methodsOf(await servicesInGen());
});
afterAll(async () => {
  session.close();
  await server.stop();
});

function grpc(method: DescMethod, body: Uint8Array, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return h2Request(session, { path: pathOf(method), headers: { ...GRPC, ...headers }, body });
}

function expectInvalid(what: string, code: number | string | undefined): void {
  expect([what, code]).toEqual([what, typeof code === "string" ? "invalid_argument" : Code.InvalidArgument]);
}

describe("a message that is not protobuf is INVALID_ARGUMENT, on every RPC and protocol", () => {
  it("gRPC: the one-byte message 00", async () => {
    expect(methods.length).toBeGreaterThan(30);
    for (const method of methods) expectInvalid(pathOf(method), grpcStatus(await grpc(method, envelope(ONE_ZERO_BYTE))));
  });

  it("gRPC-Web: the one-byte message 00", async () => {
    for (const method of methods) {
      const answer = await h2Request(session, { path: pathOf(method), headers: GRPC_WEB, body: envelope(ONE_ZERO_BYTE) });
      expectInvalid(pathOf(method), grpcWebStatus(answer));
    }
  });

  it("Connect: a body of `}` (unary over HTTP/1.1, streams over HTTP/2)", async () => {
    for (const method of methods) {
      const answer = isUnary(method)
        ? await h1Request(server.url, { path: pathOf(method), headers: { "content-type": "application/proto" }, body: CLOSING_BRACE })
        : await h2Request(session, { path: pathOf(method), headers: CONNECT_STREAM, body: envelope(CLOSING_BRACE) });
      expectInvalid(pathOf(method), connectCode(answer));
      if (isUnary(method)) expect(answer.status).toBe(400);
    }
  });

  it("protobuf nested past 100 levels", async () => {
    for (const method of methods) expectInvalid(pathOf(method), grpcStatus(await grpc(method, envelope(deeplyNested()))));
  });

  it("a unary call with no message or two", async () => {
    const list = methods.find((method) => pathOf(method).endsWith("ClusterPoolService/ListClusterPools"))!;
    expectInvalid("no message", grpcStatus(await grpc(list, new Uint8Array(0))));
    expectInvalid("two messages", grpcStatus(await grpc(list, Buffer.concat([envelope(new Uint8Array(0)), envelope(new Uint8Array(0))]))));
  });
});

describe("Connect GET", () => {
  const reads = () => methods.filter((method) => method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS && isUnary(method));

  it("a message that is not base64 is INVALID_ARGUMENT (400)", async () => {
    expect(reads().length).toBeGreaterThan(10);
    for (const method of reads()) {
      const answer = await h1Request(server.url, { method: "GET", path: `${pathOf(method)}?connect=v1&encoding=json&base64=1&message=!!!` });
      expect([pathOf(method), answer.status, connectCode(answer)]).toEqual([pathOf(method), 400, "invalid_argument"]);
    }
  });

  it("a compressed message that does not decompress is INVALID_ARGUMENT (400)", async () => {
    const message = encodeURIComponent(Buffer.from(TRUNCATED_GZIP).toString("base64url"));
    for (const method of reads()) {
      const answer = await h1Request(server.url, { method: "GET", path: `${pathOf(method)}?connect=v1&encoding=json&base64=1&compression=gzip&message=${message}` });
      expect([pathOf(method), answer.status, connectCode(answer)]).toEqual([pathOf(method), 400, "invalid_argument"]);
    }
  });
});

describe("compressed payloads", () => {
  const list = () => methods.find((method) => pathOf(method).endsWith("ClusterPoolService/ListClusterPools"))!;

  it("that do not decompress are INVALID_ARGUMENT (gRPC, gRPC-Web, Connect)", async () => {
    for (const [name, payload] of [["gzip", TRUNCATED_GZIP], ["br", BAD_BROTLI]] as const) {
      expectInvalid(`gRPC ${name}`, grpcStatus(await grpc(list(), envelope(payload, 1), { "grpc-encoding": name })));
      const web = await h2Request(session, { path: pathOf(list()), headers: { ...GRPC_WEB, "grpc-encoding": name }, body: envelope(payload, 1) });
      expectInvalid(`gRPC-Web ${name}`, grpcWebStatus(web));
      const connect = await h1Request(server.url, { path: pathOf(list()), headers: { "content-type": "application/proto", "content-encoding": name }, body: payload });
      expect([name, connect.status, connectCode(connect)]).toEqual([name, 400, "invalid_argument"]);
    }
  });

  it("flagged compressed without grpc-encoding stay INTERNAL, as the gRPC spec says", async () => {
    expect(grpcStatus(await grpc(list(), envelope(gzipSync(Buffer.alloc(0)), 1)))).toBe(Code.Internal);
  });
});

describe("Connect JSON", () => {
  it("refuses unknown fields, naming them", async () => {
    const body = JSON.stringify({ clusterPool: { name: "typo", config: { objectStoreRef: { uri: "s3://b" }, imageRegistri: { locator: "x" } } } });
    const answer = await h1Request(server.url, {
      path: "/clusterplane.v1.ClusterPoolService/CreateClusterPool",
      headers: { "content-type": "application/json" },
      body: new TextEncoder().encode(body),
    });
    expect(answer.status).toBe(400);
    const error = JSON.parse(answer.body.toString("utf8"));
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toContain("imageRegistri");
  });

  it("quotes at most a short prefix of a huge unknown field name", async () => {
    const key = "k".repeat(1024 * 1024);
    const answer = await h1Request(server.url, {
      path: "/clusterplane.v1.ClusterPoolService/ListClusterPools",
      headers: { "content-type": "application/json" },
      body: new TextEncoder().encode(JSON.stringify({ [key]: 1 })),
    });
    expect(connectCode(answer)).toBe("invalid_argument");
    expect(answer.body.byteLength).toBeLessThan(4096);
  });
});

describe("error messages quote bad values briefly", () => {
  it("a 17 375-character endpoint is INVALID_ARGUMENT over grpc-js, and the channel keeps working", async () => {
    const client = grpcJsClient(ClusterService, `127.0.0.1:${server.port}`);
    const pools = grpcJsClient(ClusterPoolService, `127.0.0.1:${server.port}`);
    try {
      const endpoint = `https://${"e".repeat(17_375 - "https://".length)}`.replace("https", "http");
      const error = await client
        .call("CreateCluster", { cluster: { name: "long-endpoint", endpoint, enabled: true } })
        .then(() => undefined, (reason: unknown) => reason);
      expect(error).toBeInstanceOf(GrpcJsError);
      expect((error as GrpcJsError).code).toBe(Code.InvalidArgument);
      expect((error as GrpcJsError).message.length).toBeLessThan(2048);
      expect((await client.call("ListClusters", {})).clusters).toEqual([]);
      expect((await pools.call("ListClusterPools", {})).clusterPools).toHaveLength(1);
    } finally {
      client.close();
      pools.close();
    }
  });
});

describe("afterwards", () => {
  it("the server is healthy and serves", async () => {
    expect((await h1Request(server.url, { method: "GET", path: "/healthz" })).status).toBe(200);
    const list = await h1Request(server.url, { path: "/clusterplane.v1.ClusterPoolService/ListClusterPools", headers: { "content-type": "application/json" }, body: new TextEncoder().encode("{}") });
    expect(JSON.parse(list.body.toString("utf8")).clusterPools).toHaveLength(1);
  });
});
