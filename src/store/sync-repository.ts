import type { SyncStatus } from "../core/cluster.js";
import type { ChangeLog } from "./changes.js";
import type { Db } from "./database.js";

export interface AppliedObject {
  key: string;
  hash: string;
}

/** Per-cluster sync bookkeeping: the hash of every object last applied, and the outcome of each pass. */
export class SyncRepository {
  constructor(
    private readonly db: Db,
    private readonly changes: ChangeLog,
  ) {}

  /** Hashes of what was last applied to a cluster, by object key. */
  appliedHashes(org: string, cluster: string): Map<string, string> {
    const rows = this.db
      .prepare("SELECT object_key, hash FROM sync_applied WHERE org = ? AND cluster = ?")
      .all(org, cluster) as { object_key: string; hash: string }[];
    return new Map(rows.map((row) => [row.object_key, row.hash]));
  }

  /** Remembers objects applied to a cluster, in one transaction. */
  recordApplied(org: string, cluster: string, objects: readonly AppliedObject[]): void {
    if (objects.length === 0) return;
    const upsert = this.db.prepare(
      `INSERT INTO sync_applied (org, cluster, object_key, hash, applied_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (org, cluster, object_key) DO UPDATE SET hash = excluded.hash, applied_at = excluded.applied_at`,
    );
    const now = Date.now();
    // Bookkeeping of the loop, not a resource: it takes the write lock but is not in the log.
    this.changes.write(() => {
      for (const object of objects) upsert.run(org, cluster, object.key, object.hash, now);
    });
  }

  /** Forgets everything the loop knew about a cluster: it will be synced, and judged, afresh. */
  forget(org: string, cluster: string): void {
    this.changes.write(() => {
      this.db.prepare("DELETE FROM sync_applied WHERE org = ? AND cluster = ?").run(org, cluster);
      const { changes } = this.db.prepare("DELETE FROM cluster_sync_status WHERE org = ? AND cluster = ?").run(org, cluster);
      if (changes > 0) this.changes.record({ kind: "cluster-sync", org, name: cluster });
    });
  }

  /** The change-log revision of a cluster's sync status (0 when there is none). */
  revision(org: string, cluster: string): number {
    return (this.db.prepare("SELECT revision FROM cluster_sync_status WHERE org = ? AND cluster = ?").pluck().get(org, cluster) as number | undefined) ?? 0;
  }

  status(org: string, cluster: string): SyncStatus | null {
    const row = this.db.prepare("SELECT * FROM cluster_sync_status WHERE org = ? AND cluster = ?").get(org, cluster) as
      | StatusRow
      | undefined;
    return row ? toStatus(row) : null;
  }

  /** Stores the outcome of a pass (a change of the cluster's sync status, in the log). */
  recordPass(org: string, cluster: string, status: SyncStatus): void {
    this.changes.write(() => this.writePass(org, cluster, status));
  }

  private writePass(org: string, cluster: string, status: SyncStatus): void {
    // The cluster may have been deleted while its pass ran: nothing to record then.
    if (!this.db.prepare("SELECT 1 FROM clusters WHERE org = ? AND name = ?").get(org, cluster)) return;
    this.db
      .prepare(
        `INSERT INTO cluster_sync_status (org, cluster, last_attempt_time, last_success_time, objects_applied,
           objects_unchanged, objects_failed, consecutive_failures, last_error)
         VALUES (@org, @cluster, @lastAttempt, @lastSuccess, @applied, @unchanged, @failed, @consecutiveFailures, @lastError)
         ON CONFLICT (org, cluster) DO UPDATE SET last_attempt_time = excluded.last_attempt_time,
           last_success_time = excluded.last_success_time, objects_applied = excluded.objects_applied,
           objects_unchanged = excluded.objects_unchanged, objects_failed = excluded.objects_failed,
           consecutive_failures = excluded.consecutive_failures, last_error = excluded.last_error`,
      )
      .run({
        org,
        cluster,
        lastAttempt: status.lastAttemptTime?.getTime() ?? null,
        lastSuccess: status.lastSuccessTime?.getTime() ?? null,
        applied: status.objectsApplied,
        unchanged: status.objectsUnchanged,
        failed: status.objectsFailed,
        consecutiveFailures: status.consecutiveFailures,
        lastError: status.lastError,
      });
    this.changes.record({ kind: "cluster-sync", org, name: cluster });
  }
}

interface StatusRow {
  last_attempt_time: number | null;
  last_success_time: number | null;
  objects_applied: number;
  objects_unchanged: number;
  objects_failed: number;
  consecutive_failures: number;
  last_error: string;
}

export function toStatus(row: StatusRow): SyncStatus {
  return {
    lastAttemptTime: row.last_attempt_time === null ? null : new Date(row.last_attempt_time),
    lastSuccessTime: row.last_success_time === null ? null : new Date(row.last_success_time),
    objectsApplied: row.objects_applied,
    objectsUnchanged: row.objects_unchanged,
    objectsFailed: row.objects_failed,
    consecutiveFailures: row.consecutive_failures,
    lastError: row.last_error,
  };
}
