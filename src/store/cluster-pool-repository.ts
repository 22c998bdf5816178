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
import type { Selectable } from "kysely";
import type { ChangeLog } from "./changes.js";
import type { Tables } from "./schema.js";
import { nextUpdateTime, type Page } from "./rows.js";

type PoolRow = Selectable<Tables["cluster_pools"]>;

/**
 * Cluster pools. Member clusters are never stored on the pool: they are read from the clusters
 * table, the one place a registration lives.
 */
export class ClusterPoolRepository {
  constructor(private readonly changes: ChangeLog) {}

  /** The current unit of work's transaction, or the shared handle. */
  private get db() {
    return this.changes.db;
  }

  /**
   * Stores the organization's default pool if it is not stored yet. Only writes call it, inside
   * their transaction, so a read or a rejected request never leaves a row behind; until then
   * reads answer with the default pool as it would be stored. It starts with an empty
   * configuration, which an operator fills in with UpdateClusterPool.
   */
  async ensureDefaultPool(org: string): Promise<void> {
    await this.insert(org, DEFAULT_POOL_NAME, EMPTY_POOL_CONFIG, "skip-existing");
  }

  create(org: string, name: string, config: ClusterPoolConfig): Promise<ClusterPool> {
    return this.changes.write(async () => {
      if (await this.exists(org, name)) {
        throw alreadyExists(`cluster pool "${name}" already exists; use UpdateClusterPool to change its config`);
      }
      await this.ensureDefaultPool(org);
      await this.insert(org, name, config, "fail-on-existing");
      return this.get(org, name);
    });
  }

  async get(org: string, name: string): Promise<ClusterPool> {
    const row = (await this.findRow(org, name)) ?? (name === DEFAULT_POOL_NAME ? this.unstoredDefault(org) : undefined);
    if (!row) throw poolNotFound(name);
    return toPool(row, (await this.memberClusters(org, [name])).get(name) ?? []);
  }

  /** The pool as stored, or undefined (an unstored default pool is not a stored resource). */
  async findStored(org: string, name: string): Promise<ClusterPool | undefined> {
    const row = await this.findRow(org, name);
    return row && toPool(row, (await this.memberClusters(org, [name])).get(name) ?? []);
  }

  /** Whether the pool exists (the default pool always does). */
  async exists(org: string, name: string): Promise<boolean> {
    return name === DEFAULT_POOL_NAME || (await this.findRow(org, name)) !== undefined;
  }

  async list(org: string, page: PageRequest): Promise<Page<ClusterPool>> {
    const after = page.after?.[0] ?? "";
    const rows: PoolRow[] = await this.db
      .selectFrom("cluster_pools")
      .selectAll()
      .where("org", "=", org)
      .where("name", ">", after)
      .orderBy("name")
      .limit(page.size + 1)
      .execute();
    if (DEFAULT_POOL_NAME > after && !(await this.findRow(org, DEFAULT_POOL_NAME))) {
      rows.push(this.unstoredDefault(org));
      rows.sort((a, b) => (a.name < b.name ? -1 : 1));
    }
    const pageRows = rows.slice(0, page.size);
    const members = await this.memberClusters(org, pageRows.map((row) => row.name));
    return {
      items: pageRows.map((row) => toPool(row, members.get(row.name) ?? [])),
      hasMore: rows.length > page.size,
    };
  }

  update(org: string, name: string, config: ClusterPoolConfig, etag: string): Promise<ClusterPool> {
    return this.changes.write(async () => {
      const current = await this.get(org, name);
      if (name === DEFAULT_POOL_NAME) await this.ensureDefaultPool(org);
      checkEtag("cluster pool", name, etag, current.etag);
      await this.db
        .updateTable("cluster_pools")
        .set((eb) => ({ ...configColumns(config), update_time: nextUpdateTime(current), version: eb("version", "+", 1) }))
        .where("org", "=", org)
        .where("name", "=", name)
        .execute();
      await this.changes.record({ kind: "pool", org, name });
      return this.get(org, name);
    });
  }

  delete(org: string, name: string, etag: string): Promise<void> {
    return this.changes.write(async () => {
      const current = await this.get(org, name);
      if (name === DEFAULT_POOL_NAME) {
        throw failedPrecondition(
          `the default cluster pool cannot be deleted: clusters registered without a pool join it`,
        );
      }
      checkEtag("cluster pool", name, etag, current.etag);
      await this.rejectWhileReferenced(org, name);
      await this.db.deleteFrom("cluster_pools").where("org", "=", org).where("name", "=", name).execute();
      await this.changes.record({ kind: "pool", org, name });
    });
  }

  private async insert(org: string, name: string, config: ClusterPoolConfig, existing: "skip-existing" | "fail-on-existing"): Promise<void> {
    const now = Date.now();
    const result = await this.db
      .insertInto("cluster_pools")
      .values({ org, name, ...configColumns(config), create_time: now, update_time: now, version: 1 })
      .$if(existing === "skip-existing", (insert) => insert.onConflict((conflict) => conflict.columns(["org", "name"]).doNothing()))
      .executeTakeFirst();
    if (Number(result.numInsertedOrUpdatedRows ?? 0) > 0) await this.changes.record({ kind: "pool", org, name });
  }

  private async rejectWhileReferenced(org: string, name: string): Promise<void> {
    const namesIn = async (table: "clusters" | "queues") =>
      (await this.db.selectFrom(table).select("name").where("org", "=", org).where("pool", "=", name).orderBy("name").execute()).map(
        (row) => row.name,
      );
    const clusters = await namesIn("clusters");
    const queues = await namesIn("queues");
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

  private findRow(org: string, name: string): Promise<PoolRow | undefined> {
    return this.db.selectFrom("cluster_pools").selectAll().where("org", "=", org).where("name", "=", name).executeTakeFirst();
  }

  private async memberClusters(org: string, pools: readonly string[]): Promise<Map<string, string[]>> {
    const members = new Map<string, string[]>();
    if (pools.length === 0) return members;
    const rows = await this.db
      .selectFrom("clusters")
      .select(["pool", "name"])
      .where("org", "=", org)
      .where("pool", "in", pools)
      .orderBy("pool")
      .orderBy("name")
      .execute();
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
