/**
 * Typed failures of a reconcile pass. An applier (push: the kube API of a cluster; pull: an agent's
 * in-cluster client) throws ApplyError with what went wrong on the wire; the reconciler decides
 * whether that stops the pass for the whole cluster or only for one object, and words it as one
 * sentence an operator can act on.
 */
import type { ObjectRole } from "../core/desired-state.js";
import type { ClusterFailure, ClusterFailureKind, ObjectFailure, ObjectFailureKind } from "../core/pass-outcome.js";

export type ApplyProblem =
  /** No answer within the request timeout. */
  | "timeout"
  /** Connection refused or reset. */
  | "refused"
  /** The host name does not resolve. */
  | "dns"
  /** The server's certificate is not signed by the cluster's CA (or does not name the host). */
  | "tls"
  /** Any other transport failure. */
  | "network"
  /** 401. */
  | "unauthorized"
  /** 403 (RBAC). */
  | "forbidden"
  /** 404 with a Kubernetes Status body: the API answered, the thing is not there. */
  | "not-found"
  /** An answer that is not the Kubernetes API's (404 without a Status, no APIResourceList). */
  | "not-kubernetes"
  /** The cluster does not serve the object's kind. */
  | "unsupported-kind"
  /** 400, 409, 422 and other 4xx: the API refused this object. */
  | "rejected"
  /** 429. */
  | "throttled"
  /** 5xx. */
  | "server-error"
  /** The pass was cancelled (shutdown, the cluster deleted, disabled or re-pointed). */
  | "aborted";

export class ApplyError extends Error {
  override readonly name = "ApplyError";

  constructor(
    readonly problem: ApplyProblem,
    /** What happened, in a few words, e.g. `403 Forbidden: namespaces "a" is forbidden: …`. */
    readonly detail: string,
    /** How long the server asked us to wait (429 and 503 Retry-After); 0 when it did not say. */
    readonly retryAfterMs = 0,
    /** The request path, for messages about the endpoint. */
    readonly path = "",
  ) {
    super(detail);
  }
}

/** How messages name the cluster's endpoint and credentials (push: files; pull: the agent's own). */
export interface TargetNames {
  endpoint: string;
  /** E.g. "the token file /var/run/credentials/token". */
  token: string;
  /** E.g. "the CA file /var/run/credentials/ca.crt". */
  ca: string;
}

const CLUSTER_WIDE: ReadonlySet<ApplyProblem> = new Set([
  "timeout",
  "refused",
  "dns",
  "tls",
  "network",
  "unauthorized",
  "throttled",
  "server-error",
  "not-kubernetes",
]);

/**
 * Whether a problem with this object condemns the whole pass. The namespace and service account
 * are what every project-domain needs, so a 403 on them means the cluster cannot be provisioned
 * at all; on an extra template object it is that object's problem alone. Server-side apply creates
 * what is missing, so a 404 on a namespace means the endpoint is not a Kubernetes API; on a
 * namespaced object it means its namespace is not there (yet), the object's problem.
 */
export function stopsThePass(problem: ApplyProblem, role: ObjectRole): boolean {
  if (CLUSTER_WIDE.has(problem)) return true;
  if (role === "template") return false;
  if (problem === "not-found") return role === "namespace";
  return problem === "forbidden" || problem === "unsupported-kind";
}

/** The cluster-wide failure for an ApplyError that stops the pass. */
export function clusterFailureOf(error: ApplyError, names: TargetNames, requestTimeoutMs: number): ClusterFailure {
  const kind = clusterKindOf(error.problem);
  return { kind, message: clusterMessage(error, names, requestTimeoutMs) };
}

/** An object's own failure. */
export function objectFailureOf(error: ApplyError, key: string, object: { kind: string; apiVersion: string; source: string }): ObjectFailure {
  const kind = objectKindOf(error.problem);
  return { key, kind, message: objectMessage(kind, error, object) };
}

function clusterKindOf(problem: ApplyProblem): ClusterFailureKind {
  switch (problem) {
    case "unauthorized":
      return "unauthorized";
    case "forbidden":
      return "forbidden";
    case "not-found":
    case "not-kubernetes":
    case "unsupported-kind":
      return "wrong-endpoint";
    case "throttled":
    case "server-error":
      return "server-error";
    default:
      return "unreachable";
  }
}

function objectKindOf(problem: ApplyProblem): ObjectFailureKind {
  if (problem === "forbidden") return "forbidden";
  if (problem === "unsupported-kind") return "unsupported-kind";
  return "rejected";
}

function clusterMessage(error: ApplyError, names: TargetNames, requestTimeoutMs: number): string {
  const { detail } = error;
  switch (error.problem) {
    case "timeout":
      return `no answer within ${requestTimeoutMs} ms from ${names.endpoint}: check that the API server is up and reachable from the control plane (network, firewall)`;
    case "refused":
      return `connection refused by ${hostOf(names.endpoint)} (${detail}): check the cluster's endpoint and that its API server is up`;
    case "dns":
      return `cannot resolve ${hostOf(names.endpoint)} (${detail}): check the host name in the cluster's endpoint`;
    case "tls":
      return `TLS verification failed (${detail}): check that ${names.ca} holds the CA that signed ${hostOf(names.endpoint)}'s certificate`;
    case "network":
      return `cannot reach ${names.endpoint} (${detail}): check the cluster's endpoint and the network path to it`;
    case "unauthorized":
      return `the API server refused the token (${detail}): check ${names.token} — it may be wrong, expired or another cluster's`;
    case "forbidden":
      return `the identity may not ${forbiddenAction(error.path)} (${detail}): grant it RBAC to get, create and patch namespaces and serviceaccounts`;
    case "throttled":
      return `the API server is throttling requests (${detail}): retrying after ${Math.ceil(error.retryAfterMs / 1000)} s as it asked`;
    case "server-error":
      return `the API server failed (${detail}): retrying with backoff; check the API server's health if this persists`;
    default:
      return `the endpoint does not look like a Kubernetes API (${detail} under ${names.endpoint}): check the cluster's endpoint — scheme, host, port and no extra path`;
  }
}

function objectMessage(kind: ObjectFailureKind, error: ApplyError, object: { kind: string; apiVersion: string; source: string }): string {
  const fix = object.source.endsWith(".yaml") || object.source.endsWith(".yml") ? `the template ${object.source}` : `sync.${object.source}`;
  switch (kind) {
    case "unsupported-kind":
      return `the cluster does not serve ${object.kind} in ${object.apiVersion}: install it there (its CRD or API), or remove it from ${fix}`;
    case "forbidden":
      return `the identity may not apply ${object.kind} (${error.detail}): grant it RBAC for ${object.kind} objects, or remove it from ${fix}`;
    default:
      return `the API server rejected it (${error.detail}): fix ${fix}`;
  }
}

function forbiddenAction(path: string): string {
  if (/\/serviceaccounts(\/|$)/.test(path)) return "create service accounts";
  if (/\/namespaces(\/|$)/.test(path)) return "create namespaces";
  return `read the API's discovery (${path})`;
}

function hostOf(endpoint: string): string {
  try {
    return new URL(endpoint).host;
  } catch {
    return endpoint;
  }
}
