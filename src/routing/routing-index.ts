import type { Cluster } from "../core/cluster.js";
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
}

export interface RoutableQueue {
  pool: string;
  clusters: string[];
  state: QueueState;
}

/**
 * Everything SelectCluster reads, held in memory so the routing hot path runs no SQL. Built from
 * the store at start and kept current from the store's change feed: each change reloads only the
 * row it names.
 */
export class RoutingIndex {
  private readonly clusters = new Map<string, RoutableCluster>();
  private readonly eligibleByOrg = new Map<string, RoutableCluster[]>();
  private readonly labels = new Map<string, WeightedChoice[]>();
  private readonly assignments = new Map<string, string>();
  private readonly defaults = new Map<string, string>();
  private readonly projects = new Map<string, ProjectState>();
  private readonly queues = new Map<string, RoutableQueue>();
  private readonly unsubscribe: () => void;

  /**
   * @param honorSyncStatus whether routing waits for the sync loop: a cluster is routed to only
   *   once a pass has provisioned it, and not while passes cannot reach it. Off when this process
   *   runs no sync loop, so a stale or missing verdict cannot exclude a cluster forever.
   */
  constructor(
    private readonly stores: Stores,
    private readonly honorSyncStatus = false,
  ) {
    this.reloadClusters();
    for (const label of stores.labels.all()) this.labels.set(key(label.org, label.name), members(label.clusters));
    for (const assignment of stores.assignments.all()) this.assignments.set(assignmentKey(assignment), assignment.value);
    for (const [org, label] of stores.labels.allDefaults()) this.defaults.set(org, label);
    for (const project of stores.projects.allInState("ACTIVE")) this.projects.set(key(project.org, project.id), "ACTIVE");
    for (const project of stores.projects.allInState("ARCHIVED")) this.projects.set(key(project.org, project.id), "ARCHIVED");
    for (const queue of stores.queues.all()) this.queues.set(key(queue.org, queue.name), queue);
    this.unsubscribe = stores.changes.subscribe((change) => this.apply(change));
  }

  /**
   * Reads every cluster again. The change feed covers this process's writes; a `sync --once` run
   * from another process writes sync status only to the database, so the server calls this
   * periodically.
   */
  reloadClusters(): void {
    this.clusters.clear();
    for (const cluster of this.stores.clusters.all()) this.clusters.set(key(cluster.org, cluster.name), this.routable(cluster));
    this.eligibleByOrg.clear();
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

  private routable(cluster: Cluster): RoutableCluster {
    let ineligibleBecause = "";
    if (!cluster.enabled) ineligibleBecause = "disabled";
    else if (cluster.state === "DRAINED") ineligibleBecause = "drained";
    else if (this.honorSyncStatus && !cluster.sync) ineligibleBecause = "not provisioned yet (waiting for its first sync pass)";
    else if (this.honorSyncStatus && cluster.sync && cluster.sync.consecutiveFailures > 0) {
      ineligibleBecause = `failing sync (${cluster.sync.lastError})`;
    }
    return { org: cluster.org, name: cluster.name, weight: 1, pool: cluster.pool, endpoint: cluster.endpoint, ineligibleBecause };
  }

  private apply(change: Change): void {
    const { stores } = this;
    switch (change.kind) {
      case "cluster":
      case "cluster-sync": {
        const cluster = stores.clusters.find(change.org, change.name);
        setOrDelete(this.clusters, key(change.org, change.name), cluster && this.routable(cluster));
        this.eligibleByOrg.delete(change.org);
        return;
      }
      case "queue":
        setOrDelete(this.queues, key(change.org, change.name), stores.queues.find(change.org, change.name));
        return;
      case "label": {
        const label = stores.labels.find(change.org, change.name);
        setOrDelete(this.labels, key(change.org, change.name), label && members(label.clusters));
        return;
      }
      case "assignment":
        setOrDelete(this.assignments, assignmentKey(change), stores.assignments.find(change)?.value);
        return;
      case "default-label":
        setOrDelete(this.defaults, change.org, stores.labels.getDefault(change.org) || undefined);
        return;
      case "project":
        setOrDelete(this.projects, key(change.org, change.id), stores.projects.find(change.org, change.id)?.state);
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
