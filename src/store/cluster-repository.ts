import { endpointProblem, sameTarget, type Cluster, type ClusterAuth, type ClusterChanges, type ClusterState } from "../core/cluster.js";
import { alreadyExists, failedPrecondition, invalidArgument, listInWords, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import type { ClusterPoolRepository } from "./cluster-pool-repository.js";
import { nextUpdateTime, type Page } from "./rows.js";
import type { ChangeLog } from "./changes.js";
import type { Db } from "./database.js";
import type { QueueRepository } from "./queue-repository.js";
import { toStatus, type SyncRepository } from "./sync-repository.js";

/** Clusters with their sync status, which lives in its own table (written by the sync loop). */
const SELECT_CLUSTERS = `
  SELECT c.*, s.last_attempt_time, s.last_success_time, s.objects_applied, s.objects_unchanged,
         s.objects_failed, s.consecutive_failures, s.last_error, s.conditions, s.object_failures, s.failure_kind,
         s.pairs_provisioned, s.pairs_desired, s.pairs_digest
  FROM clusters c LEFT JOIN cluster_sync_status s ON s.org = c.org AND s.cluster = c.name`;

interface ClusterRow {
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
  revision: number;
  last_attempt_time: number | null;
  last_success_time: number | null;
  objects_applied: number | null;
  objects_unchanged: number | null;
  objects_failed: number | null;
  consecutive_failures: number | null;
  last_error: string | null;
  conditions: string | null;
  object_failures: string | null;
  failure_kind: string | null;
  pairs_provisioned: number | null;
  pairs_desired: number | null;
  pairs_digest: string | null;
}

export interface NewCluster {
  org: string;
  name: string;
  pool: string;
  endpoint: string;
  enabled: boolean;
  auth: ClusterAuth;
}

export interface ClusterFilter {
  pool: string;
  enabled: boolean | undefined;
  state: ClusterState | "";
}

/** Something else that still names a cluster and so blocks its deletion (labels do). */
export type ClusterReferenceCheck = (org: string, cluster: string) => string | null;

/**
 * Clusters in SQLite. A cluster and its implicit queue are written together: registration inserts
 * both in one transaction, deletion removes the cluster and the foreign key removes the queue.
 */
export class ClusterRepository {
  private readonly referenceChecks: ClusterReferenceCheck[] = [];

  constructor(
    private readonly db: Db,
    private readonly changes: ChangeLog,
    private readonly pools: ClusterPoolRepository,
    private readonly queues: QueueRepository,
    private readonly sync: SyncRepository,
  ) {}

  /** Adds a rule that can veto deleting a cluster, returning why (or null). */
  addReferenceCheck(check: ClusterReferenceCheck): void {
    this.referenceChecks.push(check);
  }

  create(cluster: NewCluster): Cluster {
    return this.changes.write(() => {
      const existing = this.findRow(cluster.org, cluster.name);
      if (existing) throw registeredAlready(existing, cluster.pool);
      this.queues.requirePool(cluster.org, cluster.pool);
      this.queues.requireFreeName(cluster.org, cluster.name);
      this.pools.ensureDefaultPool(cluster.org);
      const now = Date.now();
      this.db
        .prepare(
          `INSERT INTO clusters (org, name, pool, endpoint, enabled, auth_kind, token_path, ca_cert_path,
             state, create_time, update_time, version)
           VALUES (@org, @name, @pool, @endpoint, @enabled, @auth_kind, @token_path, @ca_cert_path,
             'ACTIVE', @now, @now, 1)`,
        )
        .run({ org: cluster.org, name: cluster.name, pool: cluster.pool, endpoint: cluster.endpoint,
          enabled: cluster.enabled ? 1 : 0, now, ...authColumns(cluster.auth) });
      this.queues.insert({ org: cluster.org, name: cluster.name, pool: cluster.pool, clusters: [cluster.name] }, cluster.name);
      this.announce(cluster.org, cluster.name);
      this.announcePool(cluster.org, cluster.pool);
      return this.get(cluster.org, cluster.name);
    });
  }

  get(org: string, name: string): Cluster {
    const cluster = this.find(org, name);
    if (!cluster) throw notFound(`cluster "${name}" does not exist; ListClusters shows the clusters there are`);
    return cluster;
  }

  list(org: string, filter: ClusterFilter, page: PageRequest): Page<Cluster> {
    const rows = this.db
      .prepare(
        `${SELECT_CLUSTERS}
         WHERE c.org = @org AND c.name > @after
           AND (@pool = '' OR c.pool = @pool)
           AND (@enabled IS NULL OR c.enabled = @enabled)
           AND (@state = '' OR c.state = @state)
         ORDER BY c.name LIMIT @limit`,
      )
      .all({
        org,
        after: page.after?.[0] ?? "",
        pool: filter.pool,
        enabled: filter.enabled === undefined ? null : filter.enabled ? 1 : 0,
        state: filter.state,
        limit: page.size + 1,
      }) as ClusterRow[];
    return { items: rows.slice(0, page.size).map(toCluster), hasMore: rows.length > page.size };
  }

  /** Applies `changes`; `pool`, when given, must be the cluster's own (clusters never move in place). */
  update(org: string, name: string, changes: ClusterChanges, etag: string, pool = ""): Cluster {
    return this.changes.write(() => {
      const current = this.get(org, name);
      checkEtag("cluster", name, etag, current.etag);
      if (pool !== "" && pool !== current.pool) throw cannotMove(name, current.pool, pool);
      const next = { ...current, ...changes };
      // The request's fields were checked alone; here they meet what is stored.
      const problem = endpointProblem(next.endpoint, next.auth, next.enabled);
      if (problem) throw invalidArgument([{ field: "cluster.endpoint", description: problem }]);
      this.db
        .prepare(
          `UPDATE clusters SET endpoint = @endpoint, enabled = @enabled, auth_kind = @auth_kind,
             token_path = @token_path, ca_cert_path = @ca_cert_path, update_time = @now, version = version + 1
           WHERE org = @org AND name = @name`,
        )
        .run({ org, name, endpoint: next.endpoint, enabled: next.enabled ? 1 : 0, now: nextUpdateTime(current),
          ...authColumns(next.auth) });
      // Another endpoint or identity may be another cluster: apply everything again, and route to
      // it only once that has been done.
      if (!sameTarget(next, current)) this.sync.forget(org, name);
      this.announce(org, name);
      return this.get(org, name);
    });
  }

  /** Drains or activates a cluster; its implicit queue follows. Idempotent. */
  setState(org: string, name: string, state: ClusterState): Cluster {
    return this.changes.write(() => {
      const current = this.get(org, name);
      if (current.state !== state) {
        this.db
          .prepare(`UPDATE clusters SET state = ?, update_time = ?, version = version + 1 WHERE org = ? AND name = ?`)
          .run(state, nextUpdateTime(current), org, name);
        this.queues.writeState(this.queues.get(org, name), state);
      }
      this.announce(org, name);
      return this.get(org, name);
    });
  }

  delete(org: string, name: string, etag: string): void {
    this.changes.write(() => {
      const current = this.get(org, name);
      checkEtag("cluster", name, etag, current.etag);
      if (current.state === "ACTIVE") {
        throw failedPrecondition(
          `cluster "${name}" is ACTIVE; drain it first (DrainCluster) so no new executions are routed to it, then delete it`,
        );
      }
      const blockers = this.blockersOfDelete(org, name);
      if (blockers.length) throw failedPrecondition(`cluster "${name}" is still in use: ${blockers.join("; ")}`);
      const hadStatus = this.sync.status(org, name) !== null;
      this.db.prepare("DELETE FROM clusters WHERE org = ? AND name = ?").run(org, name);
      this.announce(org, name);
      this.announcePool(org, current.pool);
      // The foreign keys took its sync status with it.
      if (hadStatus) this.changes.record({ kind: "cluster-sync", org, name });
    });
  }

  /** Every cluster of every organization, for the routing index and the sync loop. */
  all(): Cluster[] {
    return (this.db.prepare(`${SELECT_CLUSTERS} ORDER BY c.org, c.name`).all() as ClusterRow[]).map(toCluster);
  }

  find(org: string, name: string): Cluster | undefined {
    const row = this.findRow(org, name);
    return row && toCluster(row);
  }

  /** A cluster write also touches its implicit queue. */
  private announce(org: string, name: string): void {
    this.changes.record({ kind: "cluster", org, name });
    this.changes.record({ kind: "queue", org, name });
  }

  /** A cluster joining or leaving changes its pool's member clusters. */
  private announcePool(org: string, pool: string): void {
    if (this.pools.findStored(org, pool)) this.changes.record({ kind: "pool", org, name: pool });
  }

  private blockersOfDelete(org: string, name: string): string[] {
    const queues = this.queues.queuesNaming(org, name);
    const blockers = queues.length
      ? [`queue(s) ${listInWords(queues)} route to it; remove it from their cluster selectors (UpdateQueue) first`]
      : [];
    for (const check of this.referenceChecks) {
      const blocker = check(org, name);
      if (blocker) blockers.push(blocker);
    }
    return blockers;
  }

  private findRow(org: string, name: string): ClusterRow | undefined {
    return this.db.prepare(`${SELECT_CLUSTERS} WHERE c.org = ? AND c.name = ?`).get(org, name) as ClusterRow | undefined;
  }
}

function registeredAlready(existing: ClusterRow, requestedPool: string) {
  if (existing.pool === requestedPool) {
    return alreadyExists(`cluster "${existing.name}" is already registered in pool "${existing.pool}"; use UpdateCluster to change it`);
  }
  return cannotMove(existing.name, existing.pool, requestedPool);
}

function cannotMove(name: string, pool: string, requestedPool: string) {
  return failedPrecondition(
    `cluster "${name}" is registered in pool "${pool}" and cannot move to pool "${requestedPool}" in place; ` +
      `to move it: drain it (DrainCluster), delete it (DeleteCluster), then register it again into pool "${requestedPool}"`,
  );
}

function authColumns(auth: ClusterAuth) {
  return auth.kind === "bearer_token_file"
    ? { auth_kind: auth.kind, token_path: auth.tokenPath, ca_cert_path: auth.caCertPath }
    : { auth_kind: auth.kind, token_path: "", ca_cert_path: "" };
}

function toCluster(row: ClusterRow): Cluster {
  const auth: ClusterAuth =
    row.auth_kind === "bearer_token_file"
      ? { kind: "bearer_token_file", tokenPath: row.token_path, caCertPath: row.ca_cert_path }
      : { kind: "in_cluster" };
  return {
    org: row.org,
    name: row.name,
    pool: row.pool,
    endpoint: row.endpoint,
    enabled: row.enabled === 1,
    auth,
    state: row.state as ClusterState,
    createTime: new Date(row.create_time),
    updateTime: new Date(row.update_time),
    etag: makeEtag(row.version, row.update_time),
    revision: row.revision,
    sync: row.consecutive_failures === null ? null : toStatus(row as Parameters<typeof toStatus>[0]),
  };
}
