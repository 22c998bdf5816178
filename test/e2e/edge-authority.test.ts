import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import type http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { testClientCertificate, testPki } from "../support/kube/test-ca.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { connectCode, envelope, grpcStatus, h1Request, h2Connect, h2Request, tcpExchange, type RawAnswer } from "./raw-http.js";

/** Host / :authority values no URL can be made of; each used to end the process. */
const MALFORMED = ["localhost:99999", "127.0.0.1:65536", "[::1", "localhost:abc", "a b", "%zz", "a:b:c"];
const LIST_POOLS = "/clusterplane.v1.ClusterPoolService/ListClusterPools";
const INVALID_ARGUMENT = 3;

const PKI = "clusterplane-edge-authority";
const pki = testPki(PKI);
const ops = testClientCertificate(PKI, "ops");

/** A Connect call over HTTP/1.1 with a chosen Host header. */
function connectWithHost(url: string, host: string, tls = {}): Promise<RawAnswer> {
  return h1Request(url, {
    path: LIST_POOLS,
    headers: { host, "content-type": "application/json" },
    body: new TextEncoder().encode("{}"),
    requestOptions: tls,
  });
}

/** A gRPC call over HTTP/2 with a chosen :authority. */
function grpcWithAuthority(session: http2.ClientHttp2Session, authority: string): Promise<RawAnswer> {
  return h2Request(session, {
    path: LIST_POOLS,
    headers: { ":authority": authority, "content-type": "application/grpc", te: "trailers" },
    body: envelope(new Uint8Array(0)),
  });
}

/** Refused as bad input, or (a space, for one) reset by the HTTP/2 library before any handler. */
function expectRefusedOverH2(answer: RawAnswer, authority: string): void {
  if (answer.error !== undefined) expect([authority, answer.error]).toEqual([authority, expect.stringMatching(/PROTOCOL_ERROR|reset/)]);
  else expect([authority, grpcStatus(answer)]).toEqual([authority, INVALID_ARGUMENT]);
}

async function expectHealthy(server: TestServer, tls: { ca?: string; cert?: string; key?: string } = {}): Promise<void> {
  const options = { ...tls, servername: tls.ca ? "localhost" : undefined };
  expect((await h1Request(server.url, { method: "GET", path: "/healthz", requestOptions: options })).status).toBe(200);
  const transport = server.url.startsWith("https")
    ? createGrpcTransport({ baseUrl: server.url, nodeOptions: options })
    : createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
  const pools = await createClient(ClusterPoolService, transport).listClusterPools({});
  expect(pools.clusterPools.map((pool) => pool.name)).toEqual(["default"]);
}

describe("a malformed Host or :authority, cleartext, open on loopback (past the DNS-rebinding guard)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it("is answered 400 over HTTP/1.1, and the server keeps serving", async () => {
    for (const host of MALFORMED) {
      const answer = await connectWithHost(server.url, host);
      expect([host, answer.status, connectCode(answer)]).toEqual([host, 400, "invalid_argument"]);
    }
    await expectHealthy(server);
  });

  it("is INVALID_ARGUMENT over HTTP/2, and the server keeps serving", async () => {
    const session = await h2Connect(server.url);
    try {
      for (const authority of MALFORMED) expectRefusedOverH2(await grpcWithAuthority(session, authority), authority);
    } finally {
      session.close();
    }
    await expectHealthy(server);
  });

  it("is refused on plain routes too (a probe with a malformed Host)", async () => {
    expect((await h1Request(server.url, { method: "GET", path: "/healthz", headers: { host: "localhost:99999" } })).status).toBe(400);
    await expectHealthy(server);
  });
});

describe("a request with no Host at all (HTTP/1.0), open on purpose (no DNS-rebinding guard)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ auth: { allowUnauthenticated: true } });
  });
  afterAll(() => server.stop());

  it("is refused as a call, but probes are still answered", async () => {
    const call = await tcpExchange(server.port, `POST ${LIST_POOLS} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
    expect(call.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(call.text).toContain('"code":"invalid_argument"');
    const probe = await tcpExchange(server.port, "GET /healthz HTTP/1.0\r\n\r\n");
    expect(probe.text).toMatch(/^HTTP\/1\.1 200 /);
    await expectHealthy(server);
  });
});

describe("a malformed Host or :authority over TLS with client certificates required", () => {
  let server: TestServer;
  const tls = { ca: pki.caCertPem, cert: ops.certPem, key: ops.keyPem };
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-edge-tls-"));
    writeFileSync(join(dir, "server.crt"), pki.serverCertPem);
    writeFileSync(join(dir, "server.key"), pki.serverKeyPem);
    writeFileSync(join(dir, "client-ca.crt"), pki.caCertPem);
    server = await startTestServer({
      tls: { certFile: join(dir, "server.crt"), keyFile: join(dir, "server.key"), clientCaFile: join(dir, "client-ca.crt"), requireClientCertificate: true },
      auth: { clientCertificates: { ops: "admin" } },
    });
  });
  afterAll(() => server.stop());

  it("is answered 400 over HTTP/1.1 and INVALID_ARGUMENT over HTTP/2, with or without a certificate", async () => {
    for (const identity of [tls, { ca: pki.caCertPem }]) {
      for (const host of MALFORMED) {
        const answer = await connectWithHost(server.url, host, { ...identity, servername: "localhost" });
        expect([host, answer.status, connectCode(answer)]).toEqual([host, 400, "invalid_argument"]);
      }
      const session = await h2Connect(server.url, { ...identity, servername: "localhost" });
      try {
        for (const authority of MALFORMED) expectRefusedOverH2(await grpcWithAuthority(session, authority), authority);
      } finally {
        session.close();
      }
    }
    await expectHealthy(server, tls);
  });
});
