import { listInWords } from "../core/errors.js";
import { DEFAULT_DOMAINS } from "../core/project.js";
import { AssignmentRepository } from "./assignment-repository.js";
import { ChangeFeed } from "./changes.js";
import { ClusterLabelRepository } from "./cluster-label-repository.js";
import { ClusterPoolRepository } from "./cluster-pool-repository.js";
import { ClusterRepository } from "./cluster-repository.js";
import { openDatabase, type Db } from "./database.js";
import { ProjectRepository } from "./project-repository.js";
import { QueueRepository } from "./queue-repository.js";
import { SyncRepository } from "./sync-repository.js";

/** Every repository over one database, the configured domains, and the feed of their changes. */
export interface Stores {
  db: Db;
  changes: ChangeFeed;
  domains: readonly string[];
  pools: ClusterPoolRepository;
  clusters: ClusterRepository;
  queues: QueueRepository;
  projects: ProjectRepository;
  labels: ClusterLabelRepository;
  assignments: AssignmentRepository;
  sync: SyncRepository;
}

export interface StoreOptions {
  /** Database file, or ":memory:". */
  path: string;
  /** The domains every project is provisioned for. */
  domains?: readonly string[];
}

export function openStores(options: StoreOptions): Stores {
  const db = openDatabase(options.path);
  const changes = new ChangeFeed();
  const pools = new ClusterPoolRepository(db);
  const queues = new QueueRepository(db, changes, pools);
  const sync = new SyncRepository(db, changes);
  const clusters = new ClusterRepository(db, changes, pools, queues, sync);
  const projects = new ProjectRepository(db, changes);
  const labels = new ClusterLabelRepository(db, changes);
  const assignments = new AssignmentRepository(db, changes, projects, labels);
  clusters.addReferenceCheck((org, cluster) => {
    const naming = labels.labelsNaming(org, cluster);
    return naming.length
      ? `label(s) ${listInWords(naming)} route to it; remove it from them (UpdateClusterLabel) first`
      : null;
  });
  return {
    db,
    changes,
    domains: options.domains ?? DEFAULT_DOMAINS,
    pools,
    clusters,
    queues,
    projects,
    labels,
    assignments,
    sync,
  };
}
