import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import http2 from "node:http2";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import type { DescMethod } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { fuzzCase, type FuzzCase } from "./fuzz-cases.js";
import { methodsOf, servicesInGen } from "./gen-services.js";
import { h1Request } from "./raw-http.js";

/**
 * Seeded fuzzing of the one port: every transport, every RPC in gen/, with mutated messages,
 * headers, framing and compression. Reproduce a failure with FUZZ_SEED (and FUZZ_COUNT).
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_126);
const COUNT = Number(process.env.FUZZ_COUNT ?? 3_000);
const IN_FLIGHT = 16;
/** A request that has not ended by then is cancelled by the client and counted, not failed. */
const CLIENT_PATIENCE_MS = 5_000;
/** The one INTERNAL the gRPC spec prescribes: a compressed message without grpc-encoding. */
const SPEC_INTERNAL = "received compressed envelope, but do not know how to decompress";

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: Buffer;
  /** How the exchange ended without an answer: reset, connection error, client refused, patience. */
  outcome?: string;
}

let server: TestServer;
let methods: DescMethod[];
const sessions: http2.ClientHttp2Session[] = [];
const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });

beforeAll(async () => {
  server = await startTestServer();
  methods = methodsOf(await servicesInGen());
});
afterAll(async () => {
  for (const session of sessions) session.destroy();
  agent.destroy();
  await server.stop();
});

function session(index: number): http2.ClientHttp2Session {
  const slot = index % 4;
  const current = sessions[slot];
  if (current && !current.closed && !current.destroyed) return current;
  const fresh = http2.connect(server.url);
  fresh.on("error", () => undefined);
  sessions[slot] = fresh;
  return fresh;
}

function send(fuzz: FuzzCase): Promise<Answer> {
  return fuzz.transport.endsWith("h2") ? sendH2(fuzz) : sendH1(fuzz);
}

function sendH2(fuzz: FuzzCase): Promise<Answer> {
  return new Promise((resolve) => {
    const answer: Answer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session(fuzz.index).request({ ":method": fuzz.httpMethod, ":path": fuzz.path, ...fuzz.headers });
    } catch (error) {
      return resolve({ ...answer, outcome: `client refused: ${(error as Error).message}` });
    }
    const patience = setTimeout(() => {
      answer.outcome = "no end (client gave up)";
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, CLIENT_PATIENCE_MS);
    stream.on("response", (headers) => {
      answer.status = Number(headers[":status"]);
      answer.headers = headers;
    });
    stream.on("trailers", (trailers) => (answer.trailers = trailers));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", (error) => (answer.outcome ??= `stream error: ${error.message}`));
    stream.on("close", () => {
      clearTimeout(patience);
      answer.body = Buffer.concat(chunks);
      resolve(answer);
    });
    stream.end(fuzz.body ? Buffer.from(fuzz.body) : undefined);
  });
}

function sendH1(fuzz: FuzzCase): Promise<Answer> {
  return new Promise((resolve) => {
    const target = new URL(server.url);
    let request: http.ClientRequest;
    try {
      request = http.request({ host: target.hostname, port: target.port, method: fuzz.httpMethod, path: fuzz.path, headers: fuzz.headers, agent });
    } catch (error) {
      return resolve({ status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0), outcome: `client refused: ${(error as Error).message}` });
    }
    request.setTimeout(CLIENT_PATIENCE_MS, () => request.destroy(new Error("no end (client gave up)")));
    request.on("response", (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      const done = (outcome?: string) =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, trailers: response.trailers, body: Buffer.concat(chunks), outcome });
      response.on("end", () => done());
      response.on("error", (error) => done(`response error: ${error.message}`));
    });
    request.on("error", (error) => resolve({ status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0), outcome: `request error: ${error.message}` }));
    request.end(fuzz.body ? Buffer.from(fuzz.body) : undefined);
  });
}

/** The status an answer carries, in its protocol's terms: a gRPC code, a Connect code, or the HTTP status. */
function statusOf(answer: Answer): { code: string; message: string } {
  const type = String(answer.headers["content-type"] ?? "");
  if (type.startsWith("application/grpc")) return grpcStatusOf(answer, type.startsWith("application/grpc-web"));
  if (type.startsWith("application/connect+")) return endStreamOf(answer.body, answer.headers["connect-content-encoding"]);
  if (type.startsWith("application/json") && answer.status !== 200) {
    try {
      const error = JSON.parse(answer.body.toString("utf8")) as { code?: string; message?: string };
      return { code: error.code ?? "?", message: error.message ?? "" };
    } catch {
      return { code: `http ${answer.status}`, message: "" };
    }
  }
  return { code: `http ${answer.status}`, message: "" };
}

function grpcStatusOf(answer: Answer, web: boolean): { code: string; message: string } {
  let fields: Record<string, unknown> = { ...answer.headers, ...answer.trailers };
  if (web && fields["grpc-status"] === undefined) fields = { ...fields, ...webTrailer(answer.body, answer.headers["grpc-encoding"]) };
  const code = fields["grpc-status"];
  const message = String(fields["grpc-message"] ?? "");
  let decoded = message;
  try {
    decoded = decodeURIComponent(message);
  } catch {
    // left encoded
  }
  return { code: code === undefined ? `http ${answer.status}` : `grpc ${String(code)}`, message: decoded };
}

/** The envelopes of a body, compressed ones inflated by the answer's encoding. */
function* envelopes(body: Buffer, encoding: unknown): Generator<{ flags: number; data: Buffer }> {
  for (let offset = 0; offset + 5 <= body.length; ) {
    const length = body.readUInt32BE(offset + 1);
    const flags = body[offset]!;
    const data = body.subarray(offset + 5, offset + 5 + length);
    yield { flags, data: flags & 0x01 ? inflate(data, String(encoding)) : data };
    offset += 5 + length;
  }
}

function inflate(data: Buffer, encoding: string): Buffer {
  try {
    return encoding === "br" ? brotliDecompressSync(data) : gunzipSync(data);
  } catch {
    return data;
  }
}

function webTrailer(body: Buffer, encoding: unknown): Record<string, string> {
  for (const { flags, data } of envelopes(body, encoding)) {
    if (!(flags & 0x80)) continue;
    return Object.fromEntries(
      data
        .toString("latin1")
        .split("\r\n")
        .filter((line) => line.includes(":"))
        .map((line) => [line.slice(0, line.indexOf(":")).trim().toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]),
    );
  }
  return {};
}

function endStreamOf(body: Buffer, encoding: unknown): { code: string; message: string } {
  for (const { flags, data } of envelopes(body, encoding)) {
    if (!(flags & 0x02)) continue;
    try {
      const end = JSON.parse(data.toString("utf8")) as { error?: { code?: string; message?: string } };
      return end.error ? { code: end.error.code ?? "?", message: end.error.message ?? "" } : { code: "ok", message: "" };
    } catch {
      return { code: "unparseable end of stream", message: "" };
    }
  }
  return { code: "no end of stream", message: "" };
}

const SERVER_FAULTS = new Set(["grpc 13", "grpc 2", "internal", "unknown", "http 500"]);

/** Why the answer is wrong, or undefined. */
function problemWith(_fuzz: FuzzCase, answer: Answer): string | undefined {
  if (answer.status >= 500 && answer.status !== 501 && answer.status !== 503 && answer.status !== 505) return `HTTP ${answer.status}`;
  const { code, message } = statusOf(answer);
  if (!SERVER_FAULTS.has(code) || message === SPEC_INTERNAL) return undefined;
  return `${code}: ${message.slice(0, 200)}`;
}

function describeCase(fuzz: FuzzCase, problem: string): string {
  const headers = Object.entries(fuzz.headers)
    .map(([name, value]) => `${name}=${value.slice(0, 40)}`)
    .join(" ");
  return `#${fuzz.index} ${fuzz.transport} ${fuzz.path.slice(0, 120)} [${fuzz.mutations.join(", ")}] {${headers}} → ${problem}`;
}

async function inPool(count: number, width: number, run: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await run(next++);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

describe(`fuzzing the port (seed ${SEED}, ${COUNT} requests)`, () => {
  it("never answers INTERNAL, UNKNOWN or HTTP 500 to bad input, and stays healthy", { timeout: 120_000 }, async () => {
    const failures: string[] = [];
    const outcomes = new Map<string, number>();
    const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    await inPool(COUNT, IN_FLIGHT, async (index) => {
      const fuzz = fuzzCase(SEED, index, methods);
      const answer = await send(fuzz);
      count(`${fuzz.transport} ${answer.outcome ? answer.outcome.replace(/:.*/, "") : statusOf(answer).code}`);
      // A Watch that answered and keeps streaming is alive; one that never answered has stalled.
      const stalled = answer.outcome?.startsWith("no end") && answer.status === 0;
      const problem = stalled ? "no answer within 5 s and no reset: the call stalled" : problemWith(fuzz, answer);
      if (problem) failures.push(describeCase(fuzz, problem));
    });
    expect(failures.slice(0, 20), `seed ${SEED}: ${failures.length} bad answers; outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`).toEqual([]);
    // Every transport was exercised, and most requests were answered rather than reset.
    for (const transport of ["grpc-h2", "grpc-web-h1", "grpc-web-h2", "connect-h1", "connect-h2", "connect-stream-h2", "connect-get-h1"]) {
      expect([...outcomes.keys()].some((key) => key.startsWith(`${transport} `)), transport).toBe(true);
    }

    expect((await h1Request(server.url, { method: "GET", path: "/healthz" })).status).toBe(200);
    const pools = createClient(ClusterPoolService, createGrpcTransport({ baseUrl: server.url }));
    expect((await pools.getClusterPool({ name: "default" })).clusterPool?.name).toBe("default");
  });
});
