import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ClusterAuthSchema,
  ClusterMode,
  ClusterSchema,
  CreateJoinTokenResponseSchema,
  ClusterService,
  ClusterSyncStatusSchema,
  ClusterState as ClusterStateEnum,
  ConditionStatus,
  SyncHealth,
  type Cluster as ClusterMessage,
  type ClusterAuth as ClusterAuthMessage,
} from "../../gen/clusterplane/v1/cluster_pb.js";
import {
  checkAuth,
  checkEndpoint,
  modeOf,
  UPDATABLE_CLUSTER_FIELDS,
  type Cluster,
  type ClusterAuth,
  type ClusterChanges,
  type ClusterState,
} from "../core/cluster.js";
import { DEFAULT_POOL_NAME } from "../core/cluster-pool.js";
import type { Condition } from "../core/pass-outcome.js";
import { Violations } from "../core/errors.js";
import { checkClusterName, checkResourceName } from "../core/names.js";
import type { PageRequest } from "../core/paging.js";
import { DEFAULT_JOIN_TOKEN_TTL_MS, type AgentRepository } from "../store/agent-repository.js";
import type { ClusterRepository } from "../store/cluster-repository.js";

const MAX_JOIN_TOKEN_TTL_SECONDS = 30 * 24 * 3600;

/** The command an operator runs in the data-plane cluster (or a kubeconfig away from it). */
export function agentCommand(controlPlaneUrl: string, joinToken: string): string {
  return `clusterplane agent --control-plane ${controlPlaneUrl} --join-token ${joinToken}`;
}
import { checkNamedKey, checkOrgField, listPage, requireMessage, stateFilter, toTimestamp } from "./common.js";

/** What ClusterService needs besides the clusters: pull mode's join tokens, and how agents reach us. */
export interface PullModeOptions {
  agents: AgentRepository;
  /** The URL agents are told to connect to (in the printed command). */
  controlPlaneUrl: () => string;
  /** Runs `work` as one unit of work (one transaction). */
  inOneWrite: <T>(work: () => Promise<T>) => Promise<T>;
}

/** ClusterService: validates requests, then hands them to the cluster repository. */
export function clusterService(clusters: ClusterRepository, credentialDirectories: readonly string[], pull: PullModeOptions): ServiceImpl<typeof ClusterService> {
  const joinTokenFor = async (org: string, cluster: string, ttlSeconds: number) => {
    const issued = await pull.agents.issueJoinToken(org, cluster, ttlSeconds > 0 ? ttlSeconds * 1000 : DEFAULT_JOIN_TOKEN_TTL_MS);
    return create(CreateJoinTokenResponseSchema, {
      joinToken: issued.token,
      expireTime: toTimestamp(issued.expiresAt),
      agentCommand: agentCommand(pull.controlPlaneUrl(), issued.token),
    });
  };
  return {
    async createCluster(request) {
      const cluster = requireMessage(request.cluster, "cluster");
      const violations = new Violations();
      checkOrgField(cluster.org, "cluster.org", violations);
      violations.add("cluster.name", checkClusterName(cluster.name));
      if (cluster.pool !== "") violations.add("cluster.pool", checkResourceName(cluster.pool));
      // Neither endpoint nor auth: the seed's `create cluster NAME --pool POOL`, a pull-mode cluster.
      const auth = cluster.endpoint === "" && cluster.auth === undefined ? ({ kind: "agent" } as const) : fromAuthMessage(cluster.auth);
      checkAuth(auth, credentialDirectories, "cluster.auth", violations);
      const enabled = cluster.enabled ?? true;
      checkEndpoint(cluster.endpoint, auth, enabled, "cluster.endpoint", violations);
      violations.throwIfAny();
      const registration = { org: cluster.org, name: cluster.name, pool: cluster.pool || DEFAULT_POOL_NAME, endpoint: cluster.endpoint, enabled, auth: auth! };
      if (auth?.kind !== "agent") return { cluster: toClusterMessage(await clusters.create(registration)) };
      // The cluster and its first join token commit together: never a pull cluster nobody can join.
      return pull.inOneWrite(async () => {
        const created = await clusters.create(registration);
        return { cluster: toClusterMessage(created), join: await joinTokenFor(created.org, created.name, 0) };
      });
    },

    async createJoinToken(request) {
      const violations = new Violations();
      checkOrgField(request.org, "org", violations);
      violations.add("cluster", checkClusterName(request.cluster));
      if (request.ttlSeconds !== 0 && (request.ttlSeconds < 60 || request.ttlSeconds > MAX_JOIN_TOKEN_TTL_SECONDS)) {
        violations.add("ttl_seconds", `${request.ttlSeconds} must be between 60 and ${MAX_JOIN_TOKEN_TTL_SECONDS} (30 days), or 0 for 24 hours`);
      }
      violations.throwIfAny();
      return joinTokenFor(request.org, request.cluster, request.ttlSeconds);
    },

    async revokeAgentAccess(request) {
      checkNamedKey(request.org, request.cluster, checkClusterName);
      const revoked = await pull.agents.revokeAll(request.org, request.cluster);
      return { joinTokensRevoked: revoked.joinTokens, agentCredentialsRevoked: revoked.credentials };
    },

    async getCluster(request) {
      checkNamedKey(request.org, request.name, checkClusterName);
      return { cluster: toClusterMessage(await clusters.get(request.org, request.name)) };
    },

    async listClusters(request) {
      const violations = new Violations();
      if (request.pool !== "") violations.add("pool", checkResourceName(request.pool));
      const filter = { pool: request.pool, enabled: request.enabled, state: stateFilter<ClusterState>(ClusterStateEnum, request.state, "state", violations) };
      const fetch = (page: PageRequest) => clusters.list(request.org, filter, page);
      const { items, nextPageToken } = await listPage(request, filter, violations, fetch, toClusterMessage, (cluster) => [cluster.name]);
      return { clusters: items, nextPageToken };
    },

    async updateCluster(request) {
      const cluster = requireMessage(request.cluster, "cluster");
      const violations = new Violations();
      checkOrgField(cluster.org, "cluster.org", violations);
      violations.add("cluster.name", checkClusterName(cluster.name));
      const masked = (request.updateMask?.paths.length ?? 0) > 0;
      const paths = masked ? request.updateMask!.paths : [...UPDATABLE_CLUSTER_FIELDS];
      const changes: ClusterChanges = {};
      paths.forEach((path, index) => {
        if (path === "endpoint") changes.endpoint = cluster.endpoint;
        // Without a mask an unset `enabled` means "leave it"; named in the mask, unset means true.
        else if (path === "enabled") {
          if (cluster.enabled !== undefined || masked) changes.enabled = cluster.enabled ?? true;
        }
        else if (path === "auth") changes.auth = fromAuthMessage(cluster.auth);
        else violations.add(`update_mask.paths[${index}]`, `"${path}" cannot be updated; use ${UPDATABLE_CLUSTER_FIELDS.join(", ")}`);
      });
      if (paths.includes("auth")) checkAuth(changes.auth, credentialDirectories, "cluster.auth", violations);
      if (changes.endpoint !== undefined && changes.endpoint !== "") {
        checkEndpoint(changes.endpoint, changes.auth, true, "cluster.endpoint", violations);
      }
      violations.throwIfAny();
      const updated = await clusters.update(cluster.org, cluster.name, changes, cluster.etag, cluster.pool);
      return { cluster: toClusterMessage(updated) };
    },

    async drainCluster(request) {
      checkNamedKey(request.org, request.name, checkClusterName);
      return { cluster: toClusterMessage(await clusters.setState(request.org, request.name, "DRAINED")) };
    },

    async activateCluster(request) {
      checkNamedKey(request.org, request.name, checkClusterName);
      return { cluster: toClusterMessage(await clusters.setState(request.org, request.name, "ACTIVE")) };
    },

    async deleteCluster(request) {
      checkNamedKey(request.org, request.name, checkClusterName);
      await clusters.delete(request.org, request.name, request.etag);
      return {};
    },
  };
}

function fromAuthMessage(auth: ClusterAuthMessage | undefined): ClusterAuth | undefined {
  switch (auth?.method.case) {
    case "bearerTokenFile":
      return { kind: "bearer_token_file", tokenPath: auth.method.value.tokenPath, caCertPath: auth.method.value.caCertPath };
    case "inCluster":
      return { kind: "in_cluster" };
    case "agent":
      return { kind: "agent" };
    default:
      return undefined;
  }
}

function toAuthMessage(auth: ClusterAuth): ClusterAuthMessage {
  if (auth.kind === "in_cluster") {
    return create(ClusterAuthSchema, { method: { case: "inCluster", value: {} } });
  }
  if (auth.kind === "agent") return create(ClusterAuthSchema, { method: { case: "agent", value: {} } });
  const value = { tokenPath: auth.tokenPath, caCertPath: auth.caCertPath };
  return create(ClusterAuthSchema, { method: { case: "bearerTokenFile", value } });
}

export function toClusterMessage(cluster: Cluster): ClusterMessage {
  return create(ClusterSchema, {
    org: cluster.org,
    name: cluster.name,
    pool: cluster.pool,
    endpoint: cluster.endpoint,
    enabled: cluster.enabled,
    auth: toAuthMessage(cluster.auth),
    state: ClusterStateEnum[cluster.state],
    syncStatus: toSyncStatusMessage(cluster),
    createTime: toTimestamp(cluster.createTime),
    updateTime: toTimestamp(cluster.updateTime),
    etag: cluster.etag,
    revision: BigInt(cluster.revision),
    mode: modeOf(cluster) === "pull" ? ClusterMode.PULL : ClusterMode.PUSH,
    agent: cluster.agent
      ? {
          version: cluster.agent.version,
          joinTime: cluster.agent.joinedAt ? toTimestamp(cluster.agent.joinedAt) : undefined,
          lastHeartbeatTime: cluster.agent.heartbeatAt ? toTimestamp(cluster.agent.heartbeatAt) : undefined,
        }
      : undefined,
    conditions: (cluster.sync?.conditions ?? []).map((condition) => ({
      type: condition.type,
      status: CONDITION_STATUS[condition.status],
      reason: condition.reason,
      message: condition.message,
      lastTransitionTime: toTimestamp(condition.lastTransitionTime),
    })),
  });
}

const CONDITION_STATUS: Record<Condition["status"], ConditionStatus> = {
  True: ConditionStatus.TRUE,
  False: ConditionStatus.FALSE,
  Unknown: ConditionStatus.UNKNOWN,
};

export function toSyncStatusMessage({ enabled, sync }: Pick<Cluster, "enabled" | "sync">) {
  let health = SyncHealth.UNSPECIFIED;
  if (!enabled) health = SyncHealth.DISABLED;
  else if (sync?.consecutiveFailures) health = SyncHealth.FAILING;
  else if (sync?.objectsFailed) health = SyncHealth.DEGRADED;
  else if (sync) health = SyncHealth.HEALTHY;
  return create(ClusterSyncStatusSchema, {
    health,
    lastAttemptTime: sync?.lastAttemptTime ? toTimestamp(sync.lastAttemptTime) : undefined,
    lastSuccessTime: sync?.lastSuccessTime ? toTimestamp(sync.lastSuccessTime) : undefined,
    objectsApplied: sync?.objectsApplied ?? 0,
    objectsUnchanged: sync?.objectsUnchanged ?? 0,
    objectsFailed: sync?.objectsFailed ?? 0,
    consecutiveFailures: sync?.consecutiveFailures ?? 0,
    projectDomainsProvisioned: sync?.projectDomainsProvisioned ?? 0,
    projectDomainsDesired: sync?.projectDomainsDesired ?? 0,
    failureKind: sync?.failureKind ?? "",
    objectFailures: (sync?.objectFailures ?? []).map(({ key, kind, message }) => ({ key, kind, message })),
    lastError: sync?.lastError ?? "",
  });
}
