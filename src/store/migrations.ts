/**
 * Versioned schema migrations, applied in order at start inside one transaction each. Never edit
 * a migration that has shipped; add a new one.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
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
];
