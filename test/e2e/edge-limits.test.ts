import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { gzipSync } from "node:zlib";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { newToken, writeTokensFile } from "../support/auth.js";
import { testPki } from "../support/kube/test-ca.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";
import { connectCode, envelope, grpcStatus, h1Request, h2Connect, h2Request } from "./raw-http.js";

/** gRPC's OK; Connect's Code enum starts at CANCELED. */
const OK = 0;
const LIST_POOLS = "/clusterplane.v1.ClusterPoolService/ListClusterPools";
const GRPC = { "content-type": "application/grpc", te: "trailers" };
/** Generous: these tests wait for the server to act on a short setting, on a busy machine. */
const DEADLINE_MS = 15_000;

const pki = testPki("clusterplane-edge-limits");
let tlsFiles: { certFile: string; keyFile: string };
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-edge-limits-"));
  tlsFiles = { certFile: join(dir, "server.crt"), keyFile: join(dir, "server.key") };
  writeFileSync(tlsFiles.certFile, pki.serverCertPem);
  writeFileSync(tlsFiles.keyFile, pki.serverKeyPem);
});

/** Resolves when `socket` closes; fails after DEADLINE_MS. */
function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    // A closing server ends its side; the end is only seen once what came before it is read.
    socket.resume();
    const timer = setTimeout(() => reject(new Error(`the server kept the connection open for ${DEADLINE_MS} ms`)), DEADLINE_MS);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function connectTcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.on("error", reject);
  });
}

function connectTls(port: number, protocol: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: pki.caCertPem, servername: "localhost", ALPNProtocols: [protocol] }, () => resolve(socket));
    socket.on("error", reject);
  });
}

async function expectHealthy(server: TestServer): Promise<void> {
  expect((await h1Request(server.url, { method: "GET", path: "/healthz", requestOptions: { ca: pki.caCertPem, servername: "localhost" } })).status).toBe(200);
}

/** Declares a body, sends a first envelope of it, and reads the status the server answers with. */
function statusBeforeUploading(session: http2.ClientHttp2Session, headers: Record<string, string>): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": LIST_POOLS, ...headers });
    let status: number | undefined;
    stream.on("response", (fields) => fields["grpc-status"] !== undefined && (status = Number(fields["grpc-status"])));
    stream.on("trailers", (fields) => (status = Number(fields["grpc-status"])));
    stream.on("error", reject);
    stream.on("close", () => resolve(status));
    stream.resume();
    stream.write(envelope(Buffer.alloc(1024)));
  });
}

/** A gzip stream of 1 GiB per MiB sent: the same 1 MiB-of-zeros member, repeated (gzip allows members back to back). */
function gzipBomb(inflatedMiB: number): Buffer {
  const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
  return Buffer.concat(Array.from({ length: inflatedMiB }, () => member));
}

describe("request size (server.limits.maxRequestSize), before authentication", () => {
  let server: TestServer;
  const admin = newToken("admin");
  beforeAll(async () => {
    const tokens = join(mkdtempSync(join(tmpdir(), "clusterplane-edge-tokens-")), "tokens");
    writeTokensFile(tokens, [admin]);
    server = await startTestServer({ auth: { tokensFile: tokens } });
  });
  afterAll(() => server.stop());

  it("a 2 MiB gzip body that inflates to 2 GiB is RESOURCE_EXHAUSTED, and memory stays bounded", { timeout: 120_000 }, async () => {
    const bomb = gzipBomb(2048);
    expect(bomb.byteLength).toBeLessThan(4 * 1024 * 1024);
    const rssBefore = process.memoryUsage().rss;
    const session = await h2Connect(server.url);
    try {
      const grpc = await h2Request(session, { path: LIST_POOLS, headers: { ...GRPC, "grpc-encoding": "gzip" }, body: envelope(bomb, 1) });
      expect(grpcStatus(grpc)).toBe(Code.ResourceExhausted);
      const connect = await h2Request(session, { path: LIST_POOLS, headers: { "content-type": "application/proto", "content-encoding": "gzip" }, body: bomb });
      expect(connectCode(connect)).toBe("resource_exhausted");
    } finally {
      session.close();
    }
    // Unbounded, each call would hold 2 GiB (V8 aborts first); bounded, a few times 4 MiB.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 1024 * 1024);
    await expectHealthy(server);
  });

  it("a declared Content-Length beyond the limit is refused unread, and the connection closed", async () => {
    const answer = await new Promise<{ status: number; body: string; closed: boolean }>((resolve, reject) => {
      const request = http.request(`${server.url}${LIST_POOLS}`, {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "content-length": String(100 * 1024 * 1024) },
      });
      request.on("response", (response) => {
        let body = "";
        response.on("data", (chunk) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body, closed: response.headers.connection === "close" }));
      });
      request.on("error", reject);
      request.write("{");
    });
    expect(answer.status).toBe(429);
    expect(JSON.parse(answer.body)).toMatchObject({ code: "resource_exhausted" });
    expect(answer.closed).toBe(true);
    await expectHealthy(server);
  });

  it("a streamed upload without a length is cut once it passes the limit (HTTP/1.1)", async () => {
    const total = 256 * 1024 * 1024;
    const result = await new Promise<{ status: number; code: string; sent: number }>((resolve, reject) => {
      let sent = 0;
      const request = http.request(`${server.url}${LIST_POOLS}`, {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (sent < total && !request.destroyed) {
          sent += chunk.length;
          if (!request.write(chunk)) return void request.once("drain", pump);
        }
      };
      request.on("response", (response) => {
        let body = "";
        response.on("data", (data) => (body += data));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, code: JSON.parse(body).code, sent }));
      });
      request.on("error", reject);
      pump();
    });
    expect(result).toMatchObject({ status: 429, code: "resource_exhausted" });
    expect(result.sent).toBeLessThan(total / 4);
    await expectHealthy(server);
  });

  it("a gRPC message or request beyond the limit is RESOURCE_EXHAUSTED (HTTP/2)", async () => {
    const session = await h2Connect(server.url);
    try {
      // Refused from the envelope's length or the request's, before anything is buffered or authenticated.
      const declared = await h2Request(session, { path: LIST_POOLS, headers: GRPC, body: envelope(Buffer.alloc(1024), 0, 64 * 1024 * 1024) });
      expect(grpcStatus(declared)).toBe(Code.ResourceExhausted);
      expect(await statusBeforeUploading(session, { ...GRPC, "content-length": String(64 * 1024 * 1024) })).toBe(Code.ResourceExhausted);
      // A stream of messages, each within the limit, is cut once their sum passes it.
      const request = new BinaryWriter().tag(1, WireType.LengthDelimited).string("h".repeat(1024 * 1024)).tag(7, WireType.LengthDelimited).string("").finish();
      const reflection = await h2Request(session, {
        path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        headers: { ...GRPC, authorization: `Bearer ${admin.token}` },
        body: Buffer.concat(Array.from({ length: 6 }, () => envelope(request))),
      });
      // Answered, and the stream ended by the server although the client had more to send.
      expect([grpcStatus(reflection), reflection.error]).toEqual([Code.ResourceExhausted, undefined]);
    } finally {
      session.close();
    }
    await expectHealthy(server);
  });
});

describe("slow and silent clients", () => {
  let server: TestServer;
  let secure: TestServer;
  const limits = { headersTimeoutMs: 500, requestTimeoutMs: 1_000 };
  beforeAll(async () => {
    server = await startTestServer({ limits });
    secure = await startTestServer({ limits, tls: tlsFiles });
  });
  afterAll(async () => {
    await server.stop();
    await secure.stop();
  });

  /** Sends a request line and then one header line every 100 ms, never finishing. */
  function slowloris(socket: net.Socket): () => void {
    socket.on("error", () => undefined);
    socket.write(`POST ${LIST_POOLS} HTTP/1.1\r\nHost: localhost\r\n`);
    let n = 0;
    const timer = setInterval(() => {
      if (!socket.destroyed) socket.write(`X-Trickle-${n++}: ${"a".repeat(8)}\r\n`);
    }, 100);
    return () => clearInterval(timer);
  }

  it("an HTTP/1.1 client trickling headers is cut after headersTimeout (cleartext and TLS)", async () => {
    for (const socket of [await connectTcp(server.port), await connectTls(secure.port, "http/1.1")]) {
      const stop = slowloris(socket);
      try {
        await closed(socket);
      } finally {
        stop();
      }
    }
    await expectHealthy(server);
    await expectHealthy(secure);
  });

  it("an HTTP/1.1 body trickling past requestTimeout is cut", async () => {
    const socket = await connectTcp(server.port);
    socket.on("error", () => undefined);
    socket.write(`POST ${LIST_POOLS} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`);
    const timer = setInterval(() => !socket.destroyed && socket.write(" "), 100);
    try {
      await closed(socket);
    } finally {
      clearInterval(timer);
    }
  });

  it("half an HTTP/2 preface, a preface without SETTINGS, two bytes, or nothing at all is cut", async () => {
    for (const bytes of ["PRI * HTTP/2.0\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "PR", ""]) {
      const socket = await connectTcp(server.port);
      socket.on("error", () => undefined);
      socket.write(bytes);
      await closed(socket);
    }
    for (const bytes of ["PRI * HTTP/2.0\r\n", ""]) {
      const socket = await connectTls(secure.port, bytes === "" ? "http/1.1" : "h2");
      socket.on("error", () => undefined);
      socket.write(bytes);
      await closed(socket);
    }
    await expectHealthy(server);
  });

  it("a connection reset before it says anything does not disturb the server", async () => {
    for (const bytes of ["", "P", "GET / HTTP/1.1\r\n"]) {
      const socket = await connectTcp(server.port);
      socket.write(bytes);
      socket.resetAndDestroy();
    }
    await expectHealthy(server);
  });
});

describe("HTTP/2 streams and idle connections", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ limits: { maxConcurrentStreams: 7, idleTimeoutMs: 1_000 } });
  });
  afterAll(() => server.stop());

  it("tells clients how many streams a connection may have open", async () => {
    const session = http2.connect(server.url);
    try {
      const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
      expect(settings.maxConcurrentStreams).toBe(7);
    } finally {
      session.close();
    }
  });

  it("closes a connection with no call open for idleTimeout (GOAWAY), after its calls are done", async () => {
    const session = await h2Connect(server.url);
    const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
    const answer = await h2Request(session, { path: LIST_POOLS, headers: GRPC, body: envelope(new Uint8Array(0)) });
    expect(grpcStatus(answer)).toBe(OK);
    await Promise.race([goaway, new Promise((_, reject) => setTimeout(() => reject(new Error("no GOAWAY")), DEADLINE_MS))]);
    await new Promise<void>((resolve) => (session.closed ? resolve() : session.once("close", () => resolve())));
    // Clients reconnect: a fresh client still works.
    const pools = createClient(ClusterPoolService, createGrpcTransport({ baseUrl: server.url }));
    expect((await pools.listClusterPools({})).clusterPools).toHaveLength(1);
  });
});

describe("connections (server.limits.maxConnections)", () => {
  let server: TestServer;
  beforeAll(async () => {
    // Silent connections would otherwise be closed after headersTimeout, cap or not.
    server = await startTestServer({ limits: { maxConnections: 3, headersTimeoutMs: 60_000 } });
  });
  afterAll(() => server.stop());

  it("closes connections beyond the cap as they arrive, and accepts again once one closes", async () => {
    const held = [await connectTcp(server.port), await connectTcp(server.port), await connectTcp(server.port)];
    for (const socket of held) socket.on("error", () => undefined);
    const refused = await connectTcp(server.port);
    refused.on("error", () => undefined);
    await closed(refused);
    held[0]!.destroy();
    await waitFor("a free connection slot", async () => (await h1Request(server.url, { method: "GET", path: "/healthz" })).status === 200, DEADLINE_MS);
    for (const socket of held) socket.destroy();
  });
});

describe("deadlines (server.limits.maxDeadline)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it("a deadline too far out for a timer is shortened, not turned into 1 ms", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const session = await h2Connect(server.url);
      try {
        const grpc = await h2Request(session, { path: LIST_POOLS, headers: { ...GRPC, "grpc-timeout": "99999999S" }, body: envelope(new Uint8Array(0)) });
        expect(grpcStatus(grpc)).toBe(OK);
        const hours = await h2Request(session, { path: LIST_POOLS, headers: { ...GRPC, "grpc-timeout": "99999999H" }, body: envelope(new Uint8Array(0)) });
        expect(grpcStatus(hours)).toBe(OK);
      } finally {
        session.close();
      }
      const connect = await h1Request(server.url, {
        path: LIST_POOLS,
        headers: { "content-type": "application/json", "connect-timeout-ms": "9999999999" },
        body: new TextEncoder().encode("{}"),
      });
      expect(connectCode(connect)).toBe("ok");
      // Node says so when a timer overflows; let any pending warning be emitted first.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings.filter((warning) => warning.name === "TimeoutOverflowWarning")).toEqual([]);
  });
});

describe("unauthenticated bodies held across many HTTP/2 streams", () => {
  let server: TestServer;
  const admin = newToken("admin");
  beforeAll(async () => {
    const tokens = join(mkdtempSync(join(tmpdir(), "clusterplane-edge-tokens-")), "tokens");
    writeTokensFile(tokens, [admin]);
    // 64 KiB requests: at most 64 of them (4 MiB) may be arriving at once.
    server = await startTestServer({ auth: { tokensFile: tokens }, limits: { maxRequestBytes: 64 * 1024, headersTimeoutMs: 1_000, requestTimeoutMs: 1_000 } });
  });
  afterAll(() => server.stop());

  /** Opens a gRPC call without a token, sends `bytes` of a larger message, and never ends it. */
  function unfinished(session: http2.ClientHttp2Session, bytes: number) {
    const stream = session.request({ ":method": "POST", ":path": LIST_POOLS, ...GRPC });
    const outcome = new Promise<{ status?: number; reset?: number }>((resolve) => {
      let status: number | undefined;
      stream.on("response", (fields) => fields["grpc-status"] !== undefined && (status = Number(fields["grpc-status"])));
      stream.on("trailers", (fields) => (status = Number(fields["grpc-status"])));
      stream.on("error", () => undefined);
      stream.on("close", () => resolve({ status, reset: stream.rstCode }));
    });
    stream.resume();
    const header = Buffer.alloc(5);
    header.writeUInt32BE(60 * 1024, 1);
    stream.write(Buffer.concat([header, Buffer.alloc(bytes)]));
    return outcome;
  }

  it("a request body that does not arrive whole within requestTimeout is cut, as on HTTP/1.1", async () => {
    const session = await h2Connect(server.url);
    try {
      const started = Date.now();
      const outcome = await unfinished(session, 1024);
      expect(outcome.reset).toBe(http2.constants.NGHTTP2_CANCEL);
      expect(Date.now() - started).toBeLessThan(DEADLINE_MS);
      await expectHealthy(server);
    } finally {
      session.close();
    }
  });

  it("bodies arriving at once are bounded all together: beyond the budget a call is RESOURCE_EXHAUSTED", async () => {
    const sessions = await Promise.all([1, 2].map(() => h2Connect(server.url)));
    try {
      // 2 x 50 streams x 50 KiB = 5 000 KiB > 64 x 64 KiB: some must be refused at once.
      const outcomes = await Promise.all(sessions.flatMap((session) => Array.from({ length: 50 }, () => unfinished(session, 50 * 1024))));
      expect(outcomes.filter((o) => o.status === Code.ResourceExhausted).length).toBeGreaterThan(0);
      await expectHealthy(server);
    } finally {
      for (const session of sessions) session.close();
    }
  });
});
