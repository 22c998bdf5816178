import type http from "node:http";
import type http2 from "node:http2";
import { TLSSocket } from "node:tls";
import { Code, createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";
import { DomainError } from "../core/errors.js";
import { mayCall, rolesAllowed, type ProcedureKind, type Role } from "../core/roles.js";
import { bearerToken, looksLikeAgentCredential } from "../core/credentials.js";
import { isLoopback } from "../core/loopback.js";

export { isLoopback };
import type { TokenFile } from "./tokens.js";

/** Who is calling, as the logs show it. Never carries the credential itself. */
export interface Identity {
  name: string;
  /** null: a verified client certificate that no role is mapped to. */
  role: Role | null;
  /** How the caller proved it: a bearer token, a client certificate, or nothing (auth is off). */
  via: "token" | "client-certificate" | "agent-credential" | "none";
}

/** What the TLS layer learned about the client's certificate. */
export interface PeerCertificate {
  presented: boolean;
  /** Verified against the configured client CA. */
  authorized: boolean;
  commonName?: string;
  error?: string;
}

/** Set by the transport (per request) for the auth interceptor. */
export const peerKey = createContextKey<PeerCertificate | undefined>(undefined, { description: "TLS client certificate" });
/** Set by the auth interceptor, read by the logging interceptor. */
export const identityKey = createContextKey<Identity | undefined>(undefined, { description: "caller identity" });

export interface AuthOptions {
  /** Bearer tokens, or null when none are configured. */
  tokens: TokenFile | null;
  /** Client certificates are requested and verified against a CA. */
  clientCertificates: boolean;
  /** A verified client certificate is the only accepted credential (bearer tokens are ignored). */
  requireClientCertificate: boolean;
  /** Role of each client certificate, by subject common name. */
  certificateRoles: Readonly<Record<string, Role>>;
}

const ANONYMOUS: Identity = { name: "anonymous", role: "admin", via: "none" };
const AGENT: Identity = { name: "agent", role: "agent", via: "agent-credential" };

type AuthOutcome = { identity: Identity } | { code: Code.Unauthenticated; message: string };

/**
 * Turns credentials into an identity. With neither tokens nor client certificates configured,
 * auth is off and every caller is an anonymous admin (the server then refuses to listen beyond
 * loopback unless told to run open; see `checkExposure`).
 */
export class Authenticator {
  constructor(private readonly options: AuthOptions) {}

  get enabled(): boolean {
    return this.options.tokens !== null || this.options.clientCertificates;
  }

  authenticate(authorization: string | null, peer: PeerCertificate | undefined): AuthOutcome {
    if (!this.enabled) return { identity: ANONYMOUS };
    if (this.options.clientCertificates && peer?.presented) {
      if (!peer.authorized) {
        return { code: Code.Unauthenticated, message: `client certificate not trusted: ${peer.error ?? "not signed by the configured client CA"}` };
      }
      const cn = peer.commonName ?? "";
      const role = Object.hasOwn(this.options.certificateRoles, cn) ? this.options.certificateRoles[cn] : undefined;
      // A verified certificate without a role is an authenticated caller with no rights.
      return { identity: { name: cn, role: role ?? null, via: "client-certificate" } };
    }
    if (this.options.requireClientCertificate || !this.options.tokens) {
      return { code: Code.Unauthenticated, message: "a client certificate signed by the configured client CA is required" };
    }
    if (authorization === null || authorization === "") {
      return { code: Code.Unauthenticated, message: "missing credentials: send the header Authorization: Bearer <token>" };
    }
    const token = bearerToken(authorization);
    if (token === null) return { code: Code.Unauthenticated, message: "the Authorization header must be Bearer <token>" };
    // Verified by AgentService against the database; here it only limits what the caller may try.
    if (looksLikeAgentCredential(token)) return { identity: AGENT };
    const owner = this.options.tokens.lookup(token);
    if (!owner) return { code: Code.Unauthenticated, message: "unknown bearer token" };
    return { identity: { name: owner.name, role: owner.role, via: "token" } };
  }

  /** Whether `identity` may call a procedure of `kind`; a message saying why not otherwise. */
  authorize(identity: Identity, kind: ProcedureKind, procedure: string): string | null {
    if (identity.role === null) return `client certificate "${identity.name}" has no role; map its common name in auth.clientCertificates`;
    if (mayCall(identity.role, kind)) return null;
    return `${identity.name} (role ${identity.role}) may not call ${procedure}: it is a ${kind} and needs role ${rolesAllowed(kind).join(" or ")}`;
  }
}

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;

/** Context values for connect-node: the TLS client certificate of the connection, if any. */
export function requestContext(request: NodeRequest): ContextValues {
  const values = createContextValues();
  const peer = peerOf(request);
  if (peer) values.set(peerKey, peer);
  return values;
}

const peers = new WeakMap<object, PeerCertificate | undefined>();

/** The client certificate of the connection `request` came on; undefined over cleartext. */
export function peerOf(request: NodeRequest): PeerCertificate | undefined {
  if ("stream" in request) return peerOfStream(request.stream);
  return peerOfSocket(request.socket, request.socket);
}

/** The client certificate of the HTTP/2 connection `stream` belongs to; undefined over cleartext. */
export function peerOfStream(stream: http2.ServerHttp2Stream): PeerCertificate | undefined {
  const session = stream.session;
  return session ? peerOfSocket(session.socket, session) : undefined;
}

/** One TLS connection carries many requests; its certificate does not change, so it is read once per `key`. */
function peerOfSocket(socket: unknown, key: object): PeerCertificate | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  if (peers.has(key)) return peers.get(key);
  const certificate = socket.getPeerCertificate();
  const presented = certificate !== null && typeof certificate === "object" && Object.keys(certificate).length > 0;
  const cn = presented ? certificate.subject?.CN : undefined;
  const peer: PeerCertificate = {
    presented,
    authorized: presented && socket.authorized,
    commonName: Array.isArray(cn) ? cn[0] : cn,
    error: socket.authorizationError ? String(socket.authorizationError) : undefined,
  };
  peers.set(key, peer);
  return peer;
}


export interface ExposureSettings {
  host: string;
  tokensFile?: string;
  clientCaFile?: string;
  allowUnauthenticated?: boolean;
}

/**
 * The open-bind rule: without tokens or client certificates, anyone who can reach the port is
 * an admin, so only loopback is allowed unless the operator explicitly says to run open.
 */
export function checkExposure(settings: ExposureSettings): void {
  if (settings.tokensFile || settings.clientCaFile || settings.allowUnauthenticated || isLoopback(settings.host)) return;
  const message =
    `refusing to listen on ${settings.host} without authentication: anyone who reaches it could change routing. ` +
    "Configure auth.tokensFile (--tokens-file) or client certificates (tls.clientCaFile), " +
    "or pass --allow-unauthenticated (auth.allowUnauthenticated: true) to run open on purpose";
  throw new DomainError("invalid_argument", `server.host: ${message}`, [{ field: "server.host", description: message }]);
}
