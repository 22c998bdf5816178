import { isAbsolute } from "node:path/posix";
import { Violations } from "./errors.js";

export type ClusterState = "ACTIVE" | "DRAINED";

/** How the control plane reaches a cluster's API server. Only paths are kept, never contents. */
export type ClusterAuth =
  | { kind: "bearer_token_file"; tokenPath: string; caCertPath: string }
  | { kind: "in_cluster" };

/** The outcome of the cluster-sync loop on one cluster. */
export interface SyncStatus {
  lastAttemptTime: Date | null;
  lastSuccessTime: Date | null;
  objectsApplied: number;
  objectsUnchanged: number;
  objectsFailed: number;
  consecutiveFailures: number;
  lastError: string;
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
  /** Null until the sync loop has tried the cluster. */
  sync: SyncStatus | null;
}

/** The fields an operator may change after registration; the pool is not among them. */
export interface ClusterChanges {
  endpoint?: string;
  enabled?: boolean;
  auth?: ClusterAuth;
}

export const ENDPOINT_REQUIRED =
  "is required to enable a cluster (unless auth is in_cluster): the https URL of its Kubernetes API, for example https://10.0.0.1:443";

export const UPDATABLE_CLUSTER_FIELDS = ["endpoint", "enabled", "auth"] as const;

/**
 * Checks an endpoint: an https URL of a Kubernetes API server. It may be empty for in-cluster auth,
 * and while the cluster is disabled (registered ahead of knowing its address, as an import of a
 * configuration with placeholders does); enabling such a cluster needs an endpoint.
 */
export function checkEndpoint(endpoint: string, auth: ClusterAuth | undefined, enabled: boolean, field: string, violations: Violations): void {
  if (endpoint === "") {
    if (auth?.kind !== "in_cluster" && enabled) violations.add(field, ENDPOINT_REQUIRED);
    return;
  }
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== "https:" || url.hostname === "") {
    violations.add(field, `"${endpoint}" must be an https:// URL, for example https://10.0.0.1:443 (TLS is always verified)`);
  } else if (url.username || url.password) {
    violations.add(field, "must not carry credentials; use auth.bearer_token_file");
  }
}

/** Checks auth: a method is required; token and CA paths are absolute files, as mounted from a Secret. */
export function checkAuth(auth: ClusterAuth | undefined, field: string, violations: Violations): void {
  if (!auth) {
    violations.add(field, "is required: bearer_token_file { token_path, ca_cert_path } or in_cluster {}");
    return;
  }
  if (auth.kind === "bearer_token_file") {
    violations.add(`${field}.bearer_token_file.token_path`, checkCredentialPath(auth.tokenPath));
    violations.add(`${field}.bearer_token_file.ca_cert_path`, checkCredentialPath(auth.caCertPath));
  }
}

function checkCredentialPath(path: string): string | null {
  if (path === "") return "is required, for example /var/run/credentials/dataplane_1_token";
  if (path.includes("\0")) return "must not contain NUL characters";
  if (!isAbsolute(path)) return `"${path}" must be an absolute path, for example /var/run/credentials/dataplane_1_token`;
  return null;
}
