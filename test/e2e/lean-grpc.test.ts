import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterPoolService, GetClusterPoolRequestSchema } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { createLogger } from "../../src/server/logging.js";
import type { RpcLogPolicy } from "../../src/server/logging.js";
import { grpcJsAsConnectClient } from "../support/clients.js";
import { seedProdPool } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";
import { envelope, grpcStatus, h2Connect, h2Request } from "./raw-http.js";

/** A server whose log lines are collected, with the given per-RPC log policy. */
async function loggedServer(calls: RpcLogPolicy, slowMs = 60_000) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const server = await startTestServer({ rpcLog: { calls, slowMs } }, { logger: createLogger("info", destination) });
  const rpcLine = (requestId: string) => lines.find((line) => line.msg === "rpc" && line.requestId === requestId);
  /** The lines of one method, from both transports (grpc-js sends no x-request-id to find them by). */
  const methodLines = (method: string) => lines.filter((line) => line.msg === "rpc" && line.procedure === `clusterplane.v1.ClusterPoolService/${method}`);
  return { server, rpcLine, methodLines };
}

/** The same calls over the lean path (grpc-js) and connect-node's (Connect): a read, a write, a failure. */
async function callEach(server: TestServer, tag: string) {
  const clients = {
    grpc: grpcJsAsConnectClient(ClusterPoolService, `127.0.0.1:${server.port}`),
    connect: createClient(ClusterPoolService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })),
  };
  for (const [name, client] of Object.entries(clients)) {
    const id = (what: string) => ({ headers: { "x-request-id": `${tag}-${name}-${what}` } });
    // grpc-js takes metadata per client, not per call: the id is sent as a header by the Connect client only.
    await client.listClusterPools({}, id("read"));
    await client.createClusterPool({ clusterPool: seedProdPool({ name: `${tag}-${name}` }) }, id("write"));
    await client.getClusterPool({ name: "no-such-pool" }, id("failure")).catch(() => undefined);
  }
  clients.grpc.close();
}

describe("the per-RPC log line follows log.rpcCalls on both transports", () => {
  it("notable (the default): failures and writes get a line, a fast successful read does not", async () => {
    const { server, rpcLine, methodLines } = await loggedServer("notable");
    try {
      await callEach(server, "notable");
      expect(rpcLine("notable-connect-read")).toBeUndefined();
      expect(rpcLine("notable-connect-write")).toMatchObject({ procedure: "clusterplane.v1.ClusterPoolService/CreateClusterPool", code: "OK" });
      expect(rpcLine("notable-connect-failure")).toMatchObject({ code: "NOT_FOUND" });
      // The same on the lean path (grpc-js): one line per transport for the write and the failure, none for the read.
      expect(methodLines("ListClusterPools")).toHaveLength(0);
      expect(methodLines("CreateClusterPool").map((line) => line.code)).toEqual(["OK", "OK"]);
      expect(methodLines("GetClusterPool").map((line) => line.code)).toEqual(["NOT_FOUND", "NOT_FOUND"]);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain('clusterplane_rpc_requests_total{service="clusterplane.v1.ClusterPoolService",method="ListClusterPools",code="OK"} 2');
    } finally {
      await server.stop();
    }
  });

  it("all: every call gets a line; none: no call does", async () => {
    const everything = await loggedServer("all");
    const nothing = await loggedServer("none");
    try {
      await callEach(everything.server, "all");
      await callEach(nothing.server, "none");
      for (const method of ["ListClusterPools", "CreateClusterPool", "GetClusterPool"]) {
        expect(everything.methodLines(method)).toHaveLength(2);
        expect(nothing.methodLines(method)).toHaveLength(0);
      }
      for (const what of ["read", "write", "failure"]) {
        expect(everything.rpcLine(`all-connect-${what}`)).toBeDefined();
        expect(nothing.rpcLine(`none-connect-${what}`)).toBeUndefined();
      }
    } finally {
      await everything.server.stop();
      await nothing.server.stop();
    }
  });

  it("notable with slowRpc: a successful read slower than the threshold gets a line", async () => {
    const { server, rpcLine } = await loggedServer("notable", 0);
    try {
      await callEach(server, "slow");
      expect(rpcLine("slow-connect-read")).toMatchObject({ code: "OK", durationMs: expect.any(Number) });
    } finally {
      await server.stop();
    }
  });
});

describe("the lean gRPC path", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  const GET_POOL = "/clusterplane.v1.ClusterPoolService/GetClusterPool";
  const GRPC = { "content-type": "application/grpc", te: "trailers" };
  const getDefault = envelope(toBinary(GetClusterPoolRequestSchema, create(GetClusterPoolRequestSchema, { name: "default" })));

  it("counts a call whose caller goes away before its message is whole as CANCELLED, and serves others", async () => {
    const leaving = await h2Connect(server.url);
    const stream = leaving.request({ ":method": "POST", ":path": GET_POOL, ...GRPC });
    stream.on("error", () => undefined);
    await new Promise<void>((resolve) => stream.write(getDefault.subarray(0, 3), () => resolve()));
    // Node's client ends a stream before resetting it; a connection that drops ends nothing.
    leaving.destroy();
    await waitFor("the cancelled call in the metrics", async () =>
      (await metricsText()).includes('clusterplane_rpc_requests_total{service="clusterplane.v1.ClusterPoolService",method="GetClusterPool",code="CANCELLED"} 1'),
    );
    const session = await h2Connect(server.url);
    try {
      expect(grpcStatus(await h2Request(session, { path: GET_POOL, headers: GRPC, body: getDefault }))).toBe(0);
    } finally {
      session.close();
    }
  });

  it("leaves to connect-node what is not plain gRPC with protobuf: a browser's Origin, +json, GET", async () => {
    const session = await h2Connect(server.url);
    try {
      const withOrigin = await h2Request(session, { path: GET_POOL, headers: { ...GRPC, origin: "https://elsewhere.example" }, body: getDefault });
      expect(withOrigin.status).toBe(403);
      const json = await h2Request(session, {
        path: GET_POOL,
        headers: { ...GRPC, "content-type": "application/grpc+json" },
        body: envelope(Buffer.from(JSON.stringify({ name: "default" }))),
      });
      expect(grpcStatus(json)).toBe(0);
      expect(JSON.parse(json.body.subarray(5).toString())).toMatchObject({ clusterPool: { name: "default" } });
      const get = await h2Request(session, { method: "GET", path: `${GET_POOL}?encoding=json&message=${encodeURIComponent('{"name":"default"}')}` });
      expect(get.status).toBe(200);
    } finally {
      session.close();
    }
  });

  it("answers UNIMPLEMENTED, trailers-only, for a method no service has", async () => {
    const session = await h2Connect(server.url);
    try {
      const answer = await h2Request(session, { path: "/clusterplane.v1.ClusterPoolService/Nope", headers: GRPC, body: getDefault });
      expect(answer.headers["grpc-status"]).toBe("12");
      expect(decodeURIComponent(String(answer.headers["grpc-message"]))).toBe("this server does not implement /clusterplane.v1.ClusterPoolService/Nope");
      expect(answer.body.byteLength).toBe(0);
    } finally {
      session.close();
    }
  });

  async function metricsText(): Promise<string> {
    return (await fetch(`${server.url}/metrics`)).text();
  }
});
