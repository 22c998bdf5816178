import type { ClusterPoolConfig } from "../core/cluster-pool.js";
import { ClusterPoolRepository } from "./cluster-pool-repository.js";
import { ClusterRepository } from "./cluster-repository.js";
import { openDatabase, type Db } from "./database.js";
import { QueueRepository } from "./queue-repository.js";

/** Every repository over one database. */
export interface Stores {
  db: Db;
  pools: ClusterPoolRepository;
  clusters: ClusterRepository;
  queues: QueueRepository;
}

export interface StoreOptions {
  /** Database file, or ":memory:". */
  path: string;
  /** Contract given to each organization's default pool when it is provisioned. */
  defaultPoolConfig?: ClusterPoolConfig;
}

export function openStores(options: StoreOptions): Stores {
  const db = openDatabase(options.path);
  const pools = new ClusterPoolRepository(db, options.defaultPoolConfig);
  const queues = new QueueRepository(db, pools);
  const clusters = new ClusterRepository(db, pools, queues);
  return { db, pools, clusters, queues };
}
