import { isAbsolute, normalize } from "node:path/posix";
import { quoteValue, Violations } from "./errors.js";
import type { ClusterFailureKind, Condition, ObjectFailure } from "./pass-outcome.js";

export type ClusterState = "ACTIVE" | "DRAINED";

/** How the control plane reaches a cluster's API server. Only paths are kept, never contents. */
export type ClusterAuth =
  | { kind: "bearer_token_file"; tokenPath: string; caCertPath: string }
  | { kind: "in_cluster" }
  /** Pull mode: the cluster's agent connects out; the control plane holds nothing of the cluster. */
  | { kind: "agent" };

/** Push: the control plane connects to the cluster's API. Pull: the cluster's agent connects out. */
export type ClusterMode = "push" | "pull";

export function modeOf(cluster: Pick<Cluster, "auth">): ClusterMode {
  return cluster.auth.kind === "agent" ? "pull" : "push";
}

/** What a pull-mode cluster's agent reported, and when it last renewed its lease. */
export interface AgentPresence {
  version: string;
  /** When the agent exchanged its join token; null until it did. */
  joinedAt: Date | null;
  /** Its last heartbeat, by the database's clock; null until it joined. */
  heartbeatAt: Date | null;
}

/** The outcome of the cluster-sync loop on one cluster. */
export interface SyncStatus {
  lastAttemptTime: Date | null;
  lastSuccessTime: Date | null;
  objectsApplied: number;
  objectsUnchanged: number;
  objectsFailed: number;
  consecutiveFailures: number;
  lastError: string;
  /** Reachable, Authorized, Provisioned, Degraded after the last pass. */
  conditions: Condition[];
  /** The objects that failed on their own in the last pass (bounded). */
  objectFailures: ObjectFailure[];
  /** What stopped the last pass for the whole cluster; "" when nothing did. */
  failureKind: ClusterFailureKind | "";
  /** Project-domains provisioned on the cluster, of those it should have. */
  projectDomainsProvisioned: number;
  projectDomainsDesired: number;
  /** Identifies the provisioned set: equal digests, equal sets (readers skip re-reading it). */
  provisionedDigest: string;
}

export interface Cluster {
  org: string;
  name: string;
  pool: string;
  endpoint: string;
  enabled: boolean;
  auth: ClusterAuth;
  state: ClusterState;
  createTime: Date;
  updateTime: Date;
  etag: string;
  /** The change-log revision that last changed it (0 before the log existed). */
  revision: number;
  /** Null until the sync loop (or, in pull mode, the agent) has reported a pass. */
  sync: SyncStatus | null;
  /** Pull mode only; null in push mode. */
  agent: AgentPresence | null;
}

/** The fields an operator may change after registration; the pool is not among them. */
export interface ClusterChanges {
  endpoint?: string;
  enabled?: boolean;
  auth?: ClusterAuth;
}

const ENDPOINT_REQUIRED =
  "is required to enable a cluster (unless auth is in_cluster): the https URL of its Kubernetes API, for example https://10.0.0.1:443";
const IN_CLUSTER_ENDPOINT =
  "must be empty with in_cluster auth: it always uses the API server of the cluster the control plane runs in";

const AGENT_ENDPOINT =
  "must be empty in pull mode (auth agent): the cluster's agent connects to the control plane, nothing connects to the cluster";

export const UPDATABLE_CLUSTER_FIELDS = ["endpoint", "enabled", "auth"] as const;

/**
 * How a cluster's endpoint, auth and enabled flag fit together, whatever else is stored: in-cluster
 * auth always talks to the API server the control plane runs in, so it takes no endpoint; any
 * other cluster needs one to be enabled (it may be registered disabled ahead of knowing its
 * address, as an import of a configuration with placeholders does). Returns the problem, or null.
 */
export function endpointProblem(endpoint: string, auth: ClusterAuth | undefined, enabled: boolean): string | null {
  if (auth?.kind === "in_cluster") return endpoint === "" ? null : IN_CLUSTER_ENDPOINT;
  if (auth?.kind === "agent") return endpoint === "" ? null : AGENT_ENDPOINT;
  return endpoint === "" && enabled ? ENDPOINT_REQUIRED : null;
}

/** Checks an endpoint: an https URL of a Kubernetes API server, fitting its auth (endpointProblem). */
export function checkEndpoint(endpoint: string, auth: ClusterAuth | undefined, enabled: boolean, field: string, violations: Violations): void {
  violations.add(field, endpointProblem(endpoint, auth, enabled));
  if (endpoint === "") return;
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== "https:" || url.hostname === "") {
    violations.add(field, `${quoteValue(endpoint)} must be an https:// URL, for example https://10.0.0.1:443 (TLS is always verified)`);
  } else if (url.username || url.password) {
    violations.add(field, "must not carry credentials; use auth.bearer_token_file");
  }
}

/** Whether two registrations point at the same API server with the same identity. */
export function sameTarget(a: Pick<Cluster, "endpoint" | "auth">, b: Pick<Cluster, "endpoint" | "auth">): boolean {
  return a.endpoint === b.endpoint && JSON.stringify(a.auth) === JSON.stringify(b.auth);
}

/** Where credential files may be read from by default: the mount paths of the multi-cluster guide. */
export const DEFAULT_CREDENTIAL_DIRECTORIES = ["/var/run/credentials", "/etc/credentials"] as const;

/**
 * Checks auth: a method is required; token and CA paths are absolute files inside one of the
 * credential directories. The server reads those files and sends the token to the cluster's
 * endpoint, so an unrestricted path would let an API caller ship any file of the server's to a host
 * of their choosing.
 */
export function checkAuth(auth: ClusterAuth | undefined, credentialDirectories: readonly string[], field: string, violations: Violations): void {
  if (!auth) {
    violations.add(field, "is required: bearer_token_file { token_path, ca_cert_path } or in_cluster {}; or leave out both endpoint and auth to register a pull-mode cluster, whose agent connects out");
    return;
  }
  if (auth.kind === "in_cluster" || auth.kind === "agent") return;
  violations.add(`${field}.bearer_token_file.token_path`, checkCredentialPath(auth.tokenPath, credentialDirectories));
  violations.add(`${field}.bearer_token_file.ca_cert_path`, checkCredentialPath(auth.caCertPath, credentialDirectories));
}

/**
 * Why `path` may not be read as a credential, or null. A check of the text only: the files may
 * not exist yet, and symbolic links are followed (and checked) each time the files are read.
 * `..` is refused because the kernel resolves `link/..` as the parent of the link's target, not
 * of the link, so no text check can tell where it leads.
 */
export function checkCredentialPath(path: string, credentialDirectories: readonly string[]): string | null {
  if (path === "") return "is required, for example /var/run/credentials/dataplane_1_token";
  if (path.includes("\0")) return "must not contain NUL characters";
  if (!isAbsolute(path)) return `${quoteValue(path)} must be an absolute path, for example /var/run/credentials/dataplane_1_token`;
  if (path.split("/").some((segment) => segment === "." || segment === "..")) {
    return `${quoteValue(path)} must not contain "." or ".." segments: name the file directly, for example /var/run/credentials/dataplane_1_token`;
  }
  const resolved = normalize(path);
  if (!credentialDirectories.some((dir) => resolved.startsWith(`${normalize(dir).replace(/\/+$/, "")}/`))) {
    return `${quoteValue(path)} is outside the credential directories (${credentialDirectories.join(", ")}); mount the Secret in one of them, or add its directory to sync.credentialDirectories`;
  }
  return null;
}
