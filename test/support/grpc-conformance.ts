import http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import {
  create,
  createFileRegistry,
  fromBinary,
  toBinary,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
} from "@bufbuild/protobuf";
import {
  anyUnpack,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  file_google_protobuf_any,
  file_google_protobuf_empty,
  file_google_protobuf_timestamp,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type Any,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, encodeBinaryHeader, type Transport } from "@connectrpc/connect";
import { compressionGzip, createGrpcTransport } from "@connectrpc/connect-node";
import { BadRequestSchema, file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { file_clusterplane_v1_cluster_pool } from "../../gen/clusterplane/v1/cluster_pool_pb.js";

/**
 * What gRPC conformance tests need beside the real clients: google.rpc.Status (clusterplane's
 * contract vendors only BadRequest), services that do not exist, one call shape over grpc-js and
 * connect-node that keeps what the caller sees (code, message, metadata, details), and a raw
 * HTTP/2 call that keeps every frame's flags.
 */

const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
const { INT32, STRING, MESSAGE } = FieldDescriptorProto_Type;

/** google/rpc/status.proto as published (the message the grpc-status-details-bin trailer holds). */
const STATUS_FILE: FileDescriptorProto = create(FileDescriptorProtoSchema, {
  name: "google/rpc/status.proto",
  package: "google.rpc",
  syntax: "proto3",
  dependency: ["google/protobuf/any.proto"],
  messageType: [
    {
      name: "Status",
      field: [
        { name: "code", jsonName: "code", number: 1, label: OPTIONAL, type: INT32 },
        { name: "message", jsonName: "message", number: 2, label: OPTIONAL, type: STRING },
        { name: "details", jsonName: "details", number: 3, label: REPEATED, type: MESSAGE, typeName: ".google.protobuf.Any" },
      ],
    },
  ],
});

/**
 * Methods the server does not have: one more method on a real service, and a whole service
 * nobody serves. Both take and return google.protobuf.Empty.
 */
const UNKNOWN_FILE: FileDescriptorProto = create(FileDescriptorProtoSchema, {
  name: "conformance/unknown.proto",
  package: "clusterplane.v1",
  syntax: "proto3",
  dependency: ["google/protobuf/empty.proto"],
  service: [
    { name: "ClusterPoolService", method: [{ name: "ExplodeClusterPool", inputType: ".google.protobuf.Empty", outputType: ".google.protobuf.Empty" }] },
  ],
});
const UNKNOWN_SERVICE_FILE: FileDescriptorProto = create(FileDescriptorProtoSchema, {
  name: "conformance/nowhere.proto",
  package: "nowhere.v1",
  syntax: "proto3",
  dependency: ["google/protobuf/empty.proto"],
  service: [{ name: "NowhereService", method: [{ name: "Anything", inputType: ".google.protobuf.Empty", outputType: ".google.protobuf.Empty" }] }],
});

const WELL_KNOWN: Record<string, DescFile> = {
  "google/protobuf/any.proto": file_google_protobuf_any,
  "google/protobuf/empty.proto": file_google_protobuf_empty,
};
const resolve = (name: string) => WELL_KNOWN[name];

const statusRegistry = createFileRegistry(STATUS_FILE, resolve);
export const StatusSchema = statusRegistry.getMessage("google.rpc.Status") as DescMessage;
export const UnknownMethodService = createFileRegistry(UNKNOWN_FILE, resolve).getService("clusterplane.v1.ClusterPoolService") as DescService;
export const UnknownService = createFileRegistry(UNKNOWN_SERVICE_FILE, resolve).getService("nowhere.v1.NowhereService") as DescService;

/** A google.rpc.Status as the caller reads it: code, message, and the fields its BadRequest names. */
export interface DecodedStatus {
  code: number;
  message: string;
  detailTypes: string[];
  badRequestFields: string[];
}

/** Decodes grpc-status-details-bin (bytes, or the base64 of the header). */
export function decodeStatusDetails(value: Uint8Array | string): DecodedStatus {
  const bytes = typeof value === "string" ? Buffer.from(value, "base64") : value;
  const status = fromBinary(StatusSchema, bytes) as unknown as { code: number; message: string; details: Any[] };
  const badRequests = status.details.flatMap((detail) => {
    const unpacked = anyUnpack(detail, BadRequestSchema);
    return unpacked ? [unpacked] : [];
  });
  return {
    code: status.code,
    message: status.message,
    detailTypes: status.details.map((detail) => detail.typeUrl),
    badRequestFields: badRequests.flatMap((detail) => detail.fieldViolations.map((violation) => violation.field)),
  };
}

/**
 * A FileDescriptorSet of everything a Python client needs to build message classes (no protoc:
 * Debian's has no well-known types to import): the cluster pool contract, BadRequest, Status,
 * in dependency order.
 */
export function pythonDescriptorSet(): Uint8Array {
  const files: FileDescriptorProto[] = [
    file_google_protobuf_any.proto,
    file_google_protobuf_timestamp.proto,
    file_google_protobuf_empty.proto,
    file_google_rpc_error_details.proto,
    STATUS_FILE,
    file_clusterplane_v1_cluster_pool.proto,
  ];
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }));
}

// ---------------------------------------------------------------------------------------------
// One unary call over a real client, reduced to what its user sees.

export interface CallOptions {
  /** Request metadata; keys ending in -bin take bytes. */
  metadata?: Record<string, string | Uint8Array>;
  /** A deadline this far away; 0 or less is one already passed. */
  timeoutMs?: number;
  /** Compress the request with gzip. */
  gzip?: boolean;
}

export interface CallOutcome {
  /** 0 (OK) or the gRPC status code. */
  code: number;
  message: string;
  /** The decoded response (success only). */
  response?: Record<string, unknown>;
  /** Response metadata (headers), -bin values in base64; success only for connect-node. */
  headers: Record<string, string>;
  /** Trailing metadata; for connect-node errors, everything the error carries. */
  trailers: Record<string, string>;
  /** Fields named by the BadRequest details of an error, as this client exposes them. */
  badRequestFields: string[];
}

export interface GrpcCaller {
  call(method: DescMethod, request: object, options?: CallOptions): Promise<CallOutcome>;
  close(): void;
}

function grpcJsMetadata(metadata: Record<string, string | Uint8Array> = {}): grpc.Metadata {
  const result = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata)) result.set(key, typeof value === "string" ? value : Buffer.from(value));
  return result;
}

function flattenGrpcJs(metadata: grpc.Metadata | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, values] of Object.entries(metadata?.getMap() ?? {})) {
    result[key] = Buffer.isBuffer(values) ? values.toString("base64") : String(values);
  }
  return result;
}

/**
 * @grpc/grpc-js over its own HTTP/2 stack, protobuf-es for the messages. Deadlines are grpc-js's
 * own (`deadline` call option); gzip is the channel's default compression (algorithm 2).
 */
export function grpcJsCaller(address: string): GrpcCaller {
  const plain = new grpc.Client(address, grpc.credentials.createInsecure());
  const gzip = new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.default_compression_algorithm": 2 });
  return {
    call(method, request, options = {}) {
      const client = options.gzip ? gzip : plain;
      return new Promise((resolve) => {
        const outcome: CallOutcome = { code: 0, message: "", headers: {}, trailers: {}, badRequestFields: [] };
        const callOptions: grpc.CallOptions = {};
        if (options.timeoutMs !== undefined) callOptions.deadline = new Date(Date.now() + options.timeoutMs);
        const call = client.makeUnaryRequest(
          `/${method.parent.typeName}/${method.name}`,
          (message: object) => Buffer.from(toBinary(method.input, create(method.input, message as never))),
          (bytes: Buffer) => fromBinary(method.output, bytes),
          request,
          grpcJsMetadata(options.metadata),
          callOptions,
          (error, response) => {
            if (error) {
              outcome.code = error.code;
              outcome.message = error.details;
              const details = error.metadata?.get("grpc-status-details-bin")[0];
              if (Buffer.isBuffer(details)) outcome.badRequestFields = decodeStatusDetails(details).badRequestFields;
            } else {
              outcome.response = response as Record<string, unknown>;
            }
          },
        );
        call.on("metadata", (metadata: grpc.Metadata) => (outcome.headers = flattenGrpcJs(metadata)));
        // Emitted after the callback, with the trailing metadata.
        call.on("status", (status: grpc.StatusObject) => {
          outcome.trailers = flattenGrpcJs(status.metadata);
          resolve(outcome);
        });
      });
    },
    close() {
      plain.close();
      gzip.close();
    },
  };
}

/** connect-node's gRPC transport (always HTTP/2); its deadline is `timeoutMs`, gzip its sendCompression. */
export function connectCaller(baseUrl: string): GrpcCaller {
  const plain = createGrpcTransport({ baseUrl });
  const gzip = createGrpcTransport({ baseUrl, sendCompression: compressionGzip });
  return {
    async call(method, request, options = {}) {
      const transport: Transport = options.gzip ? gzip : plain;
      const headers = new Headers();
      for (const [key, value] of Object.entries(options.metadata ?? {})) {
        headers.set(key, typeof value === "string" ? value : encodeBinaryHeader(value));
      }
      const outcome: CallOutcome = { code: 0, message: "", headers: {}, trailers: {}, badRequestFields: [] };
      const client = createClient(method.parent, transport) as unknown as Record<string, (request: object, options: object) => Promise<unknown>>;
      try {
        const response = await client[method.localName]!(request, {
          headers,
          timeoutMs: options.timeoutMs,
          onHeader: (header: Headers) => (outcome.headers = Object.fromEntries(header)),
          onTrailer: (trailer: Headers) => (outcome.trailers = Object.fromEntries(trailer)),
        });
        outcome.response = response as Record<string, unknown>;
      } catch (reason) {
        const error = ConnectError.from(reason);
        outcome.code = error.code;
        outcome.message = error.rawMessage;
        outcome.trailers = Object.fromEntries(error.metadata);
        outcome.badRequestFields = error.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations.map((v) => v.field));
      }
      return outcome;
    },
    close() {},
  };
}

/** Code.X as the number gRPC sends (0 for OK). */
export const OK = 0;
export { Code };

// ---------------------------------------------------------------------------------------------
// Raw HTTP/2: every frame the answer came in, with its flags.

export interface RawFrames {
  /** The first HEADERS frame of the answer, and whether it ended the stream (trailers-only). */
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
  headersEndStream: boolean;
  /** The trailing HEADERS frame, if the answer had one. */
  trailers?: http2.IncomingHttpHeaders;
  data: Buffer;
  /** RST_STREAM code (0 when the stream ended normally). */
  rstCode: number;
  /** Set when the stream neither ended nor was reset within the time allowed. */
  timedOut?: boolean;
}

export interface RawCall {
  path: string;
  headers?: Record<string, string>;
  /** Sent, then the request ends (unless `keepOpen`). */
  body?: Uint8Array;
  /** Leave the request side open after the body (the client still has more to send). */
  keepOpen?: boolean;
}

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;

/** One gRPC request on `session`; resolves when the stream closes, however it closes. */
export function rawGrpc(session: http2.ClientHttp2Session, request: RawCall, timeoutMs = 20_000): Promise<RawFrames> {
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": request.path,
      "content-type": "application/grpc",
      te: "trailers",
      ...request.headers,
    });
    const answer: RawFrames = { headers: {}, headersEndStream: false, data: Buffer.alloc(0), rstCode: 0 };
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      answer.timedOut = true;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, timeoutMs);
    stream.on("response", (headers, flags) => {
      answer.headers = headers;
      answer.headersEndStream = (flags & END_STREAM) !== 0;
    });
    stream.on("trailers", (trailers) => (answer.trailers = trailers));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => undefined);
    stream.on("close", () => {
      clearTimeout(timer);
      answer.data = Buffer.concat(chunks);
      answer.rstCode = stream.rstCode ?? 0;
      resolve(answer);
    });
    if (request.keepOpen) stream.write(request.body ?? new Uint8Array(0));
    else stream.end(request.body ? Buffer.from(request.body) : undefined);
  });
}

/** The HEADERS frame that ended the answer: the trailers, or the headers of a trailers-only answer. */
export function statusFields(answer: RawFrames): http2.IncomingHttpHeaders {
  return answer.trailers ?? (answer.headersEndStream ? answer.headers : {});
}

/** The envelopes of a response body: flags and the payload, gunzipped when flagged compressed and gzip. */
export function envelopes(data: Buffer): { compressed: boolean; payload: Buffer }[] {
  const result: { compressed: boolean; payload: Buffer }[] = [];
  let offset = 0;
  while (offset + 5 <= data.length) {
    const flags = data[offset]!;
    const length = data.readUInt32BE(offset + 1);
    result.push({ compressed: (flags & 1) === 1, payload: data.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  if (offset !== data.length) throw new Error(`${data.length - offset} bytes after the last whole envelope`);
  return result;
}

export function gunzip(payload: Buffer): Buffer {
  return gunzipSync(payload);
}
