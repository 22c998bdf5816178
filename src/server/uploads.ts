import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { formatBytes } from "./limits.js";

/**
 * Request bodies being received at once, by all callers together, are bounded too: each is
 * below maxRequestSize, but many connections with many streams each could otherwise hold
 * gigabytes before a single one of them has been authenticated.
 */
export const IN_FLIGHT_REQUESTS_OF_MAX_SIZE = 64;

/** The bytes of request bodies being received, shared by every transport of one server. */
export class InFlightBytes {
  private held = 0;

  constructor(private readonly budget: number) {}

  take(bytes: number): boolean {
    if (this.held + bytes > this.budget) return false;
    this.held += bytes;
    return true;
  }

  /** Returns what a finished (or refused) request had taken. */
  give(bytes: number): void {
    this.held -= bytes;
  }
}

export function busy(): ConnectError {
  return new ConnectError("the server is receiving too many large requests at once; retry shortly", Code.ResourceExhausted);
}

export function tooLarge(maxBytes: number): ConnectError {
  return new ConnectError(`the request is larger than ${formatBytes(maxBytes)} (server.limits.maxRequestSize)`, Code.ResourceExhausted);
}

/**
 * Ends an HTTP/2 stream whose answer went out before its request was whole: a reset with
 * NO_ERROR once the answer is out (RFC 9113 §8.1), or the stream would stay open for as long as
 * the client keeps sending. A reset discards frames of the stream still queued, trailers
 * included. Whatever was queued before a ping has gone out by the time its answer is back; a
 * client that does not answer pings gets the reset a second later anyway.
 */
export function resetAfterFlush(stream: http2.ServerHttp2Stream): void {
  const reset = () => {
    clearTimeout(fallback);
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  };
  const fallback = setTimeout(reset, 1_000);
  fallback.unref();
  stream.session?.ping(reset);
}
