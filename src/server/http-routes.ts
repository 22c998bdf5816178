import type http from "node:http";
import type http2 from "node:http2";
import { TLSSocket } from "node:tls";
import { cors as connectCors } from "@connectrpc/connect";
import type { Authenticator } from "./auth.js";
import { isLoopback, peerOf } from "./auth.js";
import { hostOfAuthority, requestAuthority } from "./edge.js";
import type { ServerMetrics } from "./metrics.js";
import { ConsoleAssets } from "./console-assets.js";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;
export type NodeHandler = (request: Request, response: Response) => void;

/** What the browser may send and see: Connect's and gRPC-Web's headers, plus ours. */
export const CORS_ALLOWED_METHODS = connectCors.allowedMethods;
export const CORS_ALLOWED_HEADERS = [...connectCors.allowedHeaders, "Authorization", "X-Request-Id"];
export const CORS_EXPOSED_HEADERS = [...connectCors.exposedHeaders, "X-Request-Id"];
const CORS_MAX_AGE_SECONDS = 7200;

export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

export interface HttpRoutesOptions {
  /** The Connect handler (gRPC, gRPC-Web, Connect) for everything else. */
  connect: NodeHandler;
  /** Browser origins (`https://console.example.com`) allowed to call the API. */
  allowedOrigins: readonly string[];
  metrics: ServerMetrics;
  /** When false, `/metrics` needs the same credentials as the API (any role). */
  metricsPublic: boolean;
  auth: Authenticator;
  /** `/readyz`: database open, migrations applied, not shutting down. */
  readiness(): Promise<Readiness>;
  /**
   * Answer only requests addressed to a loopback host name. Set when the server runs without
   * authentication on loopback: a web page on another site could otherwise reach it through
   * a DNS name rebound to 127.0.0.1 (its requests carry that name as Host, not localhost).
   */
  loopbackHostsOnly: boolean;
  /** The web console at `/` and `/assets/`; absent: those paths go to the API like any other. */
  console?: ConsoleAssets;
}

/** `/readyz`: asks the database, so it answers once the database did (and never throws). */
async function serveReadiness(options: HttpRoutesOptions, request: Request, response: Response): Promise<void> {
  const readiness = await options.readiness();
  const body = JSON.stringify({ status: readiness.ready ? "ready" : "not ready", checks: readiness.checks }) + "\n";
  plain(request, response, readiness.ready ? 200 : 503, "application/json", body);
}

/**
 * Plain-HTTP routes beside the RPCs: `/healthz` (liveness), `/readyz` (readiness), `/metrics`
 * (Prometheus), and CORS for browser origins in front of Connect.
 */
export function httpRoutes(options: HttpRoutesOptions): NodeHandler {
  const origins = new Set(options.allowedOrigins.map(normalizeOrigin));
  return (request, response) => {
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    if (options.loopbackHostsOnly && !isLoopback(hostName(request))) {
      const message = "this server runs without authentication and answers only requests addressed to localhost; configure auth.tokensFile to serve other names\n";
      return plain(request, response, 403, "text/plain; charset=utf-8", message);
    }
    switch (path) {
      case "/healthz":
        return plain(request, response, 200, "text/plain; charset=utf-8", "ok\n");
      case "/readyz":
        return void serveReadiness(options, request, response);
      case "/metrics":
        return void serveMetrics(options, request, response);
    }
    if (options.console && ConsoleAssets.owns(path)) return options.console.serve(request, response, path);
    const origin = header(request, "origin");
    if (origin === undefined) {
      if (path === IDENTITY_PATH) return serveIdentity(options, request, response);
      return options.connect(request, response);
    }
    // The console calls the API from the page the server itself served: its own origin.
    const allowed = origins.has(normalizeOrigin(origin)) || isSameOrigin(request, origin);
    const preflight = request.method === "OPTIONS" && header(request, "access-control-request-method") !== undefined;
    response.setHeader("Vary", "Origin");
    if (!allowed) {
      // No Access-Control-Allow-Origin: the browser will not let the page read anything, and
      // nothing is executed for an origin that is not on the list.
      return plain(request, response, 403, "text/plain; charset=utf-8", `origin ${origin} is not allowed\n`);
    }
    response.setHeader("Access-Control-Allow-Origin", origin);
    if (preflight) {
      response.setHeader("Access-Control-Allow-Methods", CORS_ALLOWED_METHODS.join(", "));
      response.setHeader("Access-Control-Allow-Headers", CORS_ALLOWED_HEADERS.join(", "));
      response.setHeader("Access-Control-Max-Age", String(CORS_MAX_AGE_SECONDS));
      response.writeHead(204);
      response.end();
      return;
    }
    response.setHeader("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS.join(", "));
    if (path === IDENTITY_PATH) return serveIdentity(options, request, response);
    options.connect(request, response);
  };
}

/** Who the credentials of the request are: what the console shows, and which actions it offers. */
export const IDENTITY_PATH = "/console/identity";

function serveIdentity(options: HttpRoutesOptions, request: Request, response: Response): void {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return plain(request, response, 405, "text/plain; charset=utf-8", "use GET\n");
  }
  const outcome = options.auth.authenticate(header(request, "authorization") ?? null, peerOf(request));
  if ("code" in outcome) {
    const body = JSON.stringify({ authEnabled: options.auth.enabled, error: outcome.message }) + "\n";
    return plain(request, response, 401, "application/json", body);
  }
  const { name, role } = outcome.identity;
  plain(request, response, 200, "application/json", JSON.stringify({ authEnabled: options.auth.enabled, name, role }) + "\n");
}

/**
 * Whether `origin` is the origin the request was sent to: the same scheme (TLS or not, as this
 * connection is, whatever the client claims) and the same host and port (the authority the
 * request was addressed to). Origins compare as browsers serialize them, so `http://h:80` is not
 * `http://h`, and "null" (sandboxed frames, file: pages) is never the same.
 */
export function isSameOrigin(request: Request, origin: string): boolean {
  const authority = requestAuthority(request);
  if (!authority) return false;
  let given: URL;
  let own: URL;
  try {
    given = new URL(origin);
    own = new URL(`${isEncrypted(request) ? "https" : "http"}://${authority}`);
  } catch {
    return false;
  }
  if (given.origin === "null" || given.origin !== origin.trim().toLowerCase()) return false;
  return given.origin === own.origin;
}

/** The request came over TLS: read from the connection, never from a header. */
function isEncrypted(request: Request): boolean {
  if ("stream" in request) return request.stream.session?.socket instanceof TLSSocket;
  return request.socket instanceof TLSSocket;
}

async function serveMetrics(options: HttpRoutesOptions, request: Request, response: Response): Promise<void> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return plain(request, response, 405, "text/plain; charset=utf-8", "use GET\n");
  }
  if (!options.metricsPublic) {
    const outcome = options.auth.authenticate(header(request, "authorization") ?? null, peerOf(request));
    if ("code" in outcome) {
      response.setHeader("WWW-Authenticate", 'Bearer realm="clusterplane"');
      return plain(request, response, 401, "text/plain; charset=utf-8", `${outcome.message}\n`);
    }
    if (outcome.identity.role === null) return plain(request, response, 403, "text/plain; charset=utf-8", "no role\n");
  }
  try {
    plain(request, response, 200, options.metrics.contentType, await options.metrics.exposition());
  } catch (error) {
    plain(request, response, 500, "text/plain; charset=utf-8", `cannot collect metrics: ${(error as Error).message}\n`);
  }
}

function plain(request: Request, response: Response, status: number, contentType: string, body: string): void {
  if (response.headersSent) return;
  response.writeHead(status, { "Content-Type": contentType, "Cache-Control": "no-store" });
  if (request.method === "HEAD") response.end();
  else response.end(body);
}

function header(request: Request, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Origins compare by scheme, host and port; case and a trailing slash do not matter. */
export function normalizeOrigin(origin: string): string {
  return origin.trim().replace(/\/+$/, "").toLowerCase();
}

/**
 * The host name a request was addressed to, without the port: the authority connect-node will
 * use (HTTP/2's :authority before any Host header), so what is checked is what is served.
 */
function hostName(request: Request): string {
  return hostOfAuthority(requestAuthority(request) ?? "");
}
