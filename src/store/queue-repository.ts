import type { Selectable } from "kysely";
import { alreadyExists, failedPrecondition, listInWords, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import { ALL_CLUSTERS, type Queue, type QueueState } from "../core/queue.js";
import type { ClusterPoolRepository } from "./cluster-pool-repository.js";
import { nextUpdateTime, type Page } from "./rows.js";
import type { ChangeLog } from "./changes.js";
import type { Tables } from "./schema.js";

type QueueRow = Selectable<Tables["queues"]>;

export interface QueueFilter {
  pool: string;
  state: QueueState | "";
}

export interface NewQueue {
  org: string;
  name: string;
  pool: string;
  clusters: string[];
}

/**
 * Queues. Queues and clusters share one namespace of names per organization, so a workload
 * addressed by name is never ambiguous.
 */
export class QueueRepository {
  constructor(
    private readonly changes: ChangeLog,
    private readonly pools: ClusterPoolRepository,
  ) {}

  /** The current unit of work's transaction, or the shared handle. */
  private get db() {
    return this.changes.db;
  }

  create(queue: NewQueue): Promise<Queue> {
    return this.changes.write(async () => {
      await this.requirePool(queue.org, queue.pool);
      await this.requireFreeName(queue.org, queue.name);
      await this.requireClustersOfPool(queue.org, queue.pool, queue.clusters);
      await this.pools.ensureDefaultPool(queue.org);
      await this.insert(queue, null);
      await this.changes.record({ kind: "queue", org: queue.org, name: queue.name });
      return this.get(queue.org, queue.name);
    });
  }

  /** Inserts a queue row; `managedBy` names the cluster an implicit queue goes with. */
  async insert(queue: NewQueue, managedBy: string | null): Promise<void> {
    const now = Date.now();
    await this.db
      .insertInto("queues")
      .values({
        org: queue.org,
        name: queue.name,
        pool: queue.pool,
        clusters: JSON.stringify(queue.clusters),
        state: "ACTIVE",
        managed_by: managedBy,
        create_time: now,
        update_time: now,
        version: 1,
      })
      .execute();
  }

  async get(org: string, name: string): Promise<Queue> {
    const queue = await this.find(org, name);
    if (!queue) throw notFound(`queue "${name}" does not exist; ListQueues shows the queues there are`);
    return queue;
  }

  async list(org: string, filter: QueueFilter, page: PageRequest): Promise<Page<Queue>> {
    const rows = await this.db
      .selectFrom("queues")
      .selectAll()
      .where("org", "=", org)
      .where("name", ">", page.after?.[0] ?? "")
      .$if(filter.pool !== "", (query) => query.where("pool", "=", filter.pool))
      .$if(filter.state !== "", (query) => query.where("state", "=", filter.state))
      .orderBy("name")
      .limit(page.size + 1)
      .execute();
    return { items: rows.slice(0, page.size).map(toQueue), hasMore: rows.length > page.size };
  }

  /** Replaces the selector; `pool`, when given, must be the queue's own (a queue never leaves its pool). */
  update(org: string, name: string, clusters: string[], etag: string, pool = ""): Promise<Queue> {
    return this.changes.write(async () => {
      const current = await this.requireOwnQueue(org, name, "edited");
      checkEtag("queue", name, etag, current.etag);
      if (pool !== "" && pool !== current.pool) {
        throw failedPrecondition(`queue "${name}" belongs to pool "${current.pool}" and cannot move to pool "${pool}"; create a queue in that pool instead`);
      }
      await this.requireClustersOfPool(org, current.pool, clusters);
      await this.db
        .updateTable("queues")
        .set((eb) => ({ clusters: JSON.stringify(clusters), update_time: nextUpdateTime(current), version: eb("version", "+", 1) }))
        .where("org", "=", org)
        .where("name", "=", name)
        .execute();
      await this.changes.record({ kind: "queue", org, name });
      return this.get(org, name);
    });
  }

  setState(org: string, name: string, state: QueueState): Promise<Queue> {
    return this.changes.write(async () => {
      const verb = state === "DRAINED" ? "drained" : "activated";
      const current = await this.requireOwnQueue(org, name, `${verb} on its own (use ${state === "DRAINED" ? "DrainCluster" : "ActivateCluster"})`);
      await this.writeState(current, state);
      await this.changes.record({ kind: "queue", org, name });
      return this.get(org, name);
    });
  }

  /** Moves a queue to `state`; a no-op when it is already there. */
  async writeState(current: Queue, state: QueueState): Promise<void> {
    if (current.state === state) return;
    await this.db
      .updateTable("queues")
      .set((eb) => ({ state, update_time: nextUpdateTime(current), version: eb("version", "+", 1) }))
      .where("org", "=", current.org)
      .where("name", "=", current.name)
      .execute();
  }

  delete(org: string, name: string, etag: string): Promise<void> {
    return this.changes.write(async () => {
      const current = await this.requireOwnQueue(org, name, "deleted on its own (it is removed with DeleteCluster)");
      checkEtag("queue", name, etag, current.etag);
      if (current.state !== "DRAINED") {
        throw failedPrecondition(`queue "${name}" is ACTIVE; drain it first (DrainQueue) so no new workloads are routed through it, then delete it`);
      }
      await this.db.deleteFrom("queues").where("org", "=", org).where("name", "=", name).execute();
      await this.changes.record({ kind: "queue", org, name });
    });
  }

  async find(org: string, name: string): Promise<Queue | undefined> {
    const row = await this.findRow(org, name);
    return row && toQueue(row);
  }

  /** Every queue of every organization, for the routing index. */
  async all(): Promise<Queue[]> {
    return (await this.db.selectFrom("queues").selectAll().orderBy("org").orderBy("name").execute()).map(toQueue);
  }

  /** Names of the queues, other than a cluster's own, whose selector names `cluster`. */
  async queuesNaming(org: string, cluster: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom("queues")
      .select(["name", "clusters"])
      .where("org", "=", org)
      .where((eb) => eb.or([eb("managed_by", "is", null), eb("managed_by", "<>", cluster)]))
      .orderBy("name")
      .execute();
    // The selector is a JSON list; reading it here keeps the query the same on every engine.
    return rows.filter((row) => (JSON.parse(row.clusters) as string[]).includes(cluster)).map((row) => row.name);
  }

  /** Throws ALREADY_EXISTS when a queue or a cluster already has `name`. */
  async requireFreeName(org: string, name: string): Promise<void> {
    const queue = await this.findRow(org, name);
    if (queue) {
      throw alreadyExists(
        queue.managed_by
          ? `"${name}" is already taken by the implicit queue of cluster "${name}" in pool "${queue.pool}"; clusters and queues share one set of names`
          : `queue "${name}" already exists in pool "${queue.pool}"; clusters and queues share one set of names`,
      );
    }
    const cluster = await this.db.selectFrom("clusters").select("pool").where("org", "=", org).where("name", "=", name).executeTakeFirst();
    if (cluster !== undefined) {
      throw alreadyExists(`"${name}" is already the name of a cluster in pool "${cluster.pool}"; clusters and queues share one set of names`);
    }
  }

  async requirePool(org: string, pool: string): Promise<void> {
    if (!(await this.pools.exists(org, pool))) {
      throw failedPrecondition(`cluster pool "${pool}" does not exist; create it first (CreateClusterPool) or leave the pool empty for "default"`);
    }
  }

  private async requireClustersOfPool(org: string, pool: string, clusters: readonly string[]): Promise<void> {
    if (clusters.length === 1 && clusters[0] === ALL_CLUSTERS) return;
    const rows = clusters.length
      ? await this.db.selectFrom("clusters").select(["name", "pool"]).where("org", "=", org).where("name", "in", clusters).execute()
      : [];
    const poolOf = new Map(rows.map((row) => [row.name, row.pool]));
    const missing = clusters.filter((name) => !poolOf.has(name));
    if (missing.length) {
      throw failedPrecondition(`cluster(s) ${listInWords(missing)} are not registered; register them (CreateCluster) into pool "${pool}" first`);
    }
    const outside = clusters.filter((name) => poolOf.get(name) !== pool);
    if (outside.length) {
      throw failedPrecondition(
        `${outside.map((name) => `cluster "${name}" is in pool "${poolOf.get(name)}"`).join(", ")}; ` +
          `a queue of pool "${pool}" only routes to clusters of that pool`,
      );
    }
  }

  private async requireOwnQueue(org: string, name: string, action: string): Promise<Queue> {
    const current = await this.get(org, name);
    if (current.managedBy) {
      throw failedPrecondition(`queue "${name}" is the implicit queue of cluster "${current.managedBy}" and cannot be ${action}`);
    }
    return current;
  }

  private findRow(org: string, name: string): Promise<QueueRow | undefined> {
    return this.db.selectFrom("queues").selectAll().where("org", "=", org).where("name", "=", name).executeTakeFirst();
  }
}

function toQueue(row: QueueRow): Queue {
  return {
    org: row.org,
    name: row.name,
    pool: row.pool,
    clusters: JSON.parse(row.clusters) as string[],
    state: row.state as QueueState,
    managedBy: row.managed_by,
    createTime: new Date(row.create_time),
    updateTime: new Date(row.update_time),
    etag: makeEtag(row.version, row.update_time),
    revision: row.revision,
  };
}
