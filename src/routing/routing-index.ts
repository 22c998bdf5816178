import { modeOf, type Cluster } from "../core/cluster.js";
import { clusterIneligibility } from "../core/pass-outcome.js";
import { projectDomainKey } from "../core/desired-state.js";
import type { AssignmentKey } from "../core/execution-cluster-label.js";
import type { ProjectState } from "../core/project.js";
import type { QueueState } from "../core/queue.js";
import { byName, type WeightedChoice } from "../core/weighted-pick.js";
import type { Change } from "../store/changes.js";
import type { Stores } from "../store/stores.js";

export interface RoutableCluster extends WeightedChoice {
  org: string;
  pool: string;
  endpoint: string;
  /** Why the cluster may not take new executions, or "" when it may. */
  ineligibleBecause: string;
  /** `project\0domain` of every provisioned project-domain; null when routing does not wait for sync. */
  provisioned: ReadonlySet<string> | null;
  /** Which provisioned set that is (the last pass's digest of it). */
  provisionedDigest: string;
}

export interface RoutableQueue {
  pool: string;
  clusters: string[];
  state: QueueState;
}

/**
 * Everything SelectCluster reads, held in memory so the routing hot path runs no SQL and never
 * waits: the store is asynchronous, the index is not. Built from the store at start and kept
 * current from the change log — this process's writes and every other process's alike: each
 * entry reloads only the row it names, and a write returns only once that is done.
 */
export class RoutingIndex {
  private clusters = new Map<string, RoutableCluster>();
  private readonly eligibleByOrg = new Map<string, RoutableCluster[]>();
  private labels = new Map<string, WeightedChoice[]>();
  private assignments = new Map<string, string>();
  private defaults = new Map<string, string>();
  private projects = new Map<string, ProjectState>();
  private queues = new Map<string, RoutableQueue>();
  private readonly unsubscribe: () => void;
  private isLoaded = false;
  /** Resolves once everything has been read; changes are applied only after that. */
  readonly ready: Promise<void>;

  /**
   * Starts reading the store at once (see `ready`, or `open`, which waits for it).
   *
   * @param honorSyncStatus whether routing waits for the sync loop: a cluster is routed to only
   *   once a pass has provisioned it, and not while passes cannot reach it. On wherever sync is
   *   enabled (the leader's verdicts reach every server through the log); off when sync is off, so
   *   a stale or missing verdict cannot exclude a cluster forever.
   */
  constructor(
    private readonly stores: Stores,
    private readonly honorSyncStatus = false,
  ) {
    this.ready = this.loadAll().then(() => void (this.isLoaded = true));
    // A change committed while loading is applied after it (it re-reads its row, so nothing is lost).
    const unsubscribe = stores.changes.subscribe(async (change) => {
      await this.ready;
      await this.apply(change);
    });
    const unsubscribeResync = stores.changes.onResync(() => this.loadAll());
    this.unsubscribe = () => {
      unsubscribe();
      unsubscribeResync();
    };
  }

  /** An index with everything read. */
  static async open(stores: Stores, honorSyncStatus = false): Promise<RoutingIndex> {
    const index = new RoutingIndex(stores, honorSyncStatus);
    try {
      await index.ready;
    } catch (error) {
      index.close();
      throw error;
    }
    return index;
  }

  /** Whether the first read is done (until then, answers wait for `ready`). */
  get loaded(): boolean {
    return this.isLoaded;
  }

  /**
   * Reads everything routing needs (at start, and after falling behind the log's retention) in
   * one read transaction, and only then replaces what SelectCluster sees: it never answers from
   * half a load.
   */
  private async loadAll(): Promise<void> {
    const { stores } = this;
    const { value: loaded } = await stores.changes.readAt(async () => ({
      clusters: await this.loadClusters(),
      labels: await stores.labels.all(),
      assignments: await stores.assignments.all(),
      defaults: await stores.labels.allDefaults(),
      active: await stores.projects.allInState("ACTIVE"),
      archived: await stores.projects.allInState("ARCHIVED"),
      queues: await stores.queues.all(),
    }));
    this.clusters = loaded.clusters;
    this.eligibleByOrg.clear();
    this.labels = new Map(loaded.labels.map((label) => [key(label.org, label.name), members(label.clusters)]));
    this.assignments = new Map(loaded.assignments.map((assignment) => [assignmentKey(assignment), assignment.value]));
    this.defaults = loaded.defaults;
    this.projects = new Map<string, ProjectState>([
      ...loaded.active.map((project) => [key(project.org, project.id), "ACTIVE"] as const),
      ...loaded.archived.map((project) => [key(project.org, project.id), "ARCHIVED"] as const),
    ]);
    this.queues = new Map(loaded.queues.map((queue) => [key(queue.org, queue.name), queue]));
  }

  private async loadClusters(): Promise<Map<string, RoutableCluster>> {
    const clusters = new Map<string, RoutableCluster>();
    const provisioned = new Map<string, Set<string>>();
    if (this.honorSyncStatus) {
      for (const row of await this.stores.sync.allProvisioned()) {
        const clusterKey = key(row.org, row.cluster);
        const pairs = provisioned.get(clusterKey) ?? new Set<string>();
        pairs.add(projectDomainKey(row));
        provisioned.set(clusterKey, pairs);
      }
    }
    for (const cluster of await this.stores.clusters.all()) {
      const clusterKey = key(cluster.org, cluster.name);
      clusters.set(clusterKey, this.routable(cluster, provisioned.get(clusterKey) ?? new Set()));
    }
    return clusters;
  }

  /**
   * Why `cluster` may not take an execution of project-domain P/D, or "" when it may: the cluster
   * must be eligible, and — where routing waits for sync — P/D's namespace must be provisioned there.
   */
  ineligibility(cluster: RoutableCluster, project: string, domain: string): string {
    if (cluster.ineligibleBecause) return cluster.ineligibleBecause;
    if (cluster.provisioned && !cluster.provisioned.has(projectDomainKey({ project, domain }))) {
      return `not provisioned for ${project}/${domain} yet (its namespace is created by the cluster's next sync pass)`;
    }
    return "";
  }

  close(): void {
    this.unsubscribe();
  }

  cluster(org: string, name: string): RoutableCluster | undefined {
    return this.clusters.get(key(org, name));
  }

  label(org: string, name: string): WeightedChoice[] | undefined {
    return this.labels.get(key(org, name));
  }

  assignment(scope: AssignmentKey): string | undefined {
    return this.assignments.get(assignmentKey(scope));
  }

  defaultLabel(org: string): string | undefined {
    return this.defaults.get(org);
  }

  projectState(org: string, id: string): ProjectState | undefined {
    return this.projects.get(key(org, id));
  }

  queue(org: string, name: string): RoutableQueue | undefined {
    return this.queues.get(key(org, name));
  }

  /** Every cluster of the organization that may take new executions, sorted by name. */
  eligibleClusters(org: string): RoutableCluster[] {
    let eligible = this.eligibleByOrg.get(org);
    if (!eligible) {
      eligible = this.clustersOf(org).filter((cluster) => cluster.ineligibleBecause === "");
      this.eligibleByOrg.set(org, eligible);
    }
    return eligible;
  }

  /** Every cluster of the organization, or of one of its pools, sorted by name. */
  clustersOf(org: string, pool?: string): RoutableCluster[] {
    return [...this.clusters.values()]
      .filter((cluster) => cluster.org === org && (pool === undefined || cluster.pool === pool))
      .sort(byName);
  }

  private routable(cluster: Cluster, provisioned: ReadonlySet<string>): RoutableCluster {
    return {
      org: cluster.org,
      name: cluster.name,
      weight: 1,
      pool: cluster.pool,
      endpoint: cluster.endpoint,
      ineligibleBecause: this.clusterProblem(cluster),
      provisioned: this.honorSyncStatus ? provisioned : null,
      provisionedDigest: cluster.sync?.provisionedDigest ?? "",
    };
  }

  /** The cluster's provisioned pairs: read again only when a pass changed them (thousands per cluster). */
  private async provisionedOf(cluster: Cluster): Promise<ReadonlySet<string>> {
    if (!this.honorSyncStatus) return new Set();
    const known = this.clusters.get(key(cluster.org, cluster.name));
    const digest = cluster.sync?.provisionedDigest ?? "";
    if (known?.provisioned && known.provisionedDigest === digest) return known.provisioned;
    return new Set((await this.stores.sync.provisioned(cluster.org, cluster.name)).map(projectDomainKey));
  }

  /** Each reason says what would make the cluster routable again. */
  private clusterProblem(cluster: Cluster): string {
    if (!cluster.enabled) return "disabled (UpdateCluster with enabled: true routes to it again)";
    if (cluster.state === "DRAINED") return "drained (ActivateCluster routes to it again)";
    if (!this.honorSyncStatus) return "";
    if (!cluster.sync && modeOf(cluster) === "pull") {
      return cluster.agent?.joinedAt
        ? "not provisioned yet (its agent joined; waiting for its first report)"
        : "waiting for its agent: start `clusterplane agent` in the cluster with the join token `create cluster` printed";
    }
    if (!cluster.sync) return "not provisioned yet (waiting for its first sync pass)";
    const problem = clusterIneligibility(cluster.sync.conditions);
    if (problem) return `failing sync: ${problem}`;
    // Statuses written before conditions existed.
    return cluster.sync.conditions.length === 0 && cluster.sync.consecutiveFailures > 0 ? `failing sync: ${cluster.sync.lastError}` : "";
  }

  /** Reads the row a change names and updates the index from it; SelectCluster sees the result at once. */
  private async apply(change: Change): Promise<void> {
    const { stores } = this;
    switch (change.kind) {
      case "cluster":
      case "cluster-sync": {
        const cluster = await stores.clusters.find(change.org, change.name);
        const routable = cluster && this.routable(cluster, await this.provisionedOf(cluster));
        setOrDelete(this.clusters, key(change.org, change.name), routable);
        this.eligibleByOrg.delete(change.org);
        return;
      }
      case "queue":
        setOrDelete(this.queues, key(change.org, change.name), await stores.queues.find(change.org, change.name));
        return;
      case "label": {
        const label = await stores.labels.find(change.org, change.name);
        setOrDelete(this.labels, key(change.org, change.name), label && members(label.clusters));
        return;
      }
      case "assignment":
        setOrDelete(this.assignments, assignmentKey(change), (await stores.assignments.find(change))?.value);
        return;
      case "default-label":
        setOrDelete(this.defaults, change.org, (await stores.labels.getDefault(change.org)) || undefined);
        return;
      case "project":
        setOrDelete(this.projects, key(change.org, change.id), (await stores.projects.find(change.org, change.id))?.state);
        return;
    }
  }
}

function setOrDelete<V>(map: Map<string, V>, mapKey: string, value: V | undefined): void {
  if (value === undefined) map.delete(mapKey);
  else map.set(mapKey, value);
}

// NUL cannot occur in any validated name, so joined keys never collide.
function key(org: string, name: string): string {
  return `${org}\0${name}`;
}

function assignmentKey(scope: AssignmentKey): string {
  return `${scope.org}\0${scope.project}\0${scope.domain}\0${scope.workflow}\0${scope.launchPlan}`;
}

function members(clusters: readonly { cluster: string; weight: number }[]): WeightedChoice[] {
  return clusters
    .map((member) => ({ name: member.cluster, weight: member.weight }))
    .sort(byName);
}
