import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { EdgeLimits } from "./limits.js";

type Handler = (
  request: http.IncomingMessage | http2.Http2ServerRequest,
  response: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** The limits the transport enforces itself; the rest apply per request (see connect-handler.ts). */
export type TransportLimits = Pick<
  EdgeLimits,
  "maxConnections" | "maxConcurrentStreams" | "headersTimeoutMs" | "requestTimeoutMs" | "idleTimeoutMs"
>;

/** PEM contents for serving TLS, and optionally asking clients for certificates. */
export interface TlsMaterial {
  cert: string;
  key: string;
  /** CA whose client certificates are accepted; clients are asked for one when set. */
  clientCa?: string;
}

/** Takes some HTTP/2 streams before Node's compatibility layer turns them into request objects. */
export interface StreamDispatch {
  takes(headers: http2.IncomingHttpHeaders): boolean;
  serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
}

/** Every HTTP/2 connection opens with these 24 bytes (RFC 9113 §3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Serves HTTP/2 (gRPC) and HTTP/1.1 (Connect, gRPC-Web) on one port.
 *
 * Under TLS, ALPN picks the protocol: `http2.createSecureServer({ allowHTTP1 })`. Client
 * certificates are requested but a connection without one (or with one the CA does not vouch
 * for) is still accepted, so `/healthz` and grpc.health.v1 stay reachable; the auth interceptor
 * refuses everything else.
 *
 * In cleartext, Node's `http2.createServer({ allowHTTP1 })` ignores allowHTTP1, so each new
 * connection is sniffed instead: HTTP/2 opens with the preface `PRI * HTTP/2.0…`, which no
 * HTTP/1.1 request line starts with.
 *
 * Slow or silent clients are bounded by `limits`: a connection has `headersTimeoutMs` to say
 * which protocol it speaks (the whole HTTP/2 preface and settings, or HTTP/1.1 request headers),
 * an HTTP/1.1 request `requestTimeoutMs` to arrive, an HTTP/2 connection without calls is closed
 * after `idleTimeoutMs`, and connections beyond `maxConnections` are closed as they arrive.
 */
export class OnePortServer {
  private readonly tcp: net.Server;
  private readonly h1: http.Server | null;
  private readonly h2: http2.Http2Server | http2.Http2SecureServer;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly h1InFlight = new Map<Socket, number>();
  private closing = false;

  constructor(
    handler: Handler,
    private readonly limits: TransportLimits,
    tls?: TlsMaterial,
    streams?: StreamDispatch,
  ) {
    const settings = { maxConcurrentStreams: limits.maxConcurrentStreams };
    if (tls) {
      const secure = http2.createSecureServer(
        {
          allowHTTP1: true,
          ALPNProtocols: ["h2", "http/1.1"],
          cert: tls.cert,
          key: tls.key,
          ca: tls.clientCa,
          requestCert: tls.clientCa !== undefined,
          rejectUnauthorized: false,
          handshakeTimeout: limits.headersTimeoutMs,
          settings,
        },
        handler,
      );
      // The secure server runs Node's HTTP/1.1 timeout checks itself once listening; these are
      // the fields those checks read (its constructor fixes them at 60 s and 5 min).
      Object.assign(secure, http1Timeouts(limits));
      secure.on("connection", (socket: Socket) => this.track(socket));
      secure.on("secureConnection", (socket: TLSSocket) => {
        this.track(socket);
        if (socket.alpnProtocol !== "h2") {
          this.h1InFlight.set(socket, 0);
          this.closeIfSilent(socket);
        }
      });
      secure.on("request", (request: http.IncomingMessage | http2.Http2ServerRequest, response: http.ServerResponse | http2.Http2ServerResponse) => {
        if (!("stream" in request)) this.trackHttp1Request(request.socket, response as http.ServerResponse);
      });
      this.h1 = null;
      this.h2 = secure;
      this.tcp = secure;
    } else {
      const h1 = http.createServer({ ...http1Timeouts(limits) }, handler);
      h1.on("request", (request: http.IncomingMessage, response: http.ServerResponse) =>
        this.trackHttp1Request(request.socket, response),
      );
      // Node starts checking header and request timeouts when an http.Server starts listening.
      // This one never listens (the sniffing net.Server below does), so it is told it did.
      h1.emit("listening");
      this.h1 = h1;
      this.h2 = http2.createServer({ settings }, handler);
      this.tcp = net.createServer((socket) => this.accept(socket));
    }
    this.tcp.maxConnections = limits.maxConnections;
    if (streams) dispatchStreams(this.h2, streams);
    this.h2.on("session", (session: http2.ServerHttp2Session) => this.trackSession(session));
  }

  listen(port: number, host: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.tcp.once("error", reject);
      this.tcp.listen(port, host, () => {
        this.tcp.off("error", reject);
        resolve(this.tcp.address() as net.AddressInfo);
      });
    });
  }

  /**
   * Stops accepting connections, lets in-flight calls finish, and after `graceMs` destroys
   * whatever is still open.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const stopped = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    // Stops its timeout checks; it never listened, so the error its callback gets means nothing.
    this.h1?.close(() => undefined);
    for (const session of this.sessions) session.close();
    for (const [socket, inFlight] of this.h1InFlight) if (inFlight === 0) socket.destroy();
    const deadline = setTimeout(() => this.destroyAll(), graceMs);
    deadline.unref();
    await stopped;
    clearTimeout(deadline);
  }

  /** Remembers an open socket until it closes; returns false (and destroys it) when shutting down. */
  private track(socket: Socket): boolean {
    if (this.sockets.has(socket)) return !this.closing;
    this.sockets.add(socket);
    // A reset before HTTP/1.1 or HTTP/2 takes the socket over would otherwise be an uncaught
    // exception; 'close' follows every error, and that is where the socket is forgotten.
    socket.on("error", () => undefined);
    socket.on("close", () => {
      this.sockets.delete(socket);
      this.h1InFlight.delete(socket);
    });
    if (this.closing) {
      socket.destroy();
      return false;
    }
    return true;
  }

  private accept(socket: Socket): void {
    if (!this.track(socket)) return;
    const h1 = this.h1!;
    // Until the first bytes say which protocol this is, nothing else bounds the connection.
    const undecided = setTimeout(() => socket.destroy(), this.limits.headersTimeoutMs);
    socket.once("close", () => clearTimeout(undecided));
    let head = Buffer.alloc(0);
    // Peek in paused mode ('readable', not 'data'): the socket keeps reading from the network,
    // and whatever was read goes back for the server that takes the connection over.
    const onReadable = () => {
      const chunks = drain(socket);
      // 'readable' with nothing to read is the end of the stream.
      if (chunks.length === 0) return void socket.destroy();
      head = Buffer.concat([head, ...chunks]);
      const protocol = protocolOf(head);
      if (protocol === undefined) return;
      socket.off("readable", onReadable);
      clearTimeout(undecided);
      socket.unshift(head);
      if (protocol === "h2") {
        this.h2.emit("connection", socket);
      } else {
        this.h1InFlight.set(socket, 0);
        h1.emit("connection", socket);
      }
    };
    socket.on("readable", onReadable);
  }

  /**
   * Node times out HTTP/1.1 requests only once they have begun; a TLS connection that never sends
   * a byte after the handshake is closed here.
   */
  private closeIfSilent(socket: TLSSocket): void {
    const before = socket.bytesRead;
    const timer = setTimeout(() => {
      if (socket.bytesRead === before) socket.destroy();
    }, this.limits.headersTimeoutMs);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
  }

  private trackHttp1Request(socket: Socket, response: http.ServerResponse): void {
    this.h1InFlight.set(socket, (this.h1InFlight.get(socket) ?? 0) + 1);
    response.on("close", () => {
      const remaining = (this.h1InFlight.get(socket) ?? 1) - 1;
      this.h1InFlight.set(socket, remaining);
      // A keep-alive connection would otherwise stay open after shutdown began.
      if (this.closing && remaining === 0) socket.destroy();
    });
  }

  private trackSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.on("close", () => this.sessions.delete(session));
    if (this.closing) session.close();
    this.requireSettings(session);
    this.closeWhenIdle(session);
    session.on("stream", (stream: http2.ServerHttp2Stream) => this.requireWholeRequest(stream));
  }

  /** A client must send its preface and SETTINGS first (RFC 9113 §3.4); one that stalls is cut. */
  private requireSettings(session: http2.ServerHttp2Session): void {
    const timer = setTimeout(() => session.destroy(), this.limits.headersTimeoutMs);
    session.once("remoteSettings", () => clearTimeout(timer));
    session.once("close", () => clearTimeout(timer));
  }

  /**
   * Closes (GOAWAY, so clients reconnect cleanly) a connection that has had no call open for
   * `idleTimeoutMs`. Streams, not bytes, count: a long Watch with nothing to say is not idle.
   */
  private closeWhenIdle(session: http2.ServerHttp2Session): void {
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      timer = setTimeout(() => session.close(), this.limits.idleTimeoutMs);
      timer.unref();
    };
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(timer);
      stream.once("close", () => {
        if (--open === 0 && !session.closed) arm();
      });
    });
    session.once("close", () => clearTimeout(timer));
    arm();
  }

  /**
   * An HTTP/2 request has `requestTimeoutMs` to arrive whole, as an HTTP/1.1 one does: otherwise a
   * client could hold a buffered, unauthenticated body per stream for as long as it liked. Once the
   * request is in, the call may take as long as its deadline allows (a Watch for hours).
   */
  private requireWholeRequest(stream: http2.ServerHttp2Stream): void {
    const timer = setTimeout(() => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    }, this.limits.requestTimeoutMs);
    timer.unref();
    const done = () => clearTimeout(timer);
    // 'end' of the readable side is seen without consuming it: the handler reads the body.
    stream.once("end", done);
    stream.once("close", done);
    if (stream.readableEnded) done();
  }

  private destroyAll(): void {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }
}

/**
 * Lets `streams` take HTTP/2 streams first. Node's compatibility layer is the server's one
 * 'stream' listener (added with the 'request' handler); it is moved behind the dispatch, so a
 * stream `streams` takes never gets request and response objects made for it.
 */
function dispatchStreams(server: http2.Http2Server | http2.Http2SecureServer, streams: StreamDispatch): void {
  const compat = server.listeners("stream") as ((...args: unknown[]) => void)[];
  if (compat.length !== 1) throw new Error(`expected node:http2's compatibility layer as the one 'stream' listener, found ${compat.length}`);
  server.removeAllListeners("stream");
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    if (!takes(streams, headers)) return compat[0]!.call(server, stream, headers, ...rest);
    try {
      streams.serve(stream, headers);
    } catch (error) {
      // Nothing of the stream is trustworthy any more; the caller sees a reset, the server lives.
      stream.destroy(error as Error);
    }
  });
}

function takes(streams: StreamDispatch, headers: http2.IncomingHttpHeaders): boolean {
  try {
    return streams.takes(headers);
  } catch {
    return false;
  }
}

/** Node's HTTP/1.1 timeout settings; checked a few times per header timeout, at most once a second. */
function http1Timeouts(limits: TransportLimits) {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
  };
}

/** "h2", "h1", or undefined while the bytes so far could still begin either. */
export function protocolOf(head: Buffer): "h1" | "h2" | undefined {
  const compared = Math.min(head.length, PREFACE.length);
  if (!head.subarray(0, compared).equals(PREFACE.subarray(0, compared))) return "h1";
  return head.length >= PREFACE.length ? "h2" : undefined;
}

function drain(socket: Socket): Buffer[] {
  const chunks: Buffer[] = [];
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) chunks.push(chunk);
  return chunks;
}
