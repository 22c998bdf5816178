import {
  DEFAULT_POOL_NAME,
  EMPTY_POOL_CONFIG,
  type ClusterPool,
  type ClusterPoolConfig,
  type SecretStoreType,
} from "../core/cluster-pool.js";
import { alreadyExists, failedPrecondition, listInWords, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import type { ChangeLog } from "./changes.js";
import type { Db } from "./database.js";
import { nextUpdateTime, type Page } from "./rows.js";

interface PoolRow {
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
  revision: number;
}


/**
 * Cluster pools in SQLite. Member clusters are never stored on the pool: they are read from the
 * clusters table, the one place a registration lives.
 */
export class ClusterPoolRepository {
  constructor(
    private readonly db: Db,
    private readonly changes: ChangeLog,
  ) {}

  /**
   * Stores the organization's default pool if it is not stored yet. Only writes call it, inside
   * their transaction, so a read or a rejected request never leaves a row behind; until then
   * reads answer with the default pool as it would be stored. It starts with an empty
   * configuration, which an operator fills in with UpdateClusterPool.
   */
  ensureDefaultPool(org: string): void {
    this.insert(org, DEFAULT_POOL_NAME, EMPTY_POOL_CONFIG, "ON CONFLICT (org, name) DO NOTHING");
  }

  create(org: string, name: string, config: ClusterPoolConfig): ClusterPool {
    return this.changes.write(() => {
      if (this.exists(org, name)) {
        throw alreadyExists(`cluster pool "${name}" already exists; use UpdateClusterPool to change its config`);
      }
      this.ensureDefaultPool(org);
      this.insert(org, name, config, "");
      return this.get(org, name);
    });
  }

  get(org: string, name: string): ClusterPool {
    const row = this.findRow(org, name) ?? (name === DEFAULT_POOL_NAME ? this.unstoredDefault(org) : undefined);
    if (!row) throw poolNotFound(name);
    return toPool(row, this.memberClusters(org, [name]).get(name) ?? []);
  }

  /** The pool as stored, or undefined (an unstored default pool is not a stored resource). */
  findStored(org: string, name: string): ClusterPool | undefined {
    const row = this.findRow(org, name);
    return row && toPool(row, this.memberClusters(org, [name]).get(name) ?? []);
  }

  /** Whether the pool exists (the default pool always does). */
  exists(org: string, name: string): boolean {
    return name === DEFAULT_POOL_NAME || this.findRow(org, name) !== undefined;
  }

  list(org: string, page: PageRequest): Page<ClusterPool> {
    const after = page.after?.[0] ?? "";
    const rows = this.db
      .prepare(`SELECT * FROM cluster_pools WHERE org = ? AND name > ? ORDER BY name LIMIT ?`)
      .all(org, after, page.size + 1) as PoolRow[];
    if (DEFAULT_POOL_NAME > after && !this.findRow(org, DEFAULT_POOL_NAME)) {
      rows.push(this.unstoredDefault(org));
      rows.sort((a, b) => (a.name < b.name ? -1 : 1));
    }
    const pageRows = rows.slice(0, page.size);
    const members = this.memberClusters(org, pageRows.map((row) => row.name));
    return {
      items: pageRows.map((row) => toPool(row, members.get(row.name) ?? [])),
      hasMore: rows.length > page.size,
    };
  }

  update(org: string, name: string, config: ClusterPoolConfig, etag: string): ClusterPool {
    return this.changes.write(() => {
      const current = this.get(org, name);
      if (name === DEFAULT_POOL_NAME) this.ensureDefaultPool(org);
      checkEtag("cluster pool", name, etag, current.etag);
      this.db
        .prepare(
          `UPDATE cluster_pools SET object_store_uri = @object_store_uri,
             object_store_endpoint = @object_store_endpoint, secret_store_type = @secret_store_type,
             secret_store_locator = @secret_store_locator, image_registry_locator = @image_registry_locator,
             update_time = @now, version = version + 1
           WHERE org = @org AND name = @name`,
        )
        .run({ org, name, now: nextUpdateTime(current), ...configColumns(config) });
      this.changes.record({ kind: "pool", org, name });
      return this.get(org, name);
    });
  }

  delete(org: string, name: string, etag: string): void {
    this.changes.write(() => {
      const current = this.get(org, name);
      if (name === DEFAULT_POOL_NAME) {
        throw failedPrecondition(
          `the default cluster pool cannot be deleted: clusters registered without a pool join it`,
        );
      }
      checkEtag("cluster pool", name, etag, current.etag);
      this.rejectWhileReferenced(org, name);
      this.db.prepare("DELETE FROM cluster_pools WHERE org = ? AND name = ?").run(org, name);
      this.changes.record({ kind: "pool", org, name });
    });
  }

  private insert(org: string, name: string, config: ClusterPoolConfig, onConflict: "" | "ON CONFLICT (org, name) DO NOTHING"): void {
    const { changes } = this.db
      .prepare(
        `INSERT INTO cluster_pools (org, name, object_store_uri, object_store_endpoint,
           secret_store_type, secret_store_locator, image_registry_locator, create_time, update_time, version)
         VALUES (@org, @name, @object_store_uri, @object_store_endpoint, @secret_store_type,
           @secret_store_locator, @image_registry_locator, @now, @now, 1) ${onConflict}`,
      )
      .run({ org, name, now: Date.now(), ...configColumns(config) });
    if (changes > 0) this.changes.record({ kind: "pool", org, name });
  }

  private rejectWhileReferenced(org: string, name: string): void {
    const clusters = this.db
      .prepare("SELECT name FROM clusters WHERE org = ? AND pool = ? ORDER BY name")
      .pluck()
      .all(org, name) as string[];
    const queues = this.db
      .prepare("SELECT name FROM queues WHERE org = ? AND pool = ? ORDER BY name")
      .pluck()
      .all(org, name) as string[];
    if (clusters.length === 0 && queues.length === 0) return;
    const references = [
      clusters.length ? `cluster(s) ${listInWords(clusters)}` : "",
      queues.length ? `queue(s) ${listInWords(queues)}` : "",
    ].filter(Boolean);
    throw failedPrecondition(
      `cluster pool "${name}" is still referenced by ${references.join(" and ")}; ` +
        `drain and delete those clusters (each takes its implicit queue with it) and drain and delete the other queues first`,
    );
  }

  /** The default pool of an organization that has not written anything yet. */
  private unstoredDefault(org: string): PoolRow {
    return { org, name: DEFAULT_POOL_NAME, ...configColumns(EMPTY_POOL_CONFIG), create_time: 0, update_time: 0, version: 0, revision: 0 };
  }

  private findRow(org: string, name: string): PoolRow | undefined {
    return this.db
      .prepare("SELECT * FROM cluster_pools WHERE org = ? AND name = ?")
      .get(org, name) as PoolRow | undefined;
  }

  private memberClusters(org: string, pools: readonly string[]): Map<string, string[]> {
    const members = new Map<string, string[]>();
    if (pools.length === 0) return members;
    const rows = this.db
      .prepare(
        `SELECT pool, name FROM clusters
         WHERE org = ? AND pool IN (SELECT value FROM json_each(?)) ORDER BY pool, name`,
      )
      .all(org, JSON.stringify(pools)) as { pool: string; name: string }[];
    for (const row of rows) {
      const list = members.get(row.pool) ?? [];
      list.push(row.name);
      members.set(row.pool, list);
    }
    return members;
  }
}

function poolNotFound(name: string) {
  return notFound(`cluster pool "${name}" does not exist; ListClusterPools shows the pools there are`);
}


function configColumns(config: ClusterPoolConfig) {
  return {
    object_store_uri: config.objectStoreUri,
    object_store_endpoint: config.objectStoreEndpoint,
    secret_store_type: config.secretStoreType,
    secret_store_locator: config.secretStoreLocator,
    image_registry_locator: config.imageRegistryLocator,
  };
}

function toPool(row: PoolRow, memberClusters: string[]): ClusterPool {
  return {
    org: row.org,
    name: row.name,
    config: {
      objectStoreUri: row.object_store_uri,
      objectStoreEndpoint: row.object_store_endpoint,
      secretStoreType: row.secret_store_type as SecretStoreType | "",
      secretStoreLocator: row.secret_store_locator,
      imageRegistryLocator: row.image_registry_locator,
    },
    memberClusters,
    createTime: new Date(row.create_time),
    updateTime: new Date(row.update_time),
    etag: makeEtag(row.version, row.update_time),
    revision: row.revision,
  };
}
