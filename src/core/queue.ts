import { checkNoRepeats, Violations } from "./errors.js";
import { checkClusterName } from "./names.js";

export type QueueState = "ACTIVE" | "DRAINED";

/** The selector that routes a queue to every cluster of its pool. */
export const ALL_CLUSTERS = "*";

export interface Queue {
  org: string;
  name: string;
  pool: string;
  /** `["*"]` for every cluster of the pool, or cluster names of that pool. */
  clusters: string[];
  state: QueueState;
  /** Set for a cluster's implicit queue: the cluster it goes with. */
  managedBy: string | null;
  createTime: Date;
  updateTime: Date;
  etag: string;
  /** The change-log revision that last changed it (0 before the log existed). */
  revision: number;
}

/** Checks a cluster selector's shape; whether the named clusters exist is the store's business. */
export function checkClusterSelector(clusters: readonly string[], field: string, violations: Violations): void {
  if (clusters.length === 0) {
    violations.add(field, `is required: ["${ALL_CLUSTERS}"] for every cluster of the pool, or cluster names`);
    return;
  }
  if (clusters.includes(ALL_CLUSTERS)) {
    if (clusters.length > 1) violations.add(field, `"${ALL_CLUSTERS}" already means every cluster; list it alone`);
    return;
  }
  clusters.forEach((name, index) => violations.add(`${field}[${index}]`, checkClusterName(name)));
  checkNoRepeats(clusters, (index) => `${field}[${index}]`, violations);
}
