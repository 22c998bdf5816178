import { createHash } from "node:crypto";
import type { SyncStatus } from "../core/cluster.js";
import { projectDomainKey, type ProjectDomain } from "../core/desired-state.js";
import { isAgentSilent, statusAfter, statusWhenAgentBack, statusWhenAgentSilent, type Condition, type ObjectFailure, type PassOutcome } from "../core/pass-outcome.js";
import type { ChangeLog } from "./changes.js";
import type { Selectable } from "kysely";
import type { Tables } from "./schema.js";

export interface AppliedObject {
  key: string;
  hash: string;
}

/** Per-cluster sync bookkeeping: the hash of every object last applied, and the outcome of each pass. */
export class SyncRepository {
  constructor(private readonly changes: ChangeLog) {}

  /** The current unit of work's transaction, or the shared handle. */
  private get db() {
    return this.changes.db;
  }

  /** Hashes of what was last applied to a cluster, by object key. */
  async appliedHashes(org: string, cluster: string): Promise<Map<string, string>> {
    const rows = await this.db
      .selectFrom("sync_applied")
      .select(["object_key", "hash"])
      .where("org", "=", org)
      .where("cluster", "=", cluster)
      .execute();
    return new Map(rows.map((row) => [row.object_key, row.hash]));
  }

  /** Remembers objects applied to a cluster, in one transaction. */
  async recordApplied(org: string, cluster: string, objects: readonly AppliedObject[]): Promise<void> {
    if (objects.length === 0) return;
    const now = Date.now();
    // Bookkeeping of the loop, not a resource: it takes the write lock but is not in the log.
    await this.changes.write(async () => {
      for (const object of objects) {
        await this.db
          .insertInto("sync_applied")
          .values({ org, cluster, object_key: object.key, hash: object.hash, applied_at: now })
          .onConflict((conflict) =>
            conflict
              .columns(["org", "cluster", "object_key"])
              .doUpdateSet((eb) => ({ hash: eb.ref("excluded.hash"), applied_at: eb.ref("excluded.applied_at") })),
          )
          .execute();
      }
    });
  }

  /** Forgets everything the loop knew about a cluster: it will be synced, and judged, afresh. */
  forget(org: string, cluster: string): Promise<void> {
    return this.changes.write(async () => {
      await this.db.deleteFrom("sync_applied").where("org", "=", org).where("cluster", "=", cluster).execute();
      await this.db.deleteFrom("cluster_provisioning").where("org", "=", org).where("cluster", "=", cluster).execute();
      const { numDeletedRows } = await this.db
        .deleteFrom("cluster_sync_status")
        .where("org", "=", org)
        .where("cluster", "=", cluster)
        .executeTakeFirstOrThrow();
      if (numDeletedRows > 0n) await this.changes.record({ kind: "cluster-sync", org, name: cluster });
    });
  }

  /** The change-log revision of a cluster's sync status (0 when there is none). */
  async revision(org: string, cluster: string): Promise<number> {
    const row = await this.db
      .selectFrom("cluster_sync_status")
      .select("revision")
      .where("org", "=", org)
      .where("cluster", "=", cluster)
      .executeTakeFirst();
    return row?.revision ?? 0;
  }

  async status(org: string, cluster: string): Promise<SyncStatus | null> {
    const row = await this.db
      .selectFrom("cluster_sync_status")
      .selectAll()
      .where("org", "=", org)
      .where("cluster", "=", cluster)
      .executeTakeFirst();
    return row ? toStatus(row) : null;
  }

  /**
   * Stores what a pass found: the status with its conditions, and which project-domains the
   * cluster now has (provisioning truth, what routing sends executions by) — one change in the log.
   */
  recordOutcome(org: string, cluster: string, outcome: PassOutcome): Promise<SyncStatus | null> {
    return this.changes.write(async () => {
      const previous = await this.status(org, cluster);
      const digest = digestOf(outcome.provisioned);
      const status = statusAfter(previous, outcome, digest);
      const unchanged = digest === previous?.provisionedDigest;
      if (!(await this.writePass(org, cluster, status))) return null;
      if (!unchanged) await this.writeProvisioned(org, cluster, outcome.provisioned);
      return status;
    });
  }

  /**
   * A pull-mode cluster's agent went silent (`silentSince` its last heartbeat): it leaves routing.
   * Done once per silence; returns whether anything was written.
   */
  recordAgentSilent(org: string, cluster: string, silentSince: Date): Promise<boolean> {
    return this.changes.write(async () => {
      const previous = await this.status(org, cluster);
      if (isAgentSilent(previous)) return false;
      return this.writePass(org, cluster, statusWhenAgentSilent(previous, silentSince, new Date(await this.changes.clockMs())));
    });
  }

  /** The agent of a silent cluster renewed its lease: back in routing, by what it last reported. */
  recordAgentBack(org: string, cluster: string): Promise<boolean> {
    return this.changes.write(async () => {
      const previous = await this.status(org, cluster);
      if (!previous || !isAgentSilent(previous)) return false;
      return this.writePass(org, cluster, statusWhenAgentBack(previous, new Date(await this.changes.clockMs())));
    });
  }

  /** The project-domains provisioned on a cluster. */
  provisioned(org: string, cluster: string): Promise<ProjectDomain[]> {
    return this.db
      .selectFrom("cluster_provisioning")
      .select(["project", "domain"])
      .where("org", "=", org)
      .where("cluster", "=", cluster)
      .orderBy("project")
      .orderBy("domain")
      .execute();
  }

  /** Every provisioned (cluster, project-domain), for the routing index. */
  allProvisioned(): Promise<{ org: string; cluster: string; project: string; domain: string }[]> {
    return this.db.selectFrom("cluster_provisioning").select(["org", "cluster", "project", "domain"]).execute();
  }

  /** Replaces the provisioned set by the new one, touching only the rows that differ. */
  private async writeProvisioned(org: string, cluster: string, pairs: readonly ProjectDomain[]): Promise<void> {
    const wanted = new Map(pairs.map((pair) => [projectDomainKey(pair), pair]));
    const existing = new Map((await this.provisioned(org, cluster)).map((pair) => [projectDomainKey(pair), pair]));
    for (const [pairKey, pair] of existing) {
      if (wanted.has(pairKey)) continue;
      await this.db
        .deleteFrom("cluster_provisioning")
        .where("org", "=", org)
        .where("cluster", "=", cluster)
        .where("project", "=", pair.project)
        .where("domain", "=", pair.domain)
        .execute();
    }
    for (const [pairKey, pair] of wanted) {
      if (existing.has(pairKey)) continue;
      await this.db.insertInto("cluster_provisioning").values({ org, cluster, project: pair.project, domain: pair.domain }).execute();
    }
  }

  /** Returns false (writing nothing) when the cluster is gone. */
  private async writePass(org: string, cluster: string, status: SyncStatus): Promise<boolean> {
    // The cluster may have been deleted while its pass ran: nothing to record then.
    const exists = await this.db.selectFrom("clusters").select("name").where("org", "=", org).where("name", "=", cluster).executeTakeFirst();
    if (!exists) return false;
    const columns = {
      last_attempt_time: status.lastAttemptTime?.getTime() ?? null,
      last_success_time: status.lastSuccessTime?.getTime() ?? null,
      objects_applied: status.objectsApplied,
      objects_unchanged: status.objectsUnchanged,
      objects_failed: status.objectsFailed,
      consecutive_failures: status.consecutiveFailures,
      last_error: status.lastError,
      conditions: JSON.stringify(status.conditions),
      object_failures: JSON.stringify(status.objectFailures),
      failure_kind: status.failureKind,
      pairs_provisioned: status.projectDomainsProvisioned,
      pairs_desired: status.projectDomainsDesired,
      pairs_digest: status.provisionedDigest,
    };
    await this.db
      .insertInto("cluster_sync_status")
      .values({ org, cluster, ...columns })
      .onConflict((conflict) => conflict.columns(["org", "cluster"]).doUpdateSet(columns))
      .execute();
    await this.changes.record({ kind: "cluster-sync", org, name: cluster });
    return true;
  }
}

/** A cluster_sync_status row as read back (what the schema declares, without its keys). */
type StatusRow = Omit<Selectable<Tables["cluster_sync_status"]>, "org" | "cluster" | "revision">;

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
