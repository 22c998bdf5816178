import { quoteValue, Violations } from "./errors.js";

/** Name of the pool every organization has and clusters join when no pool is named. */
export const DEFAULT_POOL_NAME = "default";

/** The secret stores a pool may use (seed: cluster pools). */
export const SECRET_STORE_TYPES = [
  "AWS_SECRETS_MANAGER",
  "GCP_SECRET_MANAGER",
  "AZURE_KEY_VAULT",
  "KUBERNETES",
  "VAULT",
  "OCI_VAULT",
] as const;

export type SecretStoreType = (typeof SECRET_STORE_TYPES)[number];

/** The shared data-plane contract of a pool. Empty strings mean "not set". */
export interface ClusterPoolConfig {
  objectStoreUri: string;
  objectStoreEndpoint: string;
  secretStoreType: SecretStoreType | "";
  secretStoreLocator: string;
  imageRegistryLocator: string;
}

export interface ClusterPool {
  org: string;
  name: string;
  config: ClusterPoolConfig;
  memberClusters: string[];
  createTime: Date;
  updateTime: Date;
  etag: string;
  /** The change-log revision that last changed it (0 before the log existed). */
  revision: number;
}

export const EMPTY_POOL_CONFIG: ClusterPoolConfig = {
  objectStoreUri: "",
  objectStoreEndpoint: "",
  secretStoreType: "",
  secretStoreLocator: "",
  imageRegistryLocator: "",
};

// A URI scheme per RFC 3986 followed by "://" and something to point at.
const URI_WITH_SCHEME = /^[a-z][a-z0-9+.-]*:\/\/\S+$/i;
const HTTP_URL = /^https?:\/\/\S+$/i;

/**
 * Adds a violation for every rule `config` breaks, with field paths under `prefix` (for example
 * `cluster_pool.config`).
 */
export function checkClusterPoolConfig(
  config: ClusterPoolConfig,
  prefix: string,
  violations: Violations,
): void {
  violations.add(`${prefix}.object_store_ref.uri`, checkObjectStoreUri(config.objectStoreUri));
  if (config.objectStoreEndpoint !== "" && !HTTP_URL.test(config.objectStoreEndpoint)) {
    violations.add(
      `${prefix}.object_store_ref.endpoint`,
      `${quoteValue(config.objectStoreEndpoint)} must be an http:// or https:// URL, or empty for the provider's own endpoint`,
    );
  }
  if (config.secretStoreType === "") {
    violations.add(
      `${prefix}.secret_store.type`,
      `is required: one of ${SECRET_STORE_TYPES.join(", ")}`,
    );
  }
}

function checkObjectStoreUri(uri: string): string | null {
  if (uri === "") return "is required, for example s3://my-bucket/prefix";
  if (!URI_WITH_SCHEME.test(uri)) {
    return `${quoteValue(uri)} must be a URI with a scheme, for example s3://my-bucket/prefix, gs://bucket or abfs://container@account.dfs.core.windows.net/path`;
  }
  return null;
}
