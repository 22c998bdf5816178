import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

type Handler = (
  request: http.IncomingMessage | http2.Http2ServerRequest,
  response: http.ServerResponse | http2.Http2ServerResponse,
) => void;


/** How long a new cleartext connection may stay silent before it is closed. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;
/** PEM contents for serving TLS, and optionally asking clients for certificates. */
export interface TlsMaterial {
  cert: string;
  key: string;
  /** CA whose client certificates are accepted; clients are asked for one when set. */
  clientCa?: string;
}

/**
 * Serves HTTP/2 (gRPC) and HTTP/1.1 (Connect, gRPC-Web) on one port.
 *
 * Under TLS, ALPN picks the protocol: `http2.createSecureServer({ allowHTTP1 })`. Client
 * certificates are requested but a connection without one (or with one the CA does not vouch
 * for) is still accepted, so `/healthz` and grpc.health.v1 stay reachable; the auth interceptor
 * refuses everything else.
 *
 * In cleartext, Node's `http2.createServer({ allowHTTP1 })` ignores allowHTTP1, so each new
 * connection is sniffed instead: HTTP/2 opens with the preface `PRI * HTTP/2.0`, which no
 * HTTP/1.1 request line starts with.
 */
export class OnePortServer {
  private readonly tcp: net.Server;
  private readonly h1: http.Server | null;
  private readonly h2: http2.Http2Server | http2.Http2SecureServer;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly h1InFlight = new Map<Socket, number>();
  private closing = false;

  constructor(handler: Handler, tls?: TlsMaterial) {
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
        },
        handler,
      );
      secure.on("connection", (socket: Socket) => this.track(socket));
      secure.on("secureConnection", (socket: TLSSocket) => {
        this.track(socket);
        if (socket.alpnProtocol !== "h2") this.h1InFlight.set(socket, 0);
      });
      secure.on("request", (request: http.IncomingMessage | http2.Http2ServerRequest, response: http.ServerResponse | http2.Http2ServerResponse) => {
        if (!("stream" in request)) this.trackHttp1Request(request.socket, response as http.ServerResponse);
      });
      this.h1 = null;
      this.h2 = secure;
      this.tcp = secure;
    } else {
      const h1 = http.createServer(handler);
      h1.on("request", (request: http.IncomingMessage, response: http.ServerResponse) =>
        this.trackHttp1Request(request.socket, response),
      );
      this.h1 = h1;
      this.h2 = http2.createServer(handler);
      this.tcp = net.createServer((socket) => this.accept(socket));
    }
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
    for (const session of this.sessions) session.close();
    for (const [socket, inFlight] of this.h1InFlight) if (inFlight === 0) socket.destroy();
    const deadline = setTimeout(() => this.destroyAll(), graceMs);
    deadline.unref();
    await stopped;
    clearTimeout(deadline);
  }

  /** Remembers an open socket until it closes; returns false (and destroys it) when shutting down. */
  private track(socket: Socket): boolean {
    this.sockets.add(socket);
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
    // A connection that never says anything would otherwise be held forever.
    const silent = setTimeout(() => socket.destroy(), FIRST_BYTES_TIMEOUT_MS);
    socket.once("close", () => clearTimeout(silent));
    // Peek in paused mode ('readable', not 'data'): the socket keeps reading from the network,
    // and whatever was read stays buffered for the server that takes the connection over.
    socket.once("readable", () => {
      clearTimeout(silent);
      const head = socket.read() as Buffer | null;
      if (head === null) {
        socket.destroy();
        return;
      }
      socket.unshift(head);
      if (head.subarray(0, 3).toString("latin1") === "PRI") {
        this.h2.emit("connection", socket);
      } else {
        this.h1InFlight.set(socket, 0);
        h1.emit("connection", socket);
      }
    });
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
  }

  private destroyAll(): void {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }
}
