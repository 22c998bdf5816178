import { failedPrecondition, invalidArgument } from "../core/errors.js";
import { inactiveProjectProblem } from "../core/project.js";
import { resolveLabel, type AssignmentScope, type SelectRequest } from "../core/execution-cluster-label.js";
import { ALL_CLUSTERS } from "../core/queue.js";
import { byName, weightedPick, type WeightedChoice } from "../core/weighted-pick.js";
import type { RoutableCluster, RoutingIndex } from "./routing-index.js";


export interface Selection {
  cluster: string;
  endpoint: string;
  pool: string;
  label: string;
  reason: string;
}

const SCOPE_WORDS: Record<AssignmentScope, string> = {
  LAUNCH_PLAN: "launch plan",
  WORKFLOW: "workflow",
  PROJECT_DOMAIN: "project-domain",
  PROJECT: "project",
  DEFAULT: "default",
};

/**
 * Where an execution runs. Order: explicit cluster, label in the request, queue in the request,
 * the most specific stored assignment, the default label, every eligible cluster. An assignment
 * whose clusters are all ineligible is an error, not a reason to run somewhere else.
 */
export function selectCluster(index: RoutingIndex, request: SelectRequest): Selection {
  requireRoutableProject(index, request.org, request.project);
  const { target } = request;
  if (target?.kind === "cluster") return explicitCluster(index, request, target.name);
  if (target?.kind === "label") return fromLabel(index, request, target.name, `label ${target.name} from the request`, "label");
  if (target?.kind === "queue") return fromQueue(index, request, target.name);

  const resolved = resolveLabel(request, (scope) => index.assignment(scope), index.defaultLabel(request.org));
  if (resolved) {
    const reason = `${SCOPE_WORDS[resolved.scope]} label ${resolved.value}`;
    return fromLabel(index, request, resolved.value, reason, "");
  }

  const eligible = index.eligibleClusters(request.org).filter((cluster) => index.ineligibility(cluster, request.project, request.domain) === "");
  const picked = weightedPick(eligible, request.executionId);
  if (!picked) {
    const clusters = index.clustersOf(request.org);
    if (clusters.length === 0) throw failedPrecondition("no cluster is registered; register one (CreateCluster)");
    const why = clusters.map((cluster) => `"${cluster.name}" is ${index.ineligibility(cluster, request.project, request.domain)}`).join("; ");
    throw failedPrecondition(`no cluster can take executions of ${request.project}/${request.domain}: ${why}`);
  }
  return answer(picked, "", "no label assigned: any eligible cluster");
}

function requireRoutableProject(index: RoutingIndex, org: string, project: string): void {
  const problem = inactiveProjectProblem(project, index.projectState(org, project));
  if (problem) throw failedPrecondition(problem);
}

function explicitCluster(index: RoutingIndex, request: SelectRequest, name: string): Selection {
  const cluster = index.cluster(request.org, name);
  if (!cluster) throw invalidArgument([{ field: "cluster", description: `cluster "${name}" is not registered` }]);
  const problem = index.ineligibility(cluster, request.project, request.domain);
  if (problem) throw failedPrecondition(`cluster "${name}" cannot take this execution: it is ${problem}`);
  return answer(cluster, "", "cluster from the request");
}

function fromLabel(index: RoutingIndex, request: SelectRequest, label: string, reason: string, field: string): Selection {
  const members = index.label(request.org, label);
  if (!members) {
    throw invalidArgument([{ field: field || "label", description: `label "${label}" does not exist` }]);
  }
  return pick(index, request, members, `label "${label}"`, label, reason);
}

function fromQueue(index: RoutingIndex, request: SelectRequest, name: string): Selection {
  const queue = index.queue(request.org, name);
  if (!queue) throw invalidArgument([{ field: "queue", description: `queue "${name}" does not exist` }]);
  if (queue.state === "DRAINED") throw failedPrecondition(`queue "${name}" is drained; activate it (ActivateQueue) or choose another`);
  const members: WeightedChoice[] =
    queue.clusters[0] === ALL_CLUSTERS
      ? index.clustersOf(request.org, queue.pool)
      : queue.clusters.map((cluster) => ({ name: cluster, weight: 1 })).sort(byName);
  return pick(index, request, members, `queue "${name}"`, "", `queue ${name} from the request`);
}

/** Weighted pick among the eligible members; names every ineligible one when none is left. */
function pick(
  index: RoutingIndex,
  request: SelectRequest,
  members: readonly WeightedChoice[],
  source: string,
  label: string,
  reason: string,
): Selection {
  const eligible: { cluster: RoutableCluster; name: string; weight: number }[] = [];
  const excluded: string[] = [];
  for (const member of members) {
    const cluster = index.cluster(request.org, member.name);
    const problem = cluster ? index.ineligibility(cluster, request.project, request.domain) : "not registered";
    if (cluster && problem === "") eligible.push({ cluster, name: member.name, weight: member.weight });
    else excluded.push(`"${member.name}" is ${problem}`);
  }
  const picked = weightedPick(eligible, request.executionId);
  if (!picked) {
    const why = excluded.length ? excluded.join("; ") : "it has no clusters";
    throw failedPrecondition(`${source} has no cluster that can take executions of ${request.project}/${request.domain}: ${why}`);
  }
  return answer(picked.cluster, label, reason);
}

function answer(cluster: RoutableCluster, label: string, reason: string): Selection {
  return { cluster: cluster.name, endpoint: cluster.endpoint, pool: cluster.pool, label, reason };
}
