import { endpointProblem, sameTarget, type Cluster, type ClusterAuth, type ClusterChanges, type ClusterState } from "../core/cluster.js";
import { alreadyExists, failedPrecondition, invalidArgument, listInWords, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import type { ClusterPoolRepository } from "./cluster-pool-repository.js";
import { nextUpdateTime, type Page } from "./rows.js";
import type { ChangeLog } from "./changes.js";
import type { Executor } from "./schema.js";
import type { QueueRepository } from "./queue-repository.js";
import { toStatus, type SyncRepository } from "./sync-repository.js";

/** The sync status columns read with every cluster (they live in their own table, written by the sync loop). */
const STATUS_COLUMNS = [
  "s.last_attempt_time",
  "s.last_success_time",
  "s.objects_applied",
  "s.objects_unchanged",
  "s.objects_failed",
  "s.consecutive_failures",
  "s.last_error",
  "s.conditions",
  "s.object_failures",
  "s.failure_kind",
  "s.pairs_provisioned",
  "s.pairs_desired",
  "s.pairs_digest",
] as const;

/** Clusters with their sync status. */
function selectClusters(db: Executor) {
  return db
    .selectFrom("clusters as c")
    .leftJoin("cluster_sync_status as s", (join) => join.onRef("s.org", "=", "c.org").onRef("s.cluster", "=", "c.name"))
    .selectAll("c")
    .select(STATUS_COLUMNS);
}

type ClusterRow = Awaited<ReturnType<ReturnType<typeof selectClusters>["executeTakeFirstOrThrow"]>>;

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
export type ClusterReferenceCheck = (org: string, cluster: string) => Promise<string | null>;

/**
 * Clusters. A cluster and its implicit queue are written together: registration inserts both in
 * one transaction, deletion removes the cluster and the foreign key removes the queue.
 */
export class ClusterRepository {
  private readonly referenceChecks: ClusterReferenceCheck[] = [];

  constructor(
    private readonly changes: ChangeLog,
    private readonly pools: ClusterPoolRepository,
    private readonly queues: QueueRepository,
    private readonly sync: SyncRepository,
  ) {}

  /** The current unit of work's transaction, or the shared handle. */
  private get db() {
    return this.changes.db;
  }

  /** Adds a rule that can veto deleting a cluster, returning why (or null). */
  addReferenceCheck(check: ClusterReferenceCheck): void {
    this.referenceChecks.push(check);
  }

  create(cluster: NewCluster): Promise<Cluster> {
    return this.changes.write(async () => {
      const existing = await this.findRow(cluster.org, cluster.name);
      if (existing) throw registeredAlready(existing, cluster.pool);
      await this.queues.requirePool(cluster.org, cluster.pool);
      await this.queues.requireFreeName(cluster.org, cluster.name);
      await this.pools.ensureDefaultPool(cluster.org);
      const now = Date.now();
      await this.db
        .insertInto("clusters")
        .values({
          org: cluster.org,
          name: cluster.name,
          pool: cluster.pool,
          endpoint: cluster.endpoint,
          enabled: cluster.enabled ? 1 : 0,
          ...authColumns(cluster.auth),
          state: "ACTIVE",
          create_time: now,
          update_time: now,
          version: 1,
        })
        .execute();
      await this.queues.insert({ org: cluster.org, name: cluster.name, pool: cluster.pool, clusters: [cluster.name] }, cluster.name);
      await this.announce(cluster.org, cluster.name);
      await this.announcePool(cluster.org, cluster.pool);
      return this.get(cluster.org, cluster.name);
    });
  }

  async get(org: string, name: string): Promise<Cluster> {
    const cluster = await this.find(org, name);
    if (!cluster) throw notFound(`cluster "${name}" does not exist; ListClusters shows the clusters there are`);
    return cluster;
  }

  async list(org: string, filter: ClusterFilter, page: PageRequest): Promise<Page<Cluster>> {
    const rows = await selectClusters(this.db)
      .where("c.org", "=", org)
      .where("c.name", ">", page.after?.[0] ?? "")
      .$if(filter.pool !== "", (query) => query.where("c.pool", "=", filter.pool))
      .$if(filter.enabled !== undefined, (query) => query.where("c.enabled", "=", filter.enabled ? 1 : 0))
      .$if(filter.state !== "", (query) => query.where("c.state", "=", filter.state))
      .orderBy("c.name")
      .limit(page.size + 1)
      .execute();
    return { items: rows.slice(0, page.size).map(toCluster), hasMore: rows.length > page.size };
  }

  /** Applies `changes`; `pool`, when given, must be the cluster's own (clusters never move in place). */
  update(org: string, name: string, changes: ClusterChanges, etag: string, pool = ""): Promise<Cluster> {
    return this.changes.write(async () => {
      const current = await this.get(org, name);
      checkEtag("cluster", name, etag, current.etag);
      if (pool !== "" && pool !== current.pool) throw cannotMove(name, current.pool, pool);
      const next = { ...current, ...changes };
      // The request's fields were checked alone; here they meet what is stored.
      const problem = endpointProblem(next.endpoint, next.auth, next.enabled);
      if (problem) throw invalidArgument([{ field: "cluster.endpoint", description: problem }]);
      await this.db
        .updateTable("clusters")
        .set((eb) => ({
          endpoint: next.endpoint,
          enabled: next.enabled ? 1 : 0,
          ...authColumns(next.auth),
          update_time: nextUpdateTime(current),
          version: eb("version", "+", 1),
        }))
        .where("org", "=", org)
        .where("name", "=", name)
        .execute();
      // Another endpoint or identity may be another cluster: apply everything again, and route to
      // it only once that has been done.
      if (!sameTarget(next, current)) await this.sync.forget(org, name);
      await this.announce(org, name);
      return this.get(org, name);
    });
  }

  /** Drains or activates a cluster; its implicit queue follows. Idempotent. */
  setState(org: string, name: string, state: ClusterState): Promise<Cluster> {
    return this.changes.write(async () => {
      const current = await this.get(org, name);
      if (current.state !== state) {
        await this.db
          .updateTable("clusters")
          .set((eb) => ({ state, update_time: nextUpdateTime(current), version: eb("version", "+", 1) }))
          .where("org", "=", org)
          .where("name", "=", name)
          .execute();
        await this.queues.writeState(await this.queues.get(org, name), state);
      }
      await this.announce(org, name);
      return this.get(org, name);
    });
  }

  delete(org: string, name: string, etag: string): Promise<void> {
    return this.changes.write(async () => {
      const current = await this.get(org, name);
      checkEtag("cluster", name, etag, current.etag);
      if (current.state === "ACTIVE") {
        throw failedPrecondition(
          `cluster "${name}" is ACTIVE; drain it first (DrainCluster) so no new executions are routed to it, then delete it`,
        );
      }
      const blockers = await this.blockersOfDelete(org, name);
      if (blockers.length) throw failedPrecondition(`cluster "${name}" is still in use: ${blockers.join("; ")}`);
      const hadStatus = (await this.sync.status(org, name)) !== null;
      await this.db.deleteFrom("clusters").where("org", "=", org).where("name", "=", name).execute();
      await this.announce(org, name);
      await this.announcePool(org, current.pool);
      // The foreign keys took its sync status with it.
      if (hadStatus) await this.changes.record({ kind: "cluster-sync", org, name });
    });
  }

  /** Every cluster of every organization, for the routing index and the sync loop. */
  async all(): Promise<Cluster[]> {
    return (await selectClusters(this.db).orderBy("c.org").orderBy("c.name").execute()).map(toCluster);
  }

  async find(org: string, name: string): Promise<Cluster | undefined> {
    const row = await this.findRow(org, name);
    return row && toCluster(row);
  }

  /** A cluster write also touches its implicit queue. */
  private async announce(org: string, name: string): Promise<void> {
    await this.changes.record({ kind: "cluster", org, name });
    await this.changes.record({ kind: "queue", org, name });
  }

  /** A cluster joining or leaving changes its pool's member clusters. */
  private async announcePool(org: string, pool: string): Promise<void> {
    if (await this.pools.findStored(org, pool)) await this.changes.record({ kind: "pool", org, name: pool });
  }

  private async blockersOfDelete(org: string, name: string): Promise<string[]> {
    const queues = await this.queues.queuesNaming(org, name);
    const blockers = queues.length
      ? [`queue(s) ${listInWords(queues)} route to it; remove it from their cluster selectors (UpdateQueue) first`]
      : [];
    for (const check of this.referenceChecks) {
      const blocker = await check(org, name);
      if (blocker) blockers.push(blocker);
    }
    return blockers;
  }

  private findRow(org: string, name: string): Promise<ClusterRow | undefined> {
    return selectClusters(this.db).where("c.org", "=", org).where("c.name", "=", name).executeTakeFirst();
  }
}

function registeredAlready(existing: { name: string; pool: string }, requestedPool: string) {
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
  if (auth.kind === "bearer_token_file") return { auth_kind: auth.kind, token_path: auth.tokenPath, ca_cert_path: auth.caCertPath, mode: "push" };
  // Pull mode is the `mode` column; auth_kind's CHECK (from the first schema) knows only push kinds.
  if (auth.kind === "agent") return { auth_kind: "in_cluster", token_path: "", ca_cert_path: "", mode: "pull" };
  return { auth_kind: auth.kind, token_path: "", ca_cert_path: "", mode: "push" };
}

function toCluster(row: ClusterRow): Cluster {
  const auth: ClusterAuth =
    row.auth_kind === "bearer_token_file"
      ? { kind: "bearer_token_file", tokenPath: row.token_path, caCertPath: row.ca_cert_path }
      : row.mode === "pull"
        ? { kind: "agent" }
        : { kind: "in_cluster" };
  const at = (ms: number | null) => (ms === null ? null : new Date(Number(ms)));
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
    agent: auth.kind === "agent" ? { version: row.agent_version, joinedAt: at(row.agent_joined_at), heartbeatAt: at(row.agent_heartbeat_at) } : null,
  };
}
