import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression, UniversalHandlerFn, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressedFlag, encodeEnvelope } from "@connectrpc/connect/protocol";
import { codeFromString, codeToHttpStatus, codeToString, endStreamFlag } from "@connectrpc/connect/protocol-connect";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { shorten } from "../core/errors.js";
import { encodeGrpcMessage } from "./grpc-wire.js";

/**
 * Errors connect-node raises for requests that are malformed, under codes that blame the server.
 * A message that is not protobuf ("parse binary: …", nesting past 100 levels included) is
 * INTERNAL, and it is raised before any interceptor runs, so only the answer can be corrected. A
 * unary call with no message or two is UNIMPLEMENTED. Matched on connect-node's own words; the
 * tests send each, so a wording change in an upgrade is caught.
 */
const CALLER_FAULTS: readonly { code: Code; prefix: string }[] = [
  { code: Code.Internal, prefix: "parse binary:" },
  { code: Code.Unimplemented, prefix: "protocol error: missing input message" },
  { code: Code.Unimplemented, prefix: "protocol error: received extra input message" },
];

/** Longest status message sent; connect-node's own messages may quote request content whole. */
const MAX_STATUS_MESSAGE_CHARS = 1024;
/** Status details beyond this are dropped rather than risk a stream reset (ours stay far below). */
const MAX_STATUS_DETAILS_CHARS = 4096;

interface Status {
  code: Code;
  message: string;
}

/** The status to answer instead of `status`, or undefined to keep it. */
export function reviseStatus(status: Status): Status | undefined {
  const fault = CALLER_FAULTS.some(({ code, prefix }) => status.code === code && status.message.startsWith(prefix));
  const code = fault ? Code.InvalidArgument : status.code;
  const message = shorten(status.message, MAX_STATUS_MESSAGE_CHARS);
  return code === status.code && message === status.message ? undefined : { code, message };
}

/**
 * Wraps one of connect-node's universal handlers so that its answers carry the revised status,
 * in whichever protocol the call came: gRPC trailers, the gRPC-Web trailer message, the Connect
 * end-of-stream message, or a Connect unary error body.
 */
export function withRevisedStatus(handler: UniversalHandlerFn): UniversalHandlerFn {
  return async (request) => reviseResponse(await handler(request));
}

async function reviseResponse(response: UniversalServerResponse): Promise<UniversalServerResponse> {
  const { body, header, trailer } = response;
  const contentType = header?.get("content-type") ?? "";
  if (!body) return response;
  if (contentType.startsWith("application/grpc-web")) return { ...response, body: mapChunks(body, reviseGrpcWebTrailer) };
  if (contentType.startsWith("application/grpc")) {
    // connect-node writes the trailers once the body is done; they are final by then.
    return trailer ? { ...response, body: afterLast(body, () => reviseGrpcStatusFields(trailer)) } : response;
  }
  if (contentType.startsWith("application/connect+")) return { ...response, body: mapChunks(body, reviseEndStream) };
  if (response.status !== 200 && contentType.startsWith("application/json") && !header?.has("content-encoding")) {
    return reviseUnaryError(response, body, header!);
  }
  return response;
}

/** grpc-status and grpc-message, in HTTP/2 trailers or a gRPC-Web trailer block. */
function reviseGrpcStatusFields(fields: Headers): void {
  const code = Number(fields.get("grpc-status") ?? "0");
  if (!code) return;
  const message = decodeGrpcMessage(fields.get("grpc-message") ?? "");
  const revised = reviseStatus({ code, message }) ?? { code, message };
  fields.set("grpc-status", String(revised.code));
  fields.set("grpc-message", encodeGrpcMessage(revised.message));
  // Clients read code and message from the details when present: they must agree or go.
  const details = fields.get("grpc-status-details-bin");
  if (details !== null && (revised.code !== code || details.length > MAX_STATUS_DETAILS_CHARS)) {
    fields.delete("grpc-status-details-bin");
  }
}

function decodeGrpcMessage(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}

/** connect-node sends each envelope (flags, length, data) as one chunk; a compressed one is left alone. */
function reviseGrpcWebTrailer(chunk: Uint8Array): Uint8Array {
  const data = envelopeData(chunk, trailerFlag);
  if (!data) return chunk;
  const fields = trailerParse(data);
  reviseGrpcStatusFields(fields);
  return encodeEnvelope(trailerFlag, trailerSerialize(fields));
}

function reviseEndStream(chunk: Uint8Array): Uint8Array {
  const data = envelopeData(chunk, endStreamFlag);
  if (!data) return chunk;
  const end = parseJsonObject(data);
  const error = end?.error as Record<string, unknown> | undefined;
  if (!end || !error || !reviseJsonError(error)) return chunk;
  return encodeEnvelope(endStreamFlag, new TextEncoder().encode(JSON.stringify(end)));
}

/** Connect unary errors: one small JSON body (already in memory), its status and its length. */
async function reviseUnaryError(response: UniversalServerResponse, body: AsyncIterable<Uint8Array>, header: Headers): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const error = parseJsonObject(bytes);
  if (!error || !reviseJsonError(error)) return { ...response, body: once(bytes) };
  const json = new TextEncoder().encode(JSON.stringify(error));
  header.set("content-length", String(json.byteLength));
  return { ...response, status: codeToHttpStatus(codeFromString(String(error.code)) ?? Code.Unknown), body: once(json) };
}

/** Revises a Connect JSON error ({code, message, details}) in place; true when it changed. */
function reviseJsonError(error: Record<string, unknown>): boolean {
  const code = codeFromString(String(error.code));
  if (code === undefined) return false;
  const revised = reviseStatus({ code, message: typeof error.message === "string" ? error.message : "" });
  if (!revised) return false;
  error.code = codeToString(revised.code);
  error.message = revised.message;
  return true;
}

function envelopeData(chunk: Uint8Array, flag: number): Uint8Array | undefined {
  if (chunk.byteLength < 5 || (chunk[0]! & flag) !== flag || (chunk[0]! & compressedFlag) !== 0) return undefined;
  const length = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1);
  return length === chunk.byteLength - 5 ? chunk.subarray(5) : undefined;
}

function parseJsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

async function* mapChunks(body: AsyncIterable<Uint8Array>, map: (chunk: Uint8Array) => Uint8Array): AsyncIterable<Uint8Array> {
  for await (const chunk of body) yield map(chunk);
}

async function* afterLast(body: AsyncIterable<Uint8Array>, then: () => void): AsyncIterable<Uint8Array> {
  yield* body;
  then();
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/**
 * gzip and br as connect-node offers them, except that a payload that does not decompress is the
 * caller's fault: connect-node calls some corrupt inputs (a truncated stream, for one) INTERNAL.
 */
export const ACCEPTED_COMPRESSION: Compression[] = [compressionGzip, compressionBrotli].map((compression) => ({
  name: compression.name,
  compress: (bytes) => compression.compress(bytes),
  decompress: (bytes, readMaxBytes) =>
    compression.decompress(bytes, readMaxBytes).catch((reason: unknown) => {
      const error = ConnectError.from(reason);
      if (error.code !== Code.Internal) throw error;
      throw new ConnectError(`the ${compression.name} payload does not decompress`, Code.InvalidArgument, undefined, undefined, reason);
    }),
}));
