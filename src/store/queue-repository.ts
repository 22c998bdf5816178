import { alreadyExists, failedPrecondition, listInWords, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import { ALL_CLUSTERS, type Queue, type QueueState } from "../core/queue.js";
import type { ClusterPoolRepository } from "./cluster-pool-repository.js";
import { nextUpdateTime, type Page } from "./rows.js";
import type { ChangeLog } from "./changes.js";
import type { Db } from "./database.js";

interface QueueRow {
  org: string;
  name: string;
  pool: string;
  clusters: string;
  state: string;
  managed_by: string | null;
  create_time: number;
  update_time: number;
  version: number;
  revision: number;
}

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
 * Queues in SQLite. Queues and clusters share one namespace of names per organization, so a
 * workload addressed by name is never ambiguous.
 */
export class QueueRepository {
  constructor(
    private readonly db: Db,
    private readonly changes: ChangeLog,
    private readonly pools: ClusterPoolRepository,
  ) {}

  create(queue: NewQueue): Queue {
    return this.changes.write(() => {
      this.requirePool(queue.org, queue.pool);
      this.requireFreeName(queue.org, queue.name);
      this.requireClustersOfPool(queue.org, queue.pool, queue.clusters);
      this.pools.ensureDefaultPool(queue.org);
      this.insert(queue, null);
      this.changes.record({ kind: "queue", org: queue.org, name: queue.name });
      return this.get(queue.org, queue.name);
    });
  }

  /** Inserts a queue row; `managedBy` names the cluster an implicit queue goes with. */
  insert(queue: NewQueue, managedBy: string | null): void {
    const now = Date.now();
    this.db
      .prepare(
        `INSERT INTO queues (org, name, pool, clusters, state, managed_by, create_time, update_time, version)
         VALUES (?, ?, ?, ?, 'ACTIVE', ?, ?, ?, 1)`,
      )
      .run(queue.org, queue.name, queue.pool, JSON.stringify(queue.clusters), managedBy, now, now);
  }

  get(org: string, name: string): Queue {
    const queue = this.find(org, name);
    if (!queue) throw notFound(`queue "${name}" does not exist; ListQueues shows the queues there are`);
    return queue;
  }

  list(org: string, filter: QueueFilter, page: PageRequest): Page<Queue> {
    const rows = this.db
      .prepare(
        `SELECT * FROM queues
         WHERE org = @org AND name > @after
           AND (@pool = '' OR pool = @pool) AND (@state = '' OR state = @state)
         ORDER BY name LIMIT @limit`,
      )
      .all({ org, after: page.after?.[0] ?? "", pool: filter.pool, state: filter.state, limit: page.size + 1 }) as QueueRow[];
    return { items: rows.slice(0, page.size).map(toQueue), hasMore: rows.length > page.size };
  }

  /** Replaces the selector; `pool`, when given, must be the queue's own (a queue never leaves its pool). */
  update(org: string, name: string, clusters: string[], etag: string, pool = ""): Queue {
    return this.changes.write(() => {
      const current = this.requireOwnQueue(org, name, "edited");
      checkEtag("queue", name, etag, current.etag);
      if (pool !== "" && pool !== current.pool) {
        throw failedPrecondition(`queue "${name}" belongs to pool "${current.pool}" and cannot move to pool "${pool}"; create a queue in that pool instead`);
      }
      this.requireClustersOfPool(org, current.pool, clusters);
      this.db
        .prepare(
          `UPDATE queues SET clusters = ?, update_time = ?, version = version + 1 WHERE org = ? AND name = ?`,
        )
        .run(JSON.stringify(clusters), nextUpdateTime(current), org, name);
      this.changes.record({ kind: "queue", org, name });
      return this.get(org, name);
    });
  }

  setState(org: string, name: string, state: QueueState): Queue {
    return this.changes.write(() => {
      const verb = state === "DRAINED" ? "drained" : "activated";
      const current = this.requireOwnQueue(org, name, `${verb} on its own (use ${state === "DRAINED" ? "DrainCluster" : "ActivateCluster"})`);
      this.writeState(current, state);
      this.changes.record({ kind: "queue", org, name });
      return this.get(org, name);
    });
  }

  /** Moves a queue to `state`; a no-op when it is already there. */
  writeState(current: Queue, state: QueueState): void {
    if (current.state === state) return;
    this.db
      .prepare(`UPDATE queues SET state = ?, update_time = ?, version = version + 1 WHERE org = ? AND name = ?`)
      .run(state, nextUpdateTime(current), current.org, current.name);
  }

  delete(org: string, name: string, etag: string): void {
    this.changes.write(() => {
      const current = this.requireOwnQueue(org, name, "deleted on its own (it is removed with DeleteCluster)");
      checkEtag("queue", name, etag, current.etag);
      if (current.state !== "DRAINED") {
        throw failedPrecondition(`queue "${name}" is ACTIVE; drain it first (DrainQueue) so no new workloads are routed through it, then delete it`);
      }
      this.db.prepare("DELETE FROM queues WHERE org = ? AND name = ?").run(org, name);
      this.changes.record({ kind: "queue", org, name });
    });
  }

  find(org: string, name: string): Queue | undefined {
    const row = this.findRow(org, name);
    return row && toQueue(row);
  }

  /** Every queue of every organization, for the routing index. */
  all(): Queue[] {
    return (this.db.prepare("SELECT * FROM queues ORDER BY org, name").all() as QueueRow[]).map(toQueue);
  }

  /** Names of the queues, other than a cluster's own, whose selector names `cluster`. */
  queuesNaming(org: string, cluster: string): string[] {
    return this.db
      .prepare(
        `SELECT name FROM queues
         WHERE org = ? AND (managed_by IS NULL OR managed_by <> ?)
           AND EXISTS (SELECT 1 FROM json_each(queues.clusters) WHERE value = ?)
         ORDER BY name`,
      )
      .pluck()
      .all(org, cluster, cluster) as string[];
  }

  /** Throws ALREADY_EXISTS when a queue or a cluster already has `name`. */
  requireFreeName(org: string, name: string): void {
    const queue = this.findRow(org, name);
    if (queue) {
      throw alreadyExists(
        queue.managed_by
          ? `"${name}" is already taken by the implicit queue of cluster "${name}" in pool "${queue.pool}"; clusters and queues share one set of names`
          : `queue "${name}" already exists in pool "${queue.pool}"; clusters and queues share one set of names`,
      );
    }
    const cluster = this.db.prepare("SELECT pool FROM clusters WHERE org = ? AND name = ?").pluck().get(org, name) as
      | string
      | undefined;
    if (cluster !== undefined) {
      throw alreadyExists(`"${name}" is already the name of a cluster in pool "${cluster}"; clusters and queues share one set of names`);
    }
  }

  requirePool(org: string, pool: string): void {
    if (!this.pools.exists(org, pool)) {
      throw failedPrecondition(`cluster pool "${pool}" does not exist; create it first (CreateClusterPool) or leave the pool empty for "default"`);
    }
  }

  private requireClustersOfPool(org: string, pool: string, clusters: readonly string[]): void {
    if (clusters.length === 1 && clusters[0] === ALL_CLUSTERS) return;
    const rows = this.db
      .prepare(`SELECT name, pool FROM clusters WHERE org = ? AND name IN (SELECT value FROM json_each(?))`)
      .all(org, JSON.stringify(clusters)) as { name: string; pool: string }[];
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

  private requireOwnQueue(org: string, name: string, action: string): Queue {
    const current = this.get(org, name);
    if (current.managedBy) {
      throw failedPrecondition(`queue "${name}" is the implicit queue of cluster "${current.managedBy}" and cannot be ${action}`);
    }
    return current;
  }

  private findRow(org: string, name: string): QueueRow | undefined {
    return this.db.prepare("SELECT * FROM queues WHERE org = ? AND name = ?").get(org, name) as QueueRow | undefined;
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
