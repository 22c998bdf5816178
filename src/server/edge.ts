import type http from "node:http";
import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, codeToString, endStreamFlag } from "@connectrpc/connect/protocol-connect";
import { quoteValue } from "../core/errors.js";
import { encodeGrpcMessage } from "./grpc-wire.js";
import type { Logger } from "./logging.js";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
export type NodeHandler = (request: NodeRequest, response: NodeResponse) => void;

/**
 * Around the whole HTTP handler: a request whose Host (HTTP/1.1) or :authority (HTTP/2) cannot
 * be part of a URL is refused before anything parses it into one, and no exception a handler
 * throws, now or later, leaves it (one would otherwise end the process).
 */
export function guarded(handler: NodeHandler, logger: Logger): NodeHandler {
  return (request, response) => {
    try {
      const authority = requestAuthority(request);
      if (authority !== undefined && !isValidAuthority(authority)) {
        return answerError(request, response, malformedAuthority(request, authority));
      }
      const result: unknown = handler(request, response);
      if (result instanceof Promise) result.catch((error: unknown) => failed(request, response, error, logger));
    } catch (error) {
      failed(request, response, error, logger);
    }
  };
}

/** Answers a request a handler failed on; never throws. */
export function failed(request: NodeRequest, response: NodeResponse, error: unknown, logger: Logger): void {
  logger.error({ err: error, method: request.method, path: (request.url ?? "").split("?")[0] }, "request handler failed");
  try {
    answerError(request, response, new ConnectError("internal error", Code.Internal));
  } catch {
    response.destroy();
  }
}

/** What connect-node makes the request URL from: `:authority` (else Host) on HTTP/2, Host on HTTP/1.1. */
export function requestAuthority(request: NodeRequest): string | undefined {
  return "authority" in request ? request.authority : request.headers.host;
}

/** host[:port] per RFC 3986, without user info or percent-escapes, port at most 65535. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]+)(?::(\d{0,5}))?$/;

export function isValidAuthority(authority: string): boolean {
  const match = AUTHORITY.exec(authority);
  if (!match || Number(match[1] ?? 0) > 65535) return false;
  try {
    new URL(`http://${authority}`);
    return true;
  } catch {
    return false;
  }
}

export function malformedAuthority(request: NodeRequest, authority: string | undefined): ConnectError {
  const name = "stream" in request ? ":authority" : "Host header";
  const what = authority === undefined ? `missing ${name}` : `malformed ${name} ${quoteValue(authority)}`;
  return new ConnectError(`${what}: expected host[:port]`, Code.InvalidArgument);
}

/**
 * Answers with `error` in the request's own protocol, for refusals before connect-node sees the
 * request: gRPC and gRPC-Web get a trailers-only response, Connect streams an end-of-stream
 * message, and everything else (Connect unary, plain HTTP) Connect's JSON error with its HTTP status.
 */
export function answerError(request: NodeRequest, response: NodeResponse, error: ConnectError): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const contentType = String(request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (contentType.startsWith("application/grpc")) {
    response.writeHead(200, {
      "content-type": contentType,
      "grpc-status": String(error.code),
      "grpc-message": encodeGrpcMessage(error.rawMessage),
    });
    response.end();
    return;
  }
  const json = { code: codeToString(error.code), message: error.rawMessage };
  if (contentType.startsWith("application/connect+")) {
    const end = new TextEncoder().encode(JSON.stringify({ error: json }));
    response.writeHead(200, { "content-type": contentType });
    response.end(encodeEnvelope(endStreamFlag, end));
    return;
  }
  response.writeHead(codeToHttpStatus(error.code), { "content-type": "application/json" });
  response.end(JSON.stringify(json));
}

/** grpc-timeout units in milliseconds (gRPC over HTTP/2, "Timeout"). */
const GRPC_TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/** A grpc-timeout header in milliseconds; undefined when absent, NaN when malformed. */
export function grpcTimeoutMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  return match ? Number(match[1]) * GRPC_TIMEOUT_UNITS[match[2]!]! : NaN;
}

/**
 * Shortens a deadline the caller asked for to `maxMs`. connect-node turns it into a timer, and
 * Node fires timers longer than about 24.8 days at once: `grpc-timeout: 99999999S` would
 * otherwise be a 1 ms deadline. Rewritten in place, before connect-node reads the headers.
 */
export function clampDeadline(headers: http.IncomingHttpHeaders, maxMs: number): void {
  const grpc = headers["grpc-timeout"];
  if (typeof grpc === "string" && grpcTimeoutMs(grpc)! > maxMs) headers["grpc-timeout"] = `${maxMs}m`;
  const connect = headers["connect-timeout-ms"];
  if (typeof connect === "string" && /^\d{1,10}$/.test(connect) && Number(connect) > maxMs) {
    headers["connect-timeout-ms"] = String(maxMs);
  }
}

/** The host name of an authority, without the port or IPv6 brackets. */
export function hostOfAuthority(authority: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(authority);
  return bracketed ? bracketed[1]! : authority.replace(/:\d+$/, "");
}
