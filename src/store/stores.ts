import type { ClusterPoolConfig } from "../core/cluster-pool.js";
import { ClusterPoolRepository } from "./cluster-pool-repository.js";
import { openDatabase, type Db } from "./database.js";

/** Every repository over one database. */
export interface Stores {
  db: Db;
  pools: ClusterPoolRepository;
}

export interface StoreOptions {
  /** Database file, or ":memory:". */
  path: string;
  /** Contract given to each organization's default pool when it is provisioned. */
  defaultPoolConfig?: ClusterPoolConfig;
}

export function openStores(options: StoreOptions): Stores {
  const db = openDatabase(options.path);
  return { db, pools: new ClusterPoolRepository(db, options.defaultPoolConfig) };
}
