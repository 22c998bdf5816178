/**
 * A cluster's health in one word and one sentence, from its conditions and sync status: what an
 * operator reads first. Pure, so it is tested without a browser.
 */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  ClusterMode,
  ClusterState,
  ConditionStatus,
  SyncHealth,
  type Cluster,
  type ClusterCondition,
} from "../../gen/clusterplane/v1/cluster_pb.js";

export type HealthLevel = "ok" | "warn" | "bad" | "unknown" | "off";

export interface Health {
  level: HealthLevel;
  /** One or two words: Healthy, Unreachable, Degraded… */
  label: string;
  /** One sentence when something is wrong (or not known yet); empty when healthy. */
  reason: string;
}

/** The conditions in the order they are shown and judged. */
export const CONDITION_TYPES = ["Ready", "Reachable", "Authorized", "Provisioned", "Degraded"] as const;

export function condition(cluster: Cluster, type: string): ClusterCondition | undefined {
  return cluster.conditions.find((c) => c.type === type);
}

/** A pull-mode agent that has not renewed its lease for this long counts as silent. */
export const AGENT_SILENT_MS = 40_000;

export function clusterHealth(cluster: Cluster, now: number = Date.now()): Health {
  if (cluster.enabled === false) return { level: "off", label: "Disabled", reason: "Disabled: neither synced nor routed to." };
  const failing = (type: string) => {
    const c = condition(cluster, type);
    return c?.status === ConditionStatus.FALSE ? c : undefined;
  };
  const sentence = (c: ClusterCondition, fallback: string) => c.message || (c.reason ? `${c.reason}.` : fallback);
  for (const [type, label] of [
    ["Reachable", "Unreachable"],
    ["Authorized", "Unauthorized"],
    ["Ready", "Not ready"],
  ] as const) {
    const c = failing(type);
    if (c) return { level: "bad", label, reason: sentence(c, `${type} is false.`) };
  }
  const status = cluster.syncStatus;
  if (status?.health === SyncHealth.FAILING) {
    return { level: "bad", label: "Sync failing", reason: status.lastError || "The last sync pass could not reach the cluster." };
  }
  if (cluster.mode === ClusterMode.PULL) {
    const heartbeat = cluster.agent?.lastHeartbeatTime;
    if (!heartbeat) return { level: "warn", label: "Agent not joined", reason: "Its agent has not joined yet: run the agent command printed when the cluster was created." };
    const silentFor = now - timestampDate(heartbeat).getTime();
    if (silentFor > AGENT_SILENT_MS) {
      return { level: "bad", label: "Agent silent", reason: `Its agent has not renewed its lease for ${formatDuration(silentFor)}.` };
    }
  }
  const provisioned = failing("Provisioned");
  if (provisioned) return { level: "warn", label: "Not provisioned", reason: sentence(provisioned, "Some project-domains are not provisioned.") };
  const degraded = condition(cluster, "Degraded");
  if (degraded?.status === ConditionStatus.TRUE || status?.health === SyncHealth.DEGRADED) {
    const failed = status?.objectsFailed ?? 0;
    return {
      level: "warn",
      label: "Degraded",
      reason: degraded?.message || status?.lastError || `${failed} object${failed === 1 ? "" : "s"} could not be applied.`,
    };
  }
  if (cluster.conditions.length === 0 && (status?.health ?? SyncHealth.UNSPECIFIED) === SyncHealth.UNSPECIFIED) {
    return { level: "unknown", label: "Not synced yet", reason: "Not synced yet: no sync pass has reached it (is the sync loop on?)." };
  }
  return { level: "ok", label: "Healthy", reason: "" };
}

export function stateLabel(cluster: Cluster): string {
  return cluster.state === ClusterState.DRAINED ? "drained" : cluster.state === ClusterState.ACTIVE ? "active" : "unknown";
}

export function modeLabel(cluster: Cluster): string {
  return cluster.mode === ClusterMode.PULL ? "pull" : "push";
}

export function conditionStatusLabel(status: ConditionStatus): string {
  return status === ConditionStatus.TRUE ? "True" : status === ConditionStatus.FALSE ? "False" : "Unknown";
}

/** "5 s", "3 min", "2 h 5 min", "4 d". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} d`;
}

/** "3 min ago", or "never". */
export function age(timestamp: Timestamp | undefined, now: number = Date.now()): string {
  if (!timestamp) return "never";
  return `${formatDuration(now - timestampDate(timestamp).getTime())} ago`;
}

/** ISO time without milliseconds, for a title or a <time> element. */
export function isoTime(timestamp: Timestamp | undefined): string {
  return timestamp ? timestampDate(timestamp).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
}

/** The provisioned/desired count, "3/3", or "–" before the first pass. */
export function provisionedLabel(cluster: Cluster): string {
  const status = cluster.syncStatus;
  if (!status || (status.projectDomainsDesired === 0 && status.projectDomainsProvisioned === 0 && !status.lastAttemptTime)) return "–";
  return `${status.projectDomainsProvisioned}/${status.projectDomainsDesired}`;
}
