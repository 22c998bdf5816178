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

/**
 * The one value above that Node's own HTTP/2 stack refuses before our code sees it: its bundled
 * nghttp2 checks a server's incoming :authority against RFC 3986's authority characters (space,
 * tab, `"`, `<`, `{`, `|`, `/`, `?`, `#`, non-ASCII… are not among them) and resets the stream
 * with PROTOCOL_ERROR; no `stream` or `request` event is emitted, so no handler runs (a bare
 * node:http2 server, and curl as the client, do the same). "%zz", "[::1", "a:b:c" and bad ports
 * pass that check and reach guarded() (src/server/edge.ts), which must answer them.
 */
const RESET_BY_NODE_HTTP2 = new Set(["a b"]);

/** A call over HTTP/2 with a chosen :authority: gRPC, or Connect (unary JSON). */
function callWithAuthority(session: http2.ClientHttp2Session, protocol: "grpc" | "connect", authority: string): Promise<RawAnswer> {
  return h2Request(session, {
    path: LIST_POOLS,
    headers:
      protocol === "grpc"
        ? { ":authority": authority, "content-type": "application/grpc", te: "trailers" }
        : { ":authority": authority, "content-type": "application/json" },
    body: protocol === "grpc" ? envelope(new Uint8Array(0)) : new TextEncoder().encode("{}"),
  });
}

/** What came back, in terms comparable across protocols. */
function outcome(answer: RawAnswer, protocol: "grpc" | "connect"): unknown {
  if (answer.error !== undefined) return { error: answer.error };
  return protocol === "grpc" ? { status: answer.status, grpcStatus: grpcStatus(answer) } : { status: answer.status, code: connectCode(answer) };
}

/**
 * Refused as bad input in the request's own protocol: gRPC's INVALID_ARGUMENT (HTTP 200,
 * grpc-status 3) or Connect's 400 invalid_argument. A stream reset passes only for the values
 * Node's HTTP/2 stack resets itself (RESET_BY_NODE_HTTP2); should Node start passing one of them
 * on, our answer is required for it too.
 */
async function expectRefusedOverH2(session: http2.ClientHttp2Session): Promise<void> {
  for (const protocol of ["grpc", "connect"] as const) {
    for (const authority of MALFORMED) {
      const answer = await callWithAuthority(session, protocol, authority);
      const refused = protocol === "grpc" ? { status: 200, grpcStatus: INVALID_ARGUMENT } : { status: 400, code: "invalid_argument" };
      const got = outcome(answer, protocol);
      if (RESET_BY_NODE_HTTP2.has(authority) && answer.error !== undefined) {
        expect([protocol, authority, got]).toEqual([protocol, authority, { error: expect.stringMatching(/NGHTTP2_PROTOCOL_ERROR/) }]);
      } else {
        expect([protocol, authority, got]).toEqual([protocol, authority, refused]);
      }
    }
  }
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

  it("is INVALID_ARGUMENT over gRPC and 400 over Connect on HTTP/2, and the server keeps serving", async () => {
    const session = await h2Connect(server.url);
    try {
      await expectRefusedOverH2(session);
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

  it("is answered 400 over HTTP/1.1, and INVALID_ARGUMENT or 400 in the protocol of the call over HTTP/2, with or without a certificate", async () => {
    for (const identity of [tls, { ca: pki.caCertPem }]) {
      for (const host of MALFORMED) {
        const answer = await connectWithHost(server.url, host, { ...identity, servername: "localhost" });
        expect([host, answer.status, connectCode(answer)]).toEqual([host, 400, "invalid_argument"]);
      }
      const session = await h2Connect(server.url, { ...identity, servername: "localhost" });
      try {
        await expectRefusedOverH2(session);
      } finally {
        session.close();
      }
    }
    await expectHealthy(server, tls);
  });
});
