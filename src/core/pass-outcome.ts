/**
 * What a reconcile pass over one cluster found, in the terms health and routing are decided in.
 * The reconciler (push today, pull agents later) produces a PassOutcome; the store turns it into
 * conditions and provisioning truth; routing reads those. Pure types and rules, no I/O.
 */
import type { SyncStatus } from "./cluster.js";
import type { ProjectDomain } from "./desired-state.js";

/**
 * A failure that stops the pass for the whole cluster. Each kind has one effect (README table):
 * the cluster takes no new executions while its last pass ended in any of these.
 */
export type ClusterFailureKind =
  /** DNS, connection refused or reset, TLS verification, request timeout. */
  | "unreachable"
  /** 401: the token is wrong or expired. */
  | "unauthorized"
  /** 403 on namespaces: the identity lacks RBAC to provision. */
  | "forbidden"
  /** 404 on discovery or namespaces: the endpoint is not a Kubernetes API (wrong URL or path). */
  | "wrong-endpoint"
  /** 5xx, or 429 (with Retry-After honoured). */
  | "server-error"
  /** The credential files could not be used (missing, outside the credential directories, bad CA). */
  | "credentials"
  /** Pull mode: the cluster's agent has not renewed its lease within the grace. */
  | "agent-silent";

/** A failure confined to one object: the pass goes on, the cluster stays routable for what is provisioned. */
export type ObjectFailureKind =
  /** The cluster does not serve the object's kind (no such resource in discovery). */
  | "unsupported-kind"
  /** The API rejected the object (422 Invalid, 400 BadRequest, 409 Conflict). */
  | "rejected"
  /** 403 on one object (RBAC for that kind only). */
  | "forbidden";

export interface ClusterFailure {
  kind: ClusterFailureKind;
  /** One sentence an operator can act on ("the token was refused (401): fix the token file …"). */
  message: string;
}

export interface ObjectFailure {
  /** The object's key: apiVersion/kind/namespace/name. */
  key: string;
  kind: ObjectFailureKind;
  message: string;
}

export interface PassOutcome {
  startedAt: Date;
  finishedAt: Date;
  /** A full re-apply (drift repair) rather than a pass over what changed. */
  full: boolean;
  applied: number;
  unchanged: number;
  /** Set when the pass stopped for the whole cluster. */
  failure: ClusterFailure | null;
  /** Every object that failed on their own; `objectFailures` keeps only the first of them. */
  objectsFailed: number;
  /** Objects that failed on their own (at most MAX_OBJECT_FAILURES kept). */
  objectFailures: ObjectFailure[];
  /** Project-domains whose objects could not be rendered from the templates. */
  templateErrors: string[];
  /**
   * Every project-domain the cluster should have, and those whose Namespace and ServiceAccount
   * are on the cluster at the current desired hash after this pass (applied now or unchanged).
   * After a cluster-wide failure, `provisioned` lists what is known to be there still.
   */
  desired: ProjectDomain[];
  provisioned: ProjectDomain[];
}

export const MAX_OBJECT_FAILURES = 20;

export type ConditionType = "Reachable" | "Authorized" | "Provisioned" | "Degraded";
export type ConditionStatus = "True" | "False" | "Unknown";

/** A Kubernetes-style condition: status, a CamelCase reason, a sentence, when status last changed. */
export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: Date;
}

const UNREACHABLE_KINDS = new Set<ClusterFailureKind>(["unreachable", "wrong-endpoint", "server-error", "credentials", "agent-silent"]);

/**
 * The conditions after a pass. A condition keeps its transition time while its status holds; the
 * reason and message always describe the latest pass.
 */
export function conditionsAfter(previous: readonly Condition[], outcome: PassOutcome): Condition[] {
  const now = outcome.finishedAt;
  const failure = outcome.failure;
  const reachable: Omit<Condition, "lastTransitionTime"> =
    failure && UNREACHABLE_KINDS.has(failure.kind)
      ? { type: "Reachable", status: "False", reason: reasonOf(failure.kind), message: failure.message }
      : { type: "Reachable", status: "True", reason: "APIServerAnswered", message: "the last pass reached the cluster's API server" };
  const authorized: Omit<Condition, "lastTransitionTime"> =
    failure && (failure.kind === "unauthorized" || failure.kind === "forbidden")
      ? { type: "Authorized", status: "False", reason: reasonOf(failure.kind), message: failure.message }
      : failure && UNREACHABLE_KINDS.has(failure.kind)
        ? { type: "Authorized", status: "Unknown", reason: "NotReached", message: "the API server was not reached" }
        : { type: "Authorized", status: "True", reason: "Provisioning", message: "the credentials may provision project-domains" };
  const have = outcome.provisioned.length;
  const want = outcome.desired.length;
  const provisioned: Omit<Condition, "lastTransitionTime"> =
    have === want && !failure
      ? { type: "Provisioned", status: "True", reason: "AllProvisioned", message: `${have} of ${want} project-domains provisioned` }
      : { type: "Provisioned", status: "False", reason: failure ? "PassFailed" : "Incomplete", message: `${have} of ${want} project-domains provisioned` };
  const objectProblems = outcome.objectFailures.length + outcome.templateErrors.length;
  const degraded: Omit<Condition, "lastTransitionTime"> =
    objectProblems > 0
      ? {
          type: "Degraded",
          status: "True",
          reason: outcome.templateErrors.length > 0 && outcome.objectFailures.length === 0 ? "TemplateError" : "ObjectsFailed",
          message: firstProblem(outcome),
        }
      : { type: "Degraded", status: "False", reason: "AllObjectsApplied", message: "every object was applied" };
  return [reachable, authorized, provisioned, degraded].map((next) => {
    const before = previous.find((condition) => condition.type === next.type);
    const lastTransitionTime = before && before.status === next.status ? before.lastTransitionTime : now;
    return { ...next, lastTransitionTime };
  });
}

/** Why the cluster may not take new executions at all, from its conditions; "" when it may. */
export function clusterIneligibility(conditions: readonly Condition[]): string {
  for (const type of ["Reachable", "Authorized"] as const) {
    const condition = conditions.find((c) => c.type === type);
    if (condition && condition.status !== "True" && condition.status !== "Unknown") return condition.message;
  }
  const reachable = conditions.find((c) => c.type === "Reachable");
  if (reachable?.status === "Unknown") return "not reached yet: waiting for its first sync pass";
  return "";
}

function reasonOf(kind: ClusterFailureKind): string {
  const reasons: Record<ClusterFailureKind, string> = {
    unreachable: "Unreachable",
    unauthorized: "Unauthorized",
    forbidden: "Forbidden",
    "wrong-endpoint": "NotKubernetesAPI",
    "server-error": "ServerError",
    credentials: "CredentialsUnusable",
    "agent-silent": "AgentSilent",
  };
  return reasons[kind];
}

function firstProblem(outcome: PassOutcome): string {
  const count = outcome.objectsFailed + outcome.templateErrors.length;
  const first = firstObjectProblem(outcome);
  return count > 1 ? `${first} (and ${count - 1} more)` : first;
}

/** The first object or template that failed, in words; "" when none did. */
function firstObjectProblem(outcome: PassOutcome): string {
  const failure = outcome.objectFailures[0];
  if (failure) return `${failure.key}: ${failure.message}`;
  return outcome.templateErrors[0] ? `template: ${outcome.templateErrors[0]}` : "";
}

/** A pass in three figures: objects and templates that failed, whether it was clean, its first error. */
export function passSummary(outcome: PassOutcome): { failed: number; ok: boolean; error: string } {
  const failed = outcome.objectsFailed + outcome.templateErrors.length;
  return { failed, ok: outcome.failure === null && failed === 0, error: outcome.failure?.message ?? firstObjectProblem(outcome) };
}

/**
 * A cluster's sync status after a pass: counts, the last success, consecutive cluster-wide
 * failures (what backoff and FAILING go by), the error in words and the conditions.
 * `provisionedDigest` identifies the provisioned set, so an unchanged one need not be rewritten.
 */
export function statusAfter(previous: SyncStatus | null, outcome: PassOutcome, provisionedDigest: string): SyncStatus {
  const { failed, ok, error } = passSummary(outcome);
  return {
    lastAttemptTime: outcome.startedAt,
    lastSuccessTime: ok ? outcome.finishedAt : (previous?.lastSuccessTime ?? null),
    objectsApplied: outcome.applied,
    objectsUnchanged: outcome.unchanged,
    objectsFailed: failed,
    consecutiveFailures: outcome.failure ? (previous?.consecutiveFailures ?? 0) + 1 : 0,
    lastError: error,
    conditions: conditionsAfter(previous?.conditions ?? [], outcome),
    objectFailures: outcome.objectFailures,
    failureKind: outcome.failure?.kind ?? "",
    projectDomainsProvisioned: outcome.provisioned.length,
    projectDomainsDesired: outcome.desired.length,
    provisionedDigest,
  };
}

/**
 * A pull-mode cluster whose agent stopped renewing its lease: Reachable=False (it leaves routing),
 * Authorized unknown; what it had provisioned and its object failures are kept as last reported.
 */
export function statusWhenAgentSilent(previous: SyncStatus | null, silentSince: Date, now: Date): SyncStatus {
  const message =
    `agent silent since ${silentSince.toISOString()}: its lease was not renewed in time; ` +
    "check the agent (kubectl logs in the cluster) and its connection to the control plane";
  const changed: Omit<Condition, "lastTransitionTime">[] = [
    { type: "Reachable", status: "False", reason: "AgentSilent", message },
    { type: "Authorized", status: "Unknown", reason: "NotReached", message: "the agent is not connected" },
  ];
  return {
    ...(previous ?? emptyStatus()),
    consecutiveFailures: (previous?.consecutiveFailures ?? 0) + 1,
    lastError: message,
    failureKind: "agent-silent",
    conditions: withConditions(previous?.conditions ?? [], changed, now),
  };
}

/** The agent of a silent pull-mode cluster renewed its lease: reachable again, by its last report. */
export function statusWhenAgentBack(previous: SyncStatus, now: Date): SyncStatus {
  return {
    ...previous,
    consecutiveFailures: 0,
    lastError: "",
    failureKind: "",
    conditions: withConditions(previous.conditions, [
      { type: "Reachable", status: "True", reason: "AgentConnected", message: "the agent renewed its lease" },
      { type: "Authorized", status: "True", reason: "Provisioning", message: "the agent may provision project-domains" },
    ], now),
  };
}

/** Whether a status says the cluster's agent went silent (and has not been heard from since). */
export function isAgentSilent(status: SyncStatus | null): boolean {
  return status?.failureKind === "agent-silent";
}

function withConditions(previous: readonly Condition[], changed: Omit<Condition, "lastTransitionTime">[], now: Date): Condition[] {
  const kept = previous.filter((condition) => !changed.some((next) => next.type === condition.type));
  const updated = changed.map((next) => {
    const before = previous.find((condition) => condition.type === next.type);
    return { ...next, lastTransitionTime: before && before.status === next.status ? before.lastTransitionTime : now };
  });
  return [...updated, ...kept];
}

function emptyStatus(): SyncStatus {
  return {
    lastAttemptTime: null,
    lastSuccessTime: null,
    objectsApplied: 0,
    objectsUnchanged: 0,
    objectsFailed: 0,
    consecutiveFailures: 0,
    lastError: "",
    conditions: [],
    objectFailures: [],
    failureKind: "",
    projectDomainsProvisioned: 0,
    projectDomainsDesired: 0,
    provisionedDigest: "",
  };
}
