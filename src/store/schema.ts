import type { Generated, Kysely } from "kysely";

/**
 * The tables as the query layer sees them (see migrations.ts for how they are made). Times are
 * milliseconds since the epoch; booleans are 0 or 1. Columns with a default are Generated, so an
 * insert may leave them out.
 */
export interface Tables {
  schema_migrations: { version: number; description: string; applied_at: number };
  cluster_pools: {
    org: string;
    name: string;
    object_store_uri: string;
    object_store_endpoint: string;
    secret_store_type: string;
    secret_store_locator: string;
    image_registry_locator: string;
    create_time: number;
    update_time: number;
    version: number;
    revision: Generated<number>;
  };
  clusters: {
    org: string;
    name: string;
    pool: string;
    endpoint: string;
    enabled: number;
    auth_kind: string;
    token_path: string;
    ca_cert_path: string;
    state: string;
    create_time: number;
    update_time: number;
    version: number;
    revision: Generated<number>;
    mode: Generated<string>;
    agent_version: Generated<string>;
    agent_joined_at: number | null;
    agent_heartbeat_at: number | null;
  };
  queues: {
    org: string;
    name: string;
    pool: string;
    /** JSON array of cluster names, or ["*"]. */
    clusters: string;
    state: string;
    managed_by: string | null;
    create_time: number;
    update_time: number;
    version: number;
    revision: Generated<number>;
  };
  projects: {
    org: string;
    id: string;
    name: string;
    description: string;
    state: string;
    create_time: number;
    update_time: number;
    version: number;
    revision: Generated<number>;
  };
  cluster_labels: {
    org: string;
    name: string;
    create_time: number;
    update_time: number;
    version: number;
    revision: Generated<number>;
  };
  cluster_label_members: { org: string; label: string; cluster: string; weight: number; position: number };
  execution_cluster_labels: {
    org: string;
    project: string;
    domain: string;
    workflow: string;
    launch_plan: string;
    value: string;
    update_time: number;
    revision: Generated<number>;
  };
  default_cluster_labels: { org: string; label: string; revision: Generated<number> };
  sync_applied: { org: string; cluster: string; object_key: string; hash: string; applied_at: number };
  cluster_sync_status: {
    org: string;
    cluster: string;
    last_attempt_time: number | null;
    last_success_time: number | null;
    objects_applied: number;
    objects_unchanged: number;
    objects_failed: number;
    consecutive_failures: number;
    last_error: string;
    /** JSON array of conditions. */
    conditions: Generated<string>;
    /** JSON array of object failures. */
    object_failures: Generated<string>;
    failure_kind: Generated<string>;
    pairs_provisioned: Generated<number>;
    pairs_desired: Generated<number>;
    pairs_digest: Generated<string>;
    revision: Generated<number>;
  };
  cluster_provisioning: { org: string; cluster: string; project: string; domain: string };
  change_log: {
    revision: number;
    org: string;
    kind: string;
    name: string;
    /** JSON of the change's key. */
    change_key: string;
    op: "put" | "delete";
    /** JSON of the resource as the change left it; null when deleted. */
    state: string | null;
    commit_time: number;
  };
  change_log_meta: { id: number; compacted_through: number };
  leases: { name: string; holder: string; acquired_at: number; renewed_at: number; expires_at: number };
  join_tokens: {
    digest: string;
    org: string;
    cluster: string;
    created_at: number;
    expires_at: number;
    used_at: number | null;
    revoked_at: number | null;
  };
  agent_credentials: {
    id: string;
    digest: string;
    org: string;
    cluster: string;
    created_at: number;
    expires_at: number;
    revoked_at: number | null;
  };
}

/** What every query runs on: the shared handle, or the connection of the current unit of work. */
export type Executor = Kysely<Tables>;
