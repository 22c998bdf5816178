import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape } from "@bufbuild/protobuf";
import pino from "pino";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import {
  ClusterPoolService,
  CreateClusterPoolRequestSchema,
  GetClusterPoolRequestSchema,
  ListClusterPoolsRequestSchema,
  ListClusterPoolsResponseSchema,
} from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { newToken, writeTokensFile } from "../support/auth.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import {
  Code,
  connectCaller,
  decodeStatusDetails,
  envelopes,
  grpcJsCaller,
  gunzip,
  OK,
  pythonDescriptorSet,
  rawGrpc,
  statusFields,
  UnknownMethodService,
  UnknownService,
  type CallOutcome,
  type GrpcCaller,
  type RawFrames,
} from "../support/grpc-conformance.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { envelope, h2Connect } from "./raw-http.js";

/**
 * Unary gRPC over HTTP/2 as PROTOCOL-HTTP2.md specifies it, seen by three independent clients
 * (@grpc/grpc-js, connect-node's gRPC transport, Python grpcio on gRPC's C core) and by raw
 * node:http2 for what no client will send. Every case runs against both ways the server can
 * answer gRPC — the lean path (server.leanGrpc: true) and connect-node alone (false) — and
 * expects the same answer from both: this file is the lean path's contract.
 */

/**
 * An error without messages may come in either form the spec allows: trailers-only, or headers
 * then trailers. The lean path answers every error trailers-only, and must keep doing so;
 * connect-node sends headers, then trailers.
 */
const PATHS = [
  { path: "the lean gRPC path (leanGrpc: true)", leanGrpc: true, errorsTrailersOnly: true },
  { path: "connect-node alone (leanGrpc: false)", leanGrpc: false, errorsTrailersOnly: false },
];

const MAX_REQUEST_BYTES = 64 * 1024;
/** Pools in this organization make a ListClusterPools answer of several KiB. */
const BULK_ORG = "bulk";
const BULK_POOLS = 24;
/** A name the server refuses, quoting it: non-ASCII, a 4-byte character, and '%' that looks like an escape. */
const BAD_NAME = "é%41 ✓ 100% 😀";
const PYTHON = "/usr/bin/python3";

const pools = ClusterPoolService.method;
const run = promisify(execFile);

function message<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): Buffer {
  return envelope(toBinary(schema, create(schema, init)));
}

const LIST_PATH = "/clusterplane.v1.ClusterPoolService/ListClusterPools";
const CREATE_PATH = "/clusterplane.v1.ClusterPoolService/CreateClusterPool";
const LIST_ALL = message(ListClusterPoolsRequestSchema, {});
const LIST_BULK = message(ListClusterPoolsRequestSchema, { org: BULK_ORG });

/** grpc-status of a raw answer, from the HEADERS frame that ended it. */
function statusOf(answer: RawFrames): number | undefined {
  const value = statusFields(answer)["grpc-status"];
  return value === undefined ? undefined : Number(value);
}

/**
 * What the server meant by grpc-message: percent-decoded as the spec says (every %XX, UTF-8).
 * The form on the wire must be the spec's Percent-Encoded (printable ASCII, '%' only as an escape).
 */
function decodedMessage(answer: RawFrames): string {
  const wire = String(statusFields(answer)["grpc-message"] ?? "");
  expect(wire).toMatch(/^(?:[\x20-\x24\x26-\x7e]|%[0-9A-Fa-f]{2})*$/);
  return decodeURIComponent(wire);
}

/**
 * An error answer without messages, in one of the two forms the spec allows, with the status
 * in the frame that ends the stream; trailers-only where required.
 */
function expectErrorAnswer(answer: RawFrames, code: number, trailersOnly: boolean): void {
  expect([answer.timedOut, answer.rstCode]).toEqual([undefined, 0]);
  expect(answer.headers[":status"]).toBe(200);
  expect(String(answer.headers["content-type"])).toMatch(/^application\/grpc/);
  expect(answer.data.length).toBe(0);
  if (answer.headersEndStream) {
    expect(answer.trailers).toBeUndefined();
  } else {
    expect(answer.headers["grpc-status"]).toBeUndefined();
    expect(answer.trailers).toBeDefined();
  }
  if (trailersOnly) expect(answer.headersEndStream).toBe(true);
  expect(statusOf(answer)).toBe(code);
}

/** A successful unary answer: headers, exactly one message, grpc-status 0 in the trailers. */
function expectOneMessage(answer: RawFrames): { compressed: boolean; payload: Buffer } {
  expect([answer.timedOut, answer.rstCode, answer.headers[":status"], answer.headersEndStream]).toEqual([undefined, 0, 200, false]);
  expect(answer.trailers?.["grpc-status"]).toBe("0");
  const messages = envelopes(answer.data);
  expect(messages).toHaveLength(1);
  return messages[0]!;
}

/**
 * UNIMPLEMENTED as a client sees it: grpc-status 12, or HTTP 404 without a gRPC status, which
 * gRPC's HTTP-to-status mapping (http-grpc-status-mapping.md) makes UNIMPLEMENTED in every client
 * (connect-node answers 404). Where errors are trailers-only, it must be a trailers-only 12.
 */
function expectUnimplemented(answer: RawFrames, trailersOnly: boolean): void {
  if (trailersOnly) return expectErrorAnswer(answer, Code.Unimplemented, true);
  expect([answer.timedOut, answer.rstCode]).toEqual([undefined, 0]);
  const status = statusOf(answer);
  if (answer.headers[":status"] === 404 && status === undefined) return;
  expectErrorAnswer(answer, Code.Unimplemented, false);
}

/** Keeps this thread busy for `ms`: no timer, no network read in between. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

function pythonGrpcAvailable(): boolean {
  return spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { stdio: "ignore" }).status === 0;
}
const pythonAvailable = pythonGrpcAvailable();
if (!pythonAvailable && process.env.CI) {
  throw new Error("CI must install python3-grpcio and python3-protobuf (see .ci/run)");
}
if (!pythonAvailable) console.warn("grpc-conformance: SKIPPING the Python grpcio client (no python3-grpcio / python3-protobuf here)");

describe.each(PATHS)("gRPC over HTTP/2: $path", ({ leanGrpc, errorsTrailersOnly: trailersOnly }) => {
  let server: TestServer;
  let session: http2.ClientHttp2Session;
  /** Log lines at warn and above: malformed requests are the caller's fault, never the server's. */
  const problems: LogLine[] = [];
  const callers: Record<string, GrpcCaller> = {};

  beforeAll(async () => {
    const logger = pino({ level: "warn" }, { write: (line: string) => void problems.push(JSON.parse(line) as LogLine) });
    // The Python client holds the database's write lock for a moment (its deadline case): writes wait for it.
    server = await startTestServer({ leanGrpc, limits: { maxRequestBytes: MAX_REQUEST_BYTES }, lockTimeoutMs: 20_000 }, { logger });
    session = await h2Connect(server.url);
    callers["@grpc/grpc-js"] = grpcJsCaller(`127.0.0.1:${server.port}`);
    callers["connect-node gRPC"] = connectCaller(server.url);
    for (let i = 0; i < BULK_POOLS; i++) {
      const created = await rawGrpc(session, {
        path: CREATE_PATH,
        body: message(CreateClusterPoolRequestSchema, { clusterPool: seedProdPool({ org: BULK_ORG, name: `bulk-pool-${i}` }) }),
      });
      expect(statusOf(created)).toBe(OK);
    }
  });
  afterAll(async () => {
    for (const caller of Object.values(callers)) caller.close();
    session?.close();
    await server?.stop();
  });

  describe.each([
    { client: "@grpc/grpc-js", org: "conformance-grpc-js" },
    { client: "connect-node gRPC", org: "conformance-connect" },
  ])("over $client", ({ client, org }) => {
    const call = (...args: Parameters<GrpcCaller["call"]>) => callers[client]!.call(...args);

    it("CreateClusterPool, then GetClusterPool, with identity and with gzip requests", async () => {
      for (const gzip of [false, true]) {
        const name = gzip ? "gzip-pool" : "identity-pool";
        const created = await call(pools.createClusterPool, { clusterPool: seedProdPool({ org, name }) }, { gzip });
        expect([created.code, created.message]).toEqual([OK, ""]);
        expect(created.response).toMatchObject({ clusterPool: { org, name, config: { imageRegistry: { locator: "123456789012.dkr.ecr.us-east-1.amazonaws.com/union" } } } });
        const got = await call(pools.getClusterPool, { org, name }, { gzip });
        expect([got.code, (got.response?.clusterPool as { name?: string } | undefined)?.name]).toEqual([OK, name]);
      }
    });

    it("SelectCluster routes by the label a project-domain is assigned", async () => {
      const clusters = ClusterService.method;
      const labels = ExecutionClusterLabelService.method;
      const setup: [DescMethod, object][] = [
        [clusters.createCluster, { cluster: { ...seedCluster("dataplane_1"), org } }],
        [labels.createClusterLabel, { label: { org, name: "label1", clusters: [{ cluster: "dataplane_1", weight: 1 }] } }],
        [ProjectService.method.createProject, { project: { org, id: "project1" } }],
        [labels.updateExecutionClusterLabel, { executionClusterLabel: { org, project: "project1", domain: "development", value: "label1" } }],
      ];
      for (const [method, request] of setup) expect([method.name, (await call(method, request)).code]).toEqual([method.name, OK]);
      for (const gzip of [false, true]) {
        const selected = await call(labels.selectCluster, { org, project: "project1", domain: "development", workflow: "wf", executionId: "exec-1" }, { gzip });
        expect(selected.code).toBe(OK);
        expect(selected.response).toMatchObject({ cluster: "dataplane_1", label: "label1", endpoint: "https://dataplane-1.example.com:443" });
      }
    });

    it("a large answer (ListClusterPools of many pools) arrives whole", async () => {
      const listed = await call(pools.listClusterPools, { org: BULK_ORG });
      expect(listed.code).toBe(OK);
      const names = (listed.response?.clusterPools as { name: string }[]).map((pool) => pool.name);
      expect(names).toEqual(expect.arrayContaining(Array.from({ length: BULK_POOLS }, (_, i) => `bulk-pool-${i}`)));
    });

    it("custom ASCII and -bin metadata are accepted; x-request-id is echoed, or generated when not sent", async () => {
      const metadata = {
        "x-request-id": `${client}-request-1`,
        "x-conformance-note": "plain ASCII, with spaces: and punctuation!",
        "x-conformance-trace-bin": new Uint8Array([0, 1, 2, 0xfe, 0xff]),
      };
      const echoed = await call(pools.listClusterPools, {}, { metadata });
      expect(echoed.code).toBe(OK);
      expect(echoed.headers["x-request-id"]).toBe(`${client}-request-1`);
      const generated = await call(pools.listClusterPools, {});
      expect(generated.code).toBe(OK);
      expect(generated.headers["x-request-id"]).toMatch(/^[0-9a-f-]{16,}$/);
    });

    it("a short deadline the client enforces is DEADLINE_EXCEEDED; one beyond server.limits.maxDeadline works", async () => {
      // The client starts its deadline timer as the call starts; the answer cannot come back before
      // this process reads from the network again, and by then the timer is overdue.
      const pending = call(pools.listClusterPools, {}, { timeoutMs: 20 });
      blockEventLoop(200);
      expect((await pending).code).toBe(Code.DeadlineExceeded);
      // A day: connect-node's client sends milliseconds, and grpc-timeout has at most 8 digits.
      const far = await call(pools.listClusterPools, {}, { timeoutMs: 86_400_000 });
      expect(far.code).toBe(OK);
    });

    it("INVALID_ARGUMENT: the exact message (percent-encoding round-trips), BadRequest naming the field, x-request-id", async () => {
      const refused = await call(
        pools.createClusterPool,
        { clusterPool: seedProdPool({ org, name: BAD_NAME }) },
        { metadata: { "x-request-id": `${client}-bad-name` } },
      );
      expect(refused.code).toBe(Code.InvalidArgument);
      expect(refused.badRequestFields).toEqual(["cluster_pool.name"]);
      expect(refused.trailers["x-request-id"]).toBe(`${client}-bad-name`);
      const expected = `cluster_pool.name: ${JSON.stringify(BAD_NAME)} must contain only lowercase letters, digits and '-', and start and end with a letter or digit`;
      // Exact for grpc-js too, whose decodeURI leaves %3A %2C … escaped: the server escapes only
      // what the spec says to (%, and bytes outside printable ASCII).
      expect(refused.message).toBe(expected);
    });

    it("a request over server.limits.maxRequestSize is RESOURCE_EXHAUSTED", async () => {
      const large = seedProdPool({ org, name: "large-pool", memberClusters: Array.from({ length: 80 }, () => "x".repeat(1024)) });
      for (const gzip of [false, true]) {
        // Compressed, the request is far below the limit; the message it inflates to is not.
        const refused = await call(pools.createClusterPool, { clusterPool: large }, { gzip });
        expect([gzip, refused.code]).toEqual([gzip, Code.ResourceExhausted]);
      }
      expect((await call(pools.getClusterPool, { org, name: "large-pool" })).code).toBe(Code.NotFound);
    });

    it("an unknown method of a known service, and an unknown service, are UNIMPLEMENTED", async () => {
      const [unknownMethod, unknownService] = [UnknownMethodService.methods[0]!, UnknownService.methods[0]!];
      expect((await call(unknownMethod, {})).code).toBe(Code.Unimplemented);
      expect((await call(unknownService, {})).code).toBe(Code.Unimplemented);
      // The connection is still good.
      expect((await call(pools.listClusterPools, {})).code).toBe(OK);
    });
  });

  describe("raw HTTP/2", () => {
    it("compresses a large answer only for a client that accepts gzip: grpc-encoding and the compressed flag agree", async () => {
      const accepts = await rawGrpc(session, { path: LIST_PATH, headers: { "grpc-accept-encoding": "gzip" }, body: LIST_BULK });
      const gzipped = expectOneMessage(accepts);
      expect([accepts.headers["grpc-encoding"], gzipped.compressed]).toEqual(["gzip", true]);
      const inflated = gunzip(gzipped.payload);
      expect(inflated.length).toBeGreaterThan(2048);
      expect(fromBinary(ListClusterPoolsResponseSchema, inflated).clusterPools.length).toBeGreaterThanOrEqual(BULK_POOLS);

      for (const headers of [{ "grpc-accept-encoding": "identity" }, {}] as Record<string, string>[]) {
        const plain = await rawGrpc(session, { path: LIST_PATH, headers, body: LIST_BULK });
        const identity = expectOneMessage(plain);
        expect([JSON.stringify(headers), plain.headers["grpc-encoding"] ?? "identity", identity.compressed]).toEqual([JSON.stringify(headers), "identity", false]);
        expect(fromBinary(ListClusterPoolsResponseSchema, identity.payload).clusterPools.length).toBeGreaterThanOrEqual(BULK_POOLS);
      }
    });

    it("a gzip request is decompressed (grpc-encoding: gzip, compressed flag)", async () => {
      const request = toBinary(GetClusterPoolRequestSchema, create(GetClusterPoolRequestSchema, { org: BULK_ORG, name: "bulk-pool-0" }));
      const answer = await rawGrpc(session, {
        path: "/clusterplane.v1.ClusterPoolService/GetClusterPool",
        headers: { "grpc-encoding": "gzip", "grpc-accept-encoding": "identity" },
        body: envelope(gzipSync(request), 1),
      });
      const reply = expectOneMessage(answer);
      expect(reply.compressed).toBe(false);
      // An uncompressed message is fine in a call whose grpc-encoding is gzip (flag 0).
      const mixed = await rawGrpc(session, { path: LIST_PATH, headers: { "grpc-encoding": "gzip" }, body: LIST_ALL });
      expect(statusOf(mixed)).toBe(OK);
    });

    it("an unsupported grpc-encoding is UNIMPLEMENTED, with grpc-accept-encoding listing gzip", async () => {
      for (const body of [LIST_ALL, envelope(Buffer.from("not snappy"), 1)]) {
        const answer = await rawGrpc(session, { path: LIST_PATH, headers: { "grpc-encoding": "snappy" }, body });
        expectErrorAnswer(answer, Code.Unimplemented, trailersOnly);
        const accepted = String(answer.headers["grpc-accept-encoding"] ?? answer.trailers?.["grpc-accept-encoding"] ?? "");
        expect(accepted.split(",").map((name) => name.trim())).toContain("gzip");
      }
    });

    it("a compressed flag without grpc-encoding (or with identity) is INTERNAL, as the spec says", async () => {
      for (const headers of [{}, { "grpc-encoding": "identity" }] as Record<string, string>[]) {
        const answer = await rawGrpc(session, { path: LIST_PATH, headers, body: envelope(gzipSync(Buffer.alloc(0)), 1) });
        expectErrorAnswer(answer, Code.Internal, trailersOnly);
      }
    });

    it("a grpc-timeout too large for a timer is clamped to server.limits.maxDeadline, not fired at once", async () => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on("warning", onWarning);
      try {
        for (const timeout of ["99999999S", "99999999H", "99999999m", "1H"]) {
          const answer = await rawGrpc(session, { path: LIST_PATH, headers: { "grpc-timeout": timeout }, body: LIST_ALL });
          expect([timeout, statusOf(answer)]).toEqual([timeout, OK]);
        }
        await new Promise((resolve) => setImmediate(resolve));
      } finally {
        process.off("warning", onWarning);
      }
      expect(warnings.filter((warning) => warning.name === "TimeoutOverflowWarning")).toEqual([]);
    });

    it("a malformed grpc-timeout is INVALID_ARGUMENT", async () => {
      // TimeoutValue is 1 to 8 digits, TimeoutUnit one of H M S m u n.
      for (const timeout of ["abc", "1.5S", "-1S", "123456789S", "5X", "S", "10", ""]) {
        const answer = await rawGrpc(session, { path: LIST_PATH, headers: { "grpc-timeout": timeout }, body: LIST_ALL });
        expect([timeout, statusOf(answer)]).toEqual([timeout, Code.InvalidArgument]);
        expectErrorAnswer(answer, Code.InvalidArgument, trailersOnly);
      }
    });

    // connect-node's deadline does not cover reading the request: such a call waits for requestTimeout.
    it.skipIf(!leanGrpc)("a call whose request does not arrive before its grpc-timeout is DEADLINE_EXCEEDED", async () => {
      const started = performance.now();
      const answer = await rawGrpc(session, { path: LIST_PATH, headers: { "grpc-timeout": "200m" }, body: LIST_ALL.subarray(0, 2), keepOpen: true });
      expectErrorAnswer(answer, Code.DeadlineExceeded, trailersOnly);
      expect(performance.now() - started).toBeGreaterThanOrEqual(150);
    });

    // connect-node serves such a call as if it had time.
    it.skipIf(!leanGrpc)("a call whose deadline had passed when it arrived (grpc-timeout 0) is DEADLINE_EXCEEDED", async () => {
      for (const timeout of ["0n", "0S"]) {
        const answer = await rawGrpc(session, { path: LIST_PATH, headers: { "grpc-timeout": timeout }, body: LIST_ALL });
        expectErrorAnswer(answer, Code.DeadlineExceeded, trailersOnly);
      }
    });

    it("a call reset by the client (RST_STREAM CANCEL) mid-request leaves the connection and the server serving", async () => {
      const before = problems.length;
      const full = message(CreateClusterPoolRequestSchema, { clusterPool: seedProdPool({ name: "cancelled-pool" }) });
      for (const sent of [0, 3, 20]) {
        const stream = session.request({ ":method": "POST", ":path": CREATE_PATH, "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => undefined);
        const closed = new Promise((resolve) => stream.on("close", resolve));
        if (sent > 0) await new Promise<void>((resolve) => stream.write(full.subarray(0, sent), () => resolve()));
        stream.close(http2.constants.NGHTTP2_CANCEL);
        await closed;
        expect([sent, stream.rstCode]).toEqual([sent, http2.constants.NGHTTP2_CANCEL]);
      }
      // The same connection, and a new one, serve the next call; the cancelled pool was never created.
      expect(statusOf(await rawGrpc(session, { path: LIST_PATH, body: LIST_ALL }))).toBe(OK);
      const fresh = await h2Connect(server.url);
      try {
        const get = await rawGrpc(fresh, { path: "/clusterplane.v1.ClusterPoolService/GetClusterPool", body: message(GetClusterPoolRequestSchema, { name: "cancelled-pool" }) });
        expect(statusOf(get)).toBe(Code.NotFound);
      } finally {
        fresh.close();
      }
      expect(problems.slice(before)).toEqual([]);
    });

    it("metadata: custom ASCII and -bin are accepted; x-request-id in the headers of a success, with the status of an error", async () => {
      const ok = await rawGrpc(session, {
        path: LIST_PATH,
        headers: { "x-request-id": "raw-request-1", "x-conformance-note": "hello, world", "x-conformance-trace-bin": Buffer.from([0, 255, 7]).toString("base64") },
        body: LIST_ALL,
      });
      expectOneMessage(ok);
      expect(ok.headers["x-request-id"]).toBe("raw-request-1");
      // -bin values may be sent unpadded (PROTOCOL-HTTP2.md: implementations must accept both).
      const unpadded = await rawGrpc(session, { path: LIST_PATH, headers: { "x-conformance-trace-bin": "AP8H" + "AQ" }, body: LIST_ALL });
      expect(statusOf(unpadded)).toBe(OK);
      expect(String(unpadded.headers["x-request-id"])).toMatch(/^[0-9a-f-]{16,}$/);

      const refused = await rawGrpc(session, {
        path: CREATE_PATH,
        headers: { "x-request-id": "raw-bad-name" },
        body: message(CreateClusterPoolRequestSchema, { clusterPool: seedProdPool({ name: BAD_NAME }) }),
      });
      expectErrorAnswer(refused, Code.InvalidArgument, trailersOnly);
      expect(statusFields(refused)["x-request-id"]).toBe("raw-bad-name");
    });

    it("INVALID_ARGUMENT carries google.rpc.Status in grpc-status-details-bin, agreeing with grpc-status and grpc-message", async () => {
      const refused = await rawGrpc(session, {
        path: CREATE_PATH,
        body: message(CreateClusterPoolRequestSchema, { clusterPool: seedProdPool({ name: BAD_NAME }) }),
      });
      expectErrorAnswer(refused, Code.InvalidArgument, trailersOnly);
      const text = decodedMessage(refused);
      expect(text).toBe(`cluster_pool.name: ${JSON.stringify(BAD_NAME)} must contain only lowercase letters, digits and '-', and start and end with a letter or digit`);
      const details = decodeStatusDetails(String(statusFields(refused)["grpc-status-details-bin"]));
      expect(details).toEqual({
        code: Code.InvalidArgument,
        message: text,
        detailTypes: ["type.googleapis.com/google.rpc.BadRequest"],
        badRequestFields: ["cluster_pool.name"],
      });
    });

    it("a request over server.limits.maxRequestSize is RESOURCE_EXHAUSTED, whether sent or only declared", async () => {
      const sent = await rawGrpc(session, { path: LIST_PATH, body: envelope(Buffer.alloc(MAX_REQUEST_BYTES + 1024)) });
      expectErrorAnswer(sent, Code.ResourceExhausted, trailersOnly);
      // The length prefix alone is beyond the limit: refused before the message is read.
      const declared = await rawGrpc(session, { path: LIST_PATH, body: envelope(Buffer.alloc(16), 0, 64 * 1024 * 1024) });
      expectErrorAnswer(declared, Code.ResourceExhausted, trailersOnly);
      expect(statusOf(await rawGrpc(session, { path: LIST_PATH, body: LIST_ALL }))).toBe(OK);
    });

    it("malformed request bodies are INVALID_ARGUMENT: short of the length prefix, no message, two messages, not protobuf", async () => {
      const cases: [string, Uint8Array][] = [
        ["a length prefix promising more than is sent", envelope(Buffer.alloc(3), 0, 100)],
        ["half a length prefix", LIST_ALL.subarray(0, 3)],
        ["no message at all", new Uint8Array(0)],
        ["two messages in a unary call", Buffer.concat([LIST_ALL, LIST_ALL])],
        ["a message that is not protobuf", envelope(Buffer.from([0xff, 0xff, 0xff]))],
        ["a truncated gzip message", envelope(gzipSync(Buffer.from("x".repeat(200))).subarray(0, 12), 1)],
      ];
      for (const [what, body] of cases) {
        const headers: Record<string, string> = what.includes("gzip") ? { "grpc-encoding": "gzip" } : {};
        const answer = await rawGrpc(session, { path: LIST_PATH, headers, body });
        expect([what, statusOf(answer)]).toEqual([what, Code.InvalidArgument]);
        expectErrorAnswer(answer, Code.InvalidArgument, trailersOnly);
      }
    });

    it("an unknown method of a known service, and an unknown service, are UNIMPLEMENTED", async () => {
      expectUnimplemented(await rawGrpc(session, { path: "/clusterplane.v1.ClusterPoolService/ExplodeClusterPool", body: envelope(new Uint8Array(0)) }), trailersOnly);
      expectUnimplemented(await rawGrpc(session, { path: "/nowhere.v1.NowhereService/Anything", body: envelope(new Uint8Array(0)) }), trailersOnly);
      expect(statusOf(await rawGrpc(session, { path: LIST_PATH, body: LIST_ALL }))).toBe(OK);
    });
  });

  it.skipIf(!pythonAvailable)("Python grpcio (gRPC's C core) sees the same answers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-grpc-conformance-"));
    try {
      writeFileSync(join(dir, "descriptors.binpb"), pythonDescriptorSet());
      const plan = { prefix: "py", badName: BAD_NAME, bulk: BULK_ORG, database: join(server.dir, "clusterplane.db") };
      // Asynchronously: the server answering the client runs in this very process.
      const { stdout } = await run(PYTHON, ["test/e2e/python/grpc_conformance.py", `127.0.0.1:${server.port}`, join(dir, "descriptors.binpb"), JSON.stringify(plan)], {
        timeout: 120_000,
      });
      const seen = JSON.parse(stdout) as Record<string, PythonOutcome>;

      expect(seen.create).toMatchObject({ code: "OK", body: { clusterPool: { name: "py-identity" } }, headers: { "x-request-id": "py-request-1" } });
      expect(seen.create_gzip).toMatchObject({ code: "OK", body: { clusterPool: { name: "py-gzip" } } });
      expect(seen.get_gzip).toMatchObject({ code: "OK", body: { clusterPool: { name: "py-gzip", config: { secretStore: { type: "SECRET_STORE_TYPE_AWS_SECRETS_MANAGER" } } } } });
      expect(String(seen.get_gzip!.headers["x-request-id"])).toMatch(/^[0-9a-f-]{16,}$/);
      const bulk = (seen.list_bulk!.body as { clusterPools: { name: string }[] }).clusterPools.map((pool) => pool.name);
      expect([seen.list_bulk!.code, bulk.length >= BULK_POOLS]).toEqual(["OK", true]);
      // A write held up behind a lock until the client gave up; the server answers it later, to nobody.
      expect(seen.deadline!.code).toBe("DEADLINE_EXCEEDED");
      expect(seen.bad_name).toMatchObject({
        code: "INVALID_ARGUMENT",
        message: `cluster_pool.name: ${JSON.stringify(BAD_NAME)} must contain only lowercase letters, digits and '-', and start and end with a letter or digit`,
        trailers: { "x-request-id": "py-bad" },
        status: { code: Code.InvalidArgument, types: ["type.googleapis.com/google.rpc.BadRequest"], badRequestFields: ["cluster_pool.name"] },
      });
      expect(seen.bad_name!.status!.message).toBe(seen.bad_name!.message);
      expect(seen.too_large!.code).toBe("RESOURCE_EXHAUSTED");
      expect(seen.unknown_method!.code).toBe("UNIMPLEMENTED");
      expect(seen.unknown_service!.code).toBe("UNIMPLEMENTED");
      expect(seen.after!.code).toBe("OK");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("logged no warning or error for the malformed requests above, which are the callers' fault", () => {
    // The spec's INTERNAL for a compressed flag without grpc-encoding included: it is no bug of ours.
    expect(problems).toEqual([]);
  });

  describe("authentication (a tokens file)", () => {
    const admin = newToken("admin", "ops team");
    const viewer = newToken("viewer", "grafana");
    let authServer: TestServer;
    let authSession: http2.ClientHttp2Session;
    let tokensDir: string;
    beforeAll(async () => {
      tokensDir = mkdtempSync(join(tmpdir(), "clusterplane-grpc-conformance-tokens-"));
      writeTokensFile(join(tokensDir, "tokens"), [admin, viewer]);
      authServer = await startTestServer({ leanGrpc, auth: { tokensFile: join(tokensDir, "tokens") } });
      authSession = await h2Connect(authServer.url);
    });
    afterAll(async () => {
      authSession?.close();
      await authServer?.stop();
      rmSync(tokensDir, { recursive: true, force: true });
    });

    const create = { clusterPool: seedProdPool({ name: "auth-pool" }) };
    const PERMISSION_MESSAGE = "grafana (role viewer) may not call clusterplane.v1.ClusterPoolService/CreateClusterPool: it is a write and needs role admin";

    it("no token is UNAUTHENTICATED; a viewer calling a write is PERMISSION_DENIED, in the same words over every client", async () => {
      const outcomes: Record<string, [CallOutcome, CallOutcome, CallOutcome]> = {};
      for (const [name, caller] of [
        ["@grpc/grpc-js", grpcJsCaller(`127.0.0.1:${authServer.port}`)],
        ["connect-node gRPC", connectCaller(authServer.url)],
      ] as const) {
        try {
          outcomes[name] = [
            await caller.call(pools.createClusterPool, create),
            await caller.call(pools.createClusterPool, create, { metadata: { authorization: `Bearer ${viewer.token}`, "x-request-id": "viewer-write" } }),
            await caller.call(pools.listClusterPools, {}, { metadata: { authorization: `Bearer ${viewer.token}` } }),
          ];
        } finally {
          caller.close();
        }
      }
      for (const [name, [anonymous, viewerWrite, viewerRead]] of Object.entries(outcomes)) {
        expect([name, anonymous.code]).toEqual([name, Code.Unauthenticated]);
        expect([name, viewerWrite.code, viewerWrite.trailers["x-request-id"]]).toEqual([name, Code.PermissionDenied, "viewer-write"]);
        expect([name, viewerRead.code]).toEqual([name, OK]);
      }
      expect(outcomes["connect-node gRPC"]![1].message).toBe(PERMISSION_MESSAGE);
      expect(outcomes["@grpc/grpc-js"]![1].message).toBe(PERMISSION_MESSAGE);

      const raw = await rawGrpc(authSession, { path: CREATE_PATH, headers: { authorization: `Bearer ${viewer.token}` }, body: message(CreateClusterPoolRequestSchema, create) });
      expectErrorAnswer(raw, Code.PermissionDenied, trailersOnly);
      expect(decodedMessage(raw)).toBe(PERMISSION_MESSAGE);
      const anonymous = await rawGrpc(authSession, { path: CREATE_PATH, body: message(CreateClusterPoolRequestSchema, create) });
      expectErrorAnswer(anonymous, Code.Unauthenticated, trailersOnly);
      const admitted = await rawGrpc(authSession, { path: CREATE_PATH, headers: { authorization: `Bearer ${admin.token}` }, body: message(CreateClusterPoolRequestSchema, create) });
      expect(statusOf(admitted)).toBe(OK);
    });
  });
});

interface LogLine {
  level: number;
  msg: string;
  code?: string;
  error?: string;
}

interface PythonOutcome {
  code: string;
  message?: string;
  body?: Record<string, unknown>;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  status?: { code: number; message: string; types: string[]; badRequestFields: string[] } | null;
}
