import { createHash } from "node:crypto";
import type { SyncStatus } from "../core/cluster.js";
import { projectDomainKey, type ProjectDomain } from "../core/desired-state.js";
import { statusAfter, type Condition, type ObjectFailure, type PassOutcome } from "../core/pass-outcome.js";
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
      this.db.prepare("DELETE FROM cluster_provisioning WHERE org = ? AND cluster = ?").run(org, cluster);
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

  /**
   * Stores what a pass found: the status with its conditions, and which project-domains the
   * cluster now has (provisioning truth, what routing sends executions by) — one change in the log.
   */
  recordOutcome(org: string, cluster: string, outcome: PassOutcome): SyncStatus | null {
    return this.changes.write(() => {
      const previous = this.status(org, cluster);
      const digest = digestOf(outcome.provisioned);
      const status = statusAfter(previous, outcome, digest);
      const unchanged = digest === previous?.provisionedDigest;
      if (!this.writePass(org, cluster, status)) return null;
      if (!unchanged) this.writeProvisioned(org, cluster, outcome.provisioned);
      return status;
    });
  }

  /** The project-domains provisioned on a cluster. */
  provisioned(org: string, cluster: string): ProjectDomain[] {
    return this.db
      .prepare("SELECT project, domain FROM cluster_provisioning WHERE org = ? AND cluster = ? ORDER BY project, domain")
      .all(org, cluster) as ProjectDomain[];
  }

  /** Every provisioned (cluster, project-domain), for the routing index. */
  allProvisioned(): { org: string; cluster: string; project: string; domain: string }[] {
    return this.db.prepare("SELECT org, cluster, project, domain FROM cluster_provisioning").all() as {
      org: string;
      cluster: string;
      project: string;
      domain: string;
    }[];
  }

  /** Replaces the provisioned set by the new one, touching only the rows that differ. */
  private writeProvisioned(org: string, cluster: string, pairs: readonly ProjectDomain[]): void {
    const wanted = new Map(pairs.map((pair) => [projectDomainKey(pair), pair]));
    const existing = new Map(this.provisioned(org, cluster).map((pair) => [projectDomainKey(pair), pair]));
    const remove = this.db.prepare("DELETE FROM cluster_provisioning WHERE org = ? AND cluster = ? AND project = ? AND domain = ?");
    const insert = this.db.prepare("INSERT INTO cluster_provisioning (org, cluster, project, domain) VALUES (?, ?, ?, ?)");
    for (const [pairKey, pair] of existing) if (!wanted.has(pairKey)) remove.run(org, cluster, pair.project, pair.domain);
    for (const [pairKey, pair] of wanted) if (!existing.has(pairKey)) insert.run(org, cluster, pair.project, pair.domain);
  }

  /** Returns false (writing nothing) when the cluster is gone. */
  private writePass(org: string, cluster: string, status: SyncStatus): boolean {
    // The cluster may have been deleted while its pass ran: nothing to record then.
    if (!this.db.prepare("SELECT 1 FROM clusters WHERE org = ? AND name = ?").get(org, cluster)) return false;
    this.db
      .prepare(
        `INSERT INTO cluster_sync_status (org, cluster, last_attempt_time, last_success_time, objects_applied,
           objects_unchanged, objects_failed, consecutive_failures, last_error, conditions, object_failures, failure_kind,
           pairs_provisioned, pairs_desired, pairs_digest)
         VALUES (@org, @cluster, @lastAttempt, @lastSuccess, @applied, @unchanged, @failed, @consecutiveFailures, @lastError,
           @conditions, @objectFailures, @failureKind, @pairsProvisioned, @pairsDesired, @pairsDigest)
         ON CONFLICT (org, cluster) DO UPDATE SET last_attempt_time = excluded.last_attempt_time,
           last_success_time = excluded.last_success_time, objects_applied = excluded.objects_applied,
           objects_unchanged = excluded.objects_unchanged, objects_failed = excluded.objects_failed,
           consecutive_failures = excluded.consecutive_failures, last_error = excluded.last_error,
           conditions = excluded.conditions, object_failures = excluded.object_failures, failure_kind = excluded.failure_kind,
           pairs_provisioned = excluded.pairs_provisioned, pairs_desired = excluded.pairs_desired, pairs_digest = excluded.pairs_digest`,
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
        conditions: JSON.stringify(status.conditions),
        objectFailures: JSON.stringify(status.objectFailures),
        failureKind: status.failureKind,
        pairsProvisioned: status.projectDomainsProvisioned,
        pairsDesired: status.projectDomainsDesired,
        pairsDigest: status.provisionedDigest,
      });
    this.changes.record({ kind: "cluster-sync", org, name: cluster });
    return true;
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
  conditions: string;
  object_failures: string;
  failure_kind: string;
  pairs_provisioned: number;
  pairs_desired: number;
  pairs_digest: string;
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
    conditions: (JSON.parse(row.conditions) as (Condition & { lastTransitionTime: string })[]).map((condition) => ({
      ...condition,
      lastTransitionTime: new Date(condition.lastTransitionTime),
    })),
    objectFailures: JSON.parse(row.object_failures) as ObjectFailure[],
    failureKind: row.failure_kind as SyncStatus["failureKind"],
    projectDomainsProvisioned: row.pairs_provisioned,
    projectDomainsDesired: row.pairs_desired,
    provisionedDigest: row.pairs_digest,
  };
}

/** Order-independent: the same pairs in any order give the same digest. */
function digestOf(pairs: readonly ProjectDomain[]): string {
  return createHash("sha256").update(pairs.map(projectDomainKey).sort().join("\n")).digest("base64");
}
