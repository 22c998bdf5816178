import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import type { UniversalHandlerFn } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { ACCEPTED_COMPRESSION, withRevisedStatus } from "./bad-input.js";
import { answerError, clampDeadline, failed, malformedAuthority, requestAuthority, type NodeHandler, type NodeRequest, type NodeResponse } from "./edge.js";
import type { EdgeLimits } from "./limits.js";
import { busy, InFlightBytes, resetAfterFlush, tooLarge } from "./uploads.js";
import type { Logger } from "./logging.js";

export interface ConnectHandlerOptions {
  routes(router: ConnectRouter): void;
  /** Outermost first. */
  interceptors: Interceptor[];
  contextValues(request: NodeRequest): ContextValues;
  limits: Pick<EdgeLimits, "maxRequestBytes" | "maxDeadlineMs">;
  logger: Logger;
  /** Request bodies being received at once, shared with the lean gRPC path. */
  inFlight: InFlightBytes;
}

/** The Node handler, and the request paths it serves. */
export type ConnectHandler = NodeHandler & { paths: ReadonlySet<string> };

/**
 * gRPC, gRPC-Web and Connect for the registered services: connect-node's adapter
 * (`connectNodeAdapter`), with the edge's rules where that adapter has none.
 *
 * - The body is counted as it arrives and cut at `maxRequestBytes` (a Content-Length beyond it
 *   is refused unread); connect-node's `readMaxBytes`, the same limit, bounds every message after
 *   decompression. Both apply before authentication, which runs once the message is read.
 * - A request connect-node cannot make a URL of, or a Connect GET whose message is not base64,
 *   is refused here: connect-node would throw outside any handler, or answer INTERNAL.
 * - Deadlines are clamped to `maxDeadlineMs`; malformed messages are INVALID_ARGUMENT
 *   (bad-input.ts); unknown JSON fields are refused, naming the field.
 * - A failure after the answer began is logged, never thrown.
 */
export function connectHandler(options: ConnectHandlerOptions): ConnectHandler {
  const { limits, logger, inFlight } = options;
  const router = createConnectRouter({
    interceptors: options.interceptors,
    readMaxBytes: limits.maxRequestBytes,
    acceptCompression: ACCEPTED_COMPRESSION,
    jsonOptions: { ignoreUnknownFields: false },
  });
  options.routes(router);
  const handlers = new Map<string, UniversalHandlerFn>(router.handlers.map((handler) => [handler.requestPath, withRevisedStatus(handler)]));
  const handle: NodeHandler = (request, response) => {
    const handler = handlers.get((request.url ?? "").split("?", 2)[0]!);
    if (!handler) {
      response.writeHead(404);
      response.end();
      return;
    }
    const refusal = refusalOf(request);
    if (refusal) return answerError(request, response, refusal);
    clampDeadline(request.headers, limits.maxDeadlineMs);
    const universal = {
      ...universalRequestFromNodeRequest(request, response, undefined, options.contextValues(request)),
      body: limitedBody(request, response, limits.maxRequestBytes, inFlight),
    };
    handler(universal)
      .then((answer) => universalResponseToNodeResponse(answer, response))
      .catch((reason: unknown) => {
        const error = ConnectError.from(reason);
        // The caller went away or reset the stream: nothing to answer, nothing wrong here.
        if (error.code === Code.Aborted || error.code === Code.Canceled) return;
        failed(request, response, reason, logger);
      });
  };
  return Object.assign(handle, { paths: new Set(handlers.keys()) });
}

/** Why connect-node must not see `request`, or undefined. */
function refusalOf(request: NodeRequest): ConnectError | undefined {
  // guarded() (edge.ts) has answered a malformed authority already; a missing one comes here.
  const authority = requestAuthority(request);
  if (authority === undefined) return malformedAuthority(request, authority);
  if (request.method === "GET") return queryRefusal(request.url ?? "");
  return undefined;
}

/** connect-node answers INTERNAL for a GET message that is not base64 (it throws a plain Error). */
function queryRefusal(url: string): ConnectError | undefined {
  const query = new URLSearchParams(url.split("?", 2)[1] ?? "");
  if (query.get("base64") !== "1") return undefined;
  try {
    base64Decode(query.get("message") ?? "");
    return undefined;
  } catch {
    return new ConnectError("the query parameter message is not base64 (base64=1)", Code.InvalidArgument);
  }
}

/**
 * The request body as connect-node reads it, cut once it passes `maxBytes`. Not `for await` on
 * the request: ending that loop early destroys the request, and with it the socket the answer
 * was to go out on.
 */
async function* limitedBody(request: NodeRequest, response: NodeResponse, maxBytes: number, inFlight: InFlightBytes): AsyncGenerator<Uint8Array> {
  const chunks = request.iterator({ destroyOnReturn: false });
  let received = 0;
  try {
    if (Number(request.headers["content-length"] ?? 0) > maxBytes) throw tooLarge(maxBytes);
    for (let next = await chunks.next(); next.done !== true; next = await chunks.next()) {
      const chunk = next.value as Uint8Array;
      if (received + chunk.byteLength > maxBytes) throw tooLarge(maxBytes);
      if (!inFlight.take(chunk.byteLength)) throw busy();
      received += chunk.byteLength;
      yield chunk;
    }
  } finally {
    inFlight.give(received);
    if (!request.complete) stopUpload(request, response);
  }
}

/**
 * The answer came before the whole request did (too large, or refused): the rest is not wanted.
 * HTTP/1.1 closes the connection after the answer, or Node would read the rest to reuse it.
 * HTTP/2 resets the stream with NO_ERROR once the answer is out (RFC 9113 §8.1), or the stream
 * would stay open for as long as the client keeps trying to send.
 */
function stopUpload(request: NodeRequest, response: NodeResponse): void {
  if (!("stream" in request)) {
    if (!response.headersSent) response.setHeader("Connection", "close");
    return;
  }
  const stream = request.stream;
  if (stream.sentTrailers) resetAfterFlush(stream);
  // Node's compatibility layer submits the trailers in its own, earlier listener.
  else stream.once("wantTrailers", () => resetAfterFlush(stream));
}

