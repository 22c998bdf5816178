import { listInWords } from "../core/errors.js";
import { DEFAULT_DOMAINS } from "../core/project.js";
import { AgentRepository } from "./agent-repository.js";
import { AssignmentRepository } from "./assignment-repository.js";
import { ChangeLog } from "./changes.js";
import { ClusterLabelRepository } from "./cluster-label-repository.js";
import { ClusterPoolRepository } from "./cluster-pool-repository.js";
import { ClusterRepository } from "./cluster-repository.js";
import { DEFAULT_LOCK_TIMEOUT_MS, openDatabase, type PoolSettings } from "./database.js";
import type { Engine } from "./engine.js";
import { ProjectRepository } from "./project-repository.js";
import { QueueRepository } from "./queue-repository.js";
import { SyncRepository } from "./sync-repository.js";

/** Every repository over one database, the configured domains, and the feed of their changes. */
export interface Stores {
  /** The database engine under every repository (close it to close the store). */
  engine: Engine;
  /** The one write path and the change log every in-memory view follows. */
  changes: ChangeLog;
  domains: readonly string[];
  pools: ClusterPoolRepository;
  clusters: ClusterRepository;
  queues: QueueRepository;
  projects: ProjectRepository;
  labels: ClusterLabelRepository;
  assignments: AssignmentRepository;
  sync: SyncRepository;
  /** Join tokens, agent credentials and agent leases of pull-mode clusters. */
  agents: AgentRepository;
}

export interface StoreOptions extends PoolSettings {
  /** The database: a SQLite file (or `sqlite:` URL, or ":memory:"), or a `postgres://` URL. */
  path: string;
  /** The domains every project is provisioned for. */
  domains?: readonly string[];
  /** How long a write waits for another process's lock before failing with UNAVAILABLE. */
  lockTimeoutMs?: number;
}

export async function openStores(options: StoreOptions): Promise<Stores> {
  const engine = await openDatabase(options.path, undefined, options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS, options);
  const changes = new ChangeLog(engine);
  await changes.open();
  const pools = new ClusterPoolRepository(changes);
  const queues = new QueueRepository(changes, pools);
  const sync = new SyncRepository(changes);
  const clusters = new ClusterRepository(changes, pools, queues, sync);
  const projects = new ProjectRepository(changes);
  const labels = new ClusterLabelRepository(changes);
  const assignments = new AssignmentRepository(changes, projects, labels);
  clusters.addReferenceCheck(async (org, cluster) => {
    const naming = await labels.labelsNaming(org, cluster);
    return naming.length
      ? `label(s) ${listInWords(naming)} route to it; remove it from them (UpdateClusterLabel) first`
      : null;
  });
  describeChanges(changes, { pools, clusters, queues, projects, labels, assignments, sync });
  return {
    engine,
    changes,
    domains: options.domains ?? DEFAULT_DOMAINS,
    pools,
    clusters,
    queues,
    projects,
    labels,
    assignments,
    sync,
    agents: new AgentRepository(changes),
  };
}

/** How the log reads each kind's state for its entries. */
function describeChanges(
  changes: ChangeLog,
  stores: Pick<Stores, "pools" | "clusters" | "queues" | "projects" | "labels" | "assignments" | "sync">,
): void {
  changes.describe("pool", (c) => c.kind === "pool" && stores.pools.findStored(c.org, c.name));
  changes.describe("cluster", (c) => c.kind === "cluster" && stores.clusters.find(c.org, c.name));
  changes.describe("cluster-sync", (c) => c.kind === "cluster-sync" && stores.sync.status(c.org, c.name));
  changes.describe("queue", (c) => c.kind === "queue" && stores.queues.find(c.org, c.name));
  changes.describe("project", (c) => c.kind === "project" && stores.projects.find(c.org, c.id));
  changes.describe("label", (c) => c.kind === "label" && stores.labels.find(c.org, c.name));
  changes.describe("assignment", (c) => c.kind === "assignment" && stores.assignments.find(c));
  changes.describe("default-label", (c) => stores.labels.defaultEntry(c.org));
}
