import type http from "node:http";
import type http2 from "node:http2";
import { fromBinary, type DescMethod, type DescMethodUnary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionNegotiate, type Compression } from "@connectrpc/connect/protocol";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { ServiceImplementation } from "../services/index.js";
import { isLoopback, peerOfStream } from "./auth.js";
import { ACCEPTED_COMPRESSION, reviseStatus } from "./bad-input.js";
import { grpcTimeoutMs, hostOfAuthority, isValidAuthority } from "./edge.js";
import { answerEncoder, declaredLength, encodeGrpcMessage, envelope, unaryEnvelope } from "./grpc-wire.js";
import { LeanContext } from "./lean-context.js";
import type { EdgeLimits } from "./limits.js";
import type { Logger } from "./logging.js";
import { statusOf, type Call, type RpcCalls } from "./rpc-calls.js";
import { busy, resetAfterFlush, tooLarge, type InFlightBytes } from "./uploads.js";

export interface LeanGrpcOptions {
  services: readonly ServiceImplementation[];
  /** Paths connect-node serves (streaming methods, reflection): never taken here. */
  connectPaths: ReadonlySet<string>;
  calls: RpcCalls;
  limits: Pick<EdgeLimits, "maxRequestBytes" | "maxDeadlineMs">;
  /** Request bodies being received at once, shared with connect-node's path. */
  inFlight: InFlightBytes;
  /** Only requests addressed to a loopback name are served (auth off on loopback; see httpRoutes). */
  loopbackHostsOnly: boolean;
  logger: Logger;
}

type UnaryImpl = (request: unknown, context: LeanContext) => unknown;

interface UnaryMethod {
  method: DescMethodUnary;
  impl: UnaryImpl;
  encode: (answer: unknown) => Uint8Array;
}

/** The content types of gRPC with protobuf; `+json` and parameters stay with connect-node. */
const GRPC_PROTO = new Set(["application/grpc", "application/grpc+proto"]);
const RESPONSE_CONTENT_TYPE = "application/grpc+proto";
const ACCEPT_ENCODING = ACCEPTED_COMPRESSION.map((compression) => compression.name).join(",");
/** Smaller answers are not worth compressing (connect-node's compressMinBytes). */
const COMPRESS_MIN_BYTES = 1024;
const AUTHORITY_CACHE_SIZE = 256;

/**
 * Unary gRPC over HTTP/2 (PROTOCOL-HTTP2.md) straight on node:http2 streams, for the calls other
 * services make per execution: connect-node's per-call machinery (async-iterable pipelines, an
 * AbortController, DOMExceptions with stack traces) costs several times what the handler does.
 * The same service implementations, RpcCalls (auth, metrics, log line) and limits serve both
 * paths; everything unusual — Connect, gRPC-Web, `+json`, streaming, reflection, browsers (an
 * Origin header), a malformed authority — goes to connect-node, so one copy of each rule decides.
 */
export class LeanGrpc {
  private readonly unary = new Map<string, UnaryMethod>();
  private readonly authorities = new Set<string>();

  constructor(private readonly options: LeanGrpcOptions) {
    for (const { service, impl } of options.services) {
      for (const method of service.methods) {
        if (method.methodKind !== "unary") continue;
        const implementation = (impl as unknown as Record<string, UnaryImpl>)[method.localName]!;
        const unary = method as DescMethodUnary;
        this.unary.set(`/${service.typeName}/${method.name}`, { method: unary, impl: implementation.bind(impl), encode: answerEncoder(unary.output) });
      }
    }
  }

  /** Whether this path serves the request; the rest goes to connect-node. */
  takes(headers: http2.IncomingHttpHeaders): boolean {
    if (headers[":method"] !== "POST" || !GRPC_PROTO.has(headers["content-type"] ?? "")) return false;
    if (headers.origin !== undefined) return false;
    const path = headers[":path"] ?? "";
    if (this.options.connectPaths.has(path) && !this.unary.has(path)) return false;
    if (path.includes("?")) return false;
    return this.authorityServed(headers[":authority"] ?? headers.host);
  }

  serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => undefined);
    const path = headers[":path"] ?? "";
    const target = this.unary.get(path);
    if (!target) {
      const error = new ConnectError(`this server does not implement ${path}`, Code.Unimplemented);
      return void new UnaryExchange(stream, headers, this.options, undefined).fail(error);
    }
    const call = this.options.calls.begin(target.method, header(headers, "x-request-id"));
    new UnaryExchange(stream, headers, this.options, call).run(target);
  }

  /** As guarded() and httpRoutes check it; a refusal is connect-node's to answer. Cached per authority. */
  private authorityServed(authority: string | undefined): boolean {
    if (authority === undefined) return false;
    if (this.authorities.has(authority)) return true;
    const served = isValidAuthority(authority) && (!this.options.loopbackHostsOnly || isLoopback(hostOfAuthority(authority)));
    if (served) {
      if (this.authorities.size >= AUTHORITY_CACHE_SIZE) this.authorities.clear();
      this.authorities.add(authority);
    }
    return served;
  }
}

/** One unary call on one stream: read, decode, authorize, invoke, answer exactly once. */
class UnaryExchange {
  private answered = false;
  private received = 0;
  private readonly chunks: Buffer[] = [];
  private deadline: NodeJS.Timeout | undefined;
  /** Until the handler runs, every failure is the request's (gRPC calls some INTERNAL). */
  private handlerStarted = false;
  private context: LeanContext | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly options: LeanGrpcOptions,
    private readonly call: Call | undefined,
  ) {
    stream.once("close", () => this.closed());
  }

  run(target: UnaryMethod): void {
    try {
      const timeoutMs = grpcTimeoutMs(header(this.headers, "grpc-timeout"));
      if (Number.isNaN(timeoutMs)) {
        throw new ConnectError(`protocol error: invalid grpc timeout value: ${header(this.headers, "grpc-timeout")}`, Code.InvalidArgument);
      }
      const compression = compressionNegotiate(ACCEPTED_COMPRESSION, header(this.headers, "grpc-encoding") ?? null, header(this.headers, "grpc-accept-encoding") ?? null, "grpc-accept-encoding");
      if (compression.error) throw compression.error;
      const limitMs = timeoutMs === undefined ? undefined : Math.min(timeoutMs, this.options.limits.maxDeadlineMs);
      this.context = new LeanContext(target.method, this.headers, limitMs, this.call!);
      if (limitMs !== undefined && limitMs <= 0) throw new ConnectError("the deadline had passed when the call arrived", Code.DeadlineExceeded);
      if (limitMs !== undefined) {
        this.deadline = setTimeout(() => this.fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)), limitMs);
      }
      this.receive(() => void this.invoke(target, compression.request, compression.response));
    } catch (error) {
      this.fail(statusOf(error));
    }
  }

  /** Collects the body within maxRequestSize and the server's in-flight budget, then calls `done`. */
  private receive(done: () => void): void {
    const { maxRequestBytes } = this.options.limits;
    if (Number(this.headers["content-length"] ?? 0) > maxRequestBytes) return this.fail(tooLarge(maxRequestBytes));
    this.stream.on("data", (chunk: Buffer) => {
      if (this.answered) return;
      if (this.received + chunk.byteLength > maxRequestBytes) return this.fail(tooLarge(maxRequestBytes));
      if (!this.options.inFlight.take(chunk.byteLength)) return this.fail(busy());
      this.received += chunk.byteLength;
      this.chunks.push(chunk);
      // A message declared beyond the limit is refused before the rest of it is waited for.
      const declared = this.chunks.length === 1 ? declaredLength(chunk) : undefined;
      if (declared !== undefined && declared > maxRequestBytes) {
        this.fail(new ConnectError(`message size ${declared} is larger than configured readMaxBytes ${maxRequestBytes}`, Code.ResourceExhausted));
      }
    });
    this.stream.once("end", () => {
      // A connection that drops ends its streams' readable sides too: cancelled, not complete.
      if (!this.answered && !this.stream.aborted && !this.stream.destroyed) done();
    });
  }

  private async invoke(target: UnaryMethod, requestCompression: Compression | null, responseCompression: Compression | null): Promise<void> {
    try {
      const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.release();
      let { compressed, data } = unaryEnvelope(body);
      if (compressed) {
        if (!requestCompression) throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
        data = await requestCompression.decompress(data, this.options.limits.maxRequestBytes);
      }
      const request = decode(target.method, data);
      // Past its deadline or cancelled while the message was inflated: no work for nobody.
      if (this.answered) return;
      // As on connect-node's path: limits first, then the message is read, then the caller is checked.
      this.options.calls.admit(this.call!, header(this.headers, "authorization"), peerOfStream(this.stream));
      this.handlerStarted = true;
      const result = target.impl(request, this.context!);
      const answer = result instanceof Promise ? await result : result;
      if (this.answered) return;
      let bytes = target.encode(answer);
      const compress = responseCompression !== null && bytes.byteLength >= COMPRESS_MIN_BYTES;
      if (compress) bytes = await responseCompression.compress(bytes);
      this.succeed(envelope(compress, bytes), compress ? responseCompression.name : undefined);
    } catch (error) {
      this.fail(statusOf(error));
    }
  }

  private succeed(frame: Uint8Array, encoding: string | undefined): void {
    if (this.answered) return;
    this.finish(undefined);
    const head: http2.OutgoingHttpHeaders = {
      ":status": 200,
      "content-type": RESPONSE_CONTENT_TYPE,
      "grpc-accept-encoding": ACCEPT_ENCODING,
      "x-request-id": this.call!.requestId,
    };
    if (encoding) head["grpc-encoding"] = encoding;
    this.context?.copyResponseHeader(head);
    const trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" };
    this.context?.copyResponseTrailer(trailers);
    this.send(() => {
      this.stream.respond(head, { waitForTrailers: true });
      this.stream.once("wantTrailers", () => this.send(() => this.stream.sendTrailers(trailers)));
      this.stream.end(frame);
    });
  }

  /** A trailers-only answer: the status in the one HEADERS frame, which ends the stream. */
  fail(error: ConnectError): void {
    if (this.answered) return;
    const revised = reviseStatus({ code: error.code, message: error.rawMessage });
    const status = revised ? new ConnectError(revised.message, revised.code, error.metadata) : error;
    if (this.call) status.metadata.set("x-request-id", this.call.requestId);
    this.finish(status);
    if (this.stream.headersSent) return;
    const head: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": RESPONSE_CONTENT_TYPE };
    setTrailerStatus(new Headers(), status).forEach((value, key) => (head[key] = value));
    head["grpc-message"] = encodeGrpcMessage(status.rawMessage);
    this.send(() => {
      this.stream.respond(head, { endStream: true });
      // The answer may come before the whole request (refused, too large): the rest is not wanted.
      if (!this.stream.readableEnded) resetAfterFlush(this.stream);
    });
  }

  /** Writes to the stream unless it has gone; a write that throws (it went meanwhile) resets it. */
  private send(write: () => void): void {
    if (this.stream.closed || this.stream.destroyed) return;
    try {
      write();
    } catch {
      this.stream.destroy();
    }
  }

  /** The caller reset the stream (or the connection went) before the answer: nothing to send. */
  private closed(): void {
    this.release();
    if (this.answered) return;
    this.finish(new ConnectError("the caller cancelled the call", Code.Canceled));
  }

  private finish(error: ConnectError | undefined): void {
    this.answered = true;
    clearTimeout(this.deadline);
    this.context?.abort(error);
    if (this.call) this.options.calls.end(this.call, error, this.handlerStarted ? undefined : "caller");
  }

  private release(): void {
    this.options.inFlight.give(this.received);
    this.received = 0;
  }
}

function decode(method: DescMethod & { input: DescMethodUnary["input"] }, data: Uint8Array): unknown {
  try {
    return fromBinary(method.input, data);
  } catch (error) {
    throw new ConnectError(`parse binary: ${(error as Error).message}`, Code.InvalidArgument);
  }
}

function header(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}
