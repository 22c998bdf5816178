/**
 * Versioned schema migrations, applied in order at start inside one transaction each. Never edit
 * a migration that has shipped; add a new one.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/**
 * A migration's script for `engine`. The list holds each script once, in SQLite's words; for
 * PostgreSQL the few words that differ are translated: STRICT and WITHOUT ROWID are SQLite's
 * alone; INTEGER columns hold millisecond times, so BIGINT; REAL is DOUBLE PRECISION; and text
 * compares byte by byte (COLLATE "C"), as SQLite's BINARY does, so names sort and page alike.
 */
export function scriptFor(engine: string, script: string): string {
  if (engine !== "postgres") return script;
  return script
    .replace(/\)\s*STRICT(\s*,\s*WITHOUT ROWID)?/g, ")")
    .replace(/\bINTEGER\b/g, "BIGINT")
    .replace(/\bREAL\b/g, "DOUBLE PRECISION")
    .replace(/\bTEXT\b/g, 'TEXT COLLATE "C"');
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "cluster pools, clusters and queues",
    sql: `
      CREATE TABLE cluster_pools (
        org                     TEXT    NOT NULL,
        name                    TEXT    NOT NULL,
        object_store_uri        TEXT    NOT NULL,
        object_store_endpoint   TEXT    NOT NULL,
        secret_store_type       TEXT    NOT NULL,
        secret_store_locator    TEXT    NOT NULL,
        image_registry_locator  TEXT    NOT NULL,
        create_time             INTEGER NOT NULL,
        update_time             INTEGER NOT NULL,
        version                 INTEGER NOT NULL,
        PRIMARY KEY (org, name)
      ) STRICT;

      CREATE TABLE clusters (
        org           TEXT    NOT NULL,
        name          TEXT    NOT NULL,
        pool          TEXT    NOT NULL,
        endpoint      TEXT    NOT NULL,
        enabled       INTEGER NOT NULL CHECK (enabled IN (0, 1)),
        auth_kind     TEXT    NOT NULL CHECK (auth_kind IN ('bearer_token_file', 'in_cluster')),
        token_path    TEXT    NOT NULL,
        ca_cert_path  TEXT    NOT NULL,
        state         TEXT    NOT NULL CHECK (state IN ('ACTIVE', 'DRAINED')),
        create_time   INTEGER NOT NULL,
        update_time   INTEGER NOT NULL,
        version       INTEGER NOT NULL,
        PRIMARY KEY (org, name),
        FOREIGN KEY (org, pool) REFERENCES cluster_pools (org, name) ON DELETE RESTRICT
      ) STRICT;
      CREATE INDEX clusters_by_pool ON clusters (org, pool, name);

      -- A cluster-managed queue names its cluster in managed_by; it is removed with the cluster.
      CREATE TABLE queues (
        org          TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        pool         TEXT    NOT NULL,
        clusters     TEXT    NOT NULL,
        state        TEXT    NOT NULL CHECK (state IN ('ACTIVE', 'DRAINED')),
        managed_by   TEXT,
        create_time  INTEGER NOT NULL,
        update_time  INTEGER NOT NULL,
        version      INTEGER NOT NULL,
        PRIMARY KEY (org, name),
        FOREIGN KEY (org, pool) REFERENCES cluster_pools (org, name) ON DELETE RESTRICT,
        FOREIGN KEY (org, managed_by) REFERENCES clusters (org, name) ON DELETE CASCADE
      ) STRICT;
      CREATE INDEX queues_by_pool ON queues (org, pool, name);
    `,
  },
  {
    version: 2,
    description: "projects, cluster labels, execution cluster labels, default label",
    sql: `
      CREATE TABLE projects (
        org          TEXT    NOT NULL,
        id           TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        description  TEXT    NOT NULL,
        state        TEXT    NOT NULL CHECK (state IN ('ACTIVE', 'ARCHIVED')),
        create_time  INTEGER NOT NULL,
        update_time  INTEGER NOT NULL,
        version      INTEGER NOT NULL,
        PRIMARY KEY (org, id)
      ) STRICT;

      CREATE TABLE cluster_labels (
        org          TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        create_time  INTEGER NOT NULL,
        update_time  INTEGER NOT NULL,
        version      INTEGER NOT NULL,
        PRIMARY KEY (org, name)
      ) STRICT;

      -- A label may only name registered clusters; a named cluster cannot be deleted.
      CREATE TABLE cluster_label_members (
        org       TEXT    NOT NULL,
        label     TEXT    NOT NULL,
        cluster   TEXT    NOT NULL,
        weight    REAL    NOT NULL CHECK (weight > 0 AND weight <= 1),
        position  INTEGER NOT NULL,
        PRIMARY KEY (org, label, cluster),
        FOREIGN KEY (org, label) REFERENCES cluster_labels (org, name) ON DELETE CASCADE,
        FOREIGN KEY (org, cluster) REFERENCES clusters (org, name) ON DELETE RESTRICT
      ) STRICT;
      CREATE INDEX cluster_label_members_by_cluster ON cluster_label_members (org, cluster);

      -- Empty strings mark the unset parts of the scope, so the primary key covers every scope.
      CREATE TABLE execution_cluster_labels (
        org          TEXT    NOT NULL,
        project      TEXT    NOT NULL,
        domain       TEXT    NOT NULL,
        workflow     TEXT    NOT NULL,
        launch_plan  TEXT    NOT NULL,
        value        TEXT    NOT NULL,
        update_time  INTEGER NOT NULL,
        PRIMARY KEY (org, project, domain, workflow, launch_plan),
        FOREIGN KEY (org, project) REFERENCES projects (org, id) ON DELETE RESTRICT,
        FOREIGN KEY (org, value) REFERENCES cluster_labels (org, name) ON DELETE RESTRICT
      ) STRICT;
      CREATE INDEX execution_cluster_labels_by_value ON execution_cluster_labels (org, value);

      CREATE TABLE default_cluster_labels (
        org    TEXT NOT NULL PRIMARY KEY,
        label  TEXT NOT NULL,
        FOREIGN KEY (org, label) REFERENCES cluster_labels (org, name) ON DELETE RESTRICT
      ) STRICT;
    `,
  },
  {
    version: 3,
    description: "cluster sync: applied object hashes and per-cluster status",
    sql: `
      -- What was last applied to each cluster, so an unchanged object costs no request.
      CREATE TABLE sync_applied (
        org         TEXT    NOT NULL,
        cluster     TEXT    NOT NULL,
        object_key  TEXT    NOT NULL,
        hash        TEXT    NOT NULL,
        applied_at  INTEGER NOT NULL,
        PRIMARY KEY (org, cluster, object_key),
        FOREIGN KEY (org, cluster) REFERENCES clusters (org, name) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE cluster_sync_status (
        org                   TEXT    NOT NULL,
        cluster               TEXT    NOT NULL,
        last_attempt_time     INTEGER,
        last_success_time     INTEGER,
        objects_applied       INTEGER NOT NULL,
        objects_unchanged     INTEGER NOT NULL,
        objects_failed        INTEGER NOT NULL,
        consecutive_failures  INTEGER NOT NULL,
        last_error            TEXT    NOT NULL,
        PRIMARY KEY (org, cluster),
        FOREIGN KEY (org, cluster) REFERENCES clusters (org, name) ON DELETE CASCADE
      ) STRICT;
    `,
  },
  {
    version: 4,
    description: "change log, resource revisions and the sync leader lease",
    sql: `
      -- One row per changed resource, appended in the transaction that changed it. The revision
      -- is the row id, the newest plus one; compaction always keeps the newest entry, so a
      -- revision is never reused.
      CREATE TABLE change_log (
        revision     INTEGER PRIMARY KEY,
        org          TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        change_key   TEXT    NOT NULL,
        op           TEXT    NOT NULL CHECK (op IN ('put', 'delete')),
        state        TEXT,
        commit_time  INTEGER NOT NULL
      );

      -- Entries up to compacted_through have been removed; a reader behind it must re-list.
      CREATE TABLE change_log_meta (
        id                 INTEGER PRIMARY KEY CHECK (id = 1),
        compacted_through  INTEGER NOT NULL
      ) STRICT;
      INSERT INTO change_log_meta (id, compacted_through) VALUES (1, 0);

      ALTER TABLE cluster_pools ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE clusters ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE queues ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE projects ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE cluster_labels ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE execution_cluster_labels ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE default_cluster_labels ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE cluster_sync_status ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

      -- Who runs the sync loop for this database, until when.
      CREATE TABLE leases (
        name        TEXT    NOT NULL PRIMARY KEY,
        holder      TEXT    NOT NULL,
        acquired_at INTEGER NOT NULL,
        renewed_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 5,
    description: "conditions, last pass and provisioning truth per (cluster, project, domain)",
    sql: `
      ALTER TABLE cluster_sync_status ADD COLUMN conditions TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE cluster_sync_status ADD COLUMN object_failures TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE cluster_sync_status ADD COLUMN failure_kind TEXT NOT NULL DEFAULT '';
      ALTER TABLE cluster_sync_status ADD COLUMN pairs_provisioned INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE cluster_sync_status ADD COLUMN pairs_desired INTEGER NOT NULL DEFAULT 0;
      -- A digest of the provisioned set, so an unchanged set (every steady-state pass) costs no read.
      ALTER TABLE cluster_sync_status ADD COLUMN pairs_digest TEXT NOT NULL DEFAULT '';

      -- A row says: this project-domain's Namespace and ServiceAccount are on this cluster at the
      -- desired hash of the pass that wrote it. Routing sends P/D only where its row exists.
      CREATE TABLE cluster_provisioning (
        org      TEXT NOT NULL,
        cluster  TEXT NOT NULL,
        project  TEXT NOT NULL,
        domain   TEXT NOT NULL,
        PRIMARY KEY (org, cluster, project, domain),
        FOREIGN KEY (org, cluster) REFERENCES clusters (org, name) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 6,
    description: "pull-mode clusters: join tokens, agent credentials, the agent's lease",
    sql: `
      -- Pull mode: the agent connects out. A column of its own rather than a third auth_kind,
      -- because SQLite cannot change auth_kind's CHECK without rebuilding the table (pull-mode
      -- rows keep auth_kind 'in_cluster' and no endpoint, which the CHECK allows).
      ALTER TABLE clusters ADD COLUMN mode TEXT NOT NULL DEFAULT 'push' CHECK (mode IN ('push', 'pull'));
      -- What the agent reported and when it last renewed its lease. Heartbeats update these
      -- columns without a change-log entry (see AgentRepository).
      ALTER TABLE clusters ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';
      ALTER TABLE clusters ADD COLUMN agent_joined_at INTEGER;
      ALTER TABLE clusters ADD COLUMN agent_heartbeat_at INTEGER;

      -- One-time join tokens: only a digest is kept; used_at or revoked_at set means spent.
      CREATE TABLE join_tokens (
        digest      TEXT    NOT NULL PRIMARY KEY,
        org         TEXT    NOT NULL,
        cluster     TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        used_at     INTEGER,
        revoked_at  INTEGER,
        FOREIGN KEY (org, cluster) REFERENCES clusters (org, name) ON DELETE CASCADE
      ) STRICT;

      -- Agent credentials, bound to one cluster: looked up by id, checked against the digest.
      CREATE TABLE agent_credentials (
        id          TEXT    NOT NULL PRIMARY KEY,
        digest      TEXT    NOT NULL,
        org         TEXT    NOT NULL,
        cluster     TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        revoked_at  INTEGER,
        FOREIGN KEY (org, cluster) REFERENCES clusters (org, name) ON DELETE CASCADE
      ) STRICT;
    `,
  },
];
