import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ClusterLabelSchema,
  ExecutionClusterLabelSchema,
  ExecutionClusterLabelScope,
  ExecutionClusterLabelService,
  type ClusterLabel as ClusterLabelMessage,
  type ExecutionClusterLabel as ExecutionClusterLabelMessage,
  type SelectClusterRequest,
} from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { checkLabelMembers, type ClusterLabel } from "../core/cluster-label.js";
import { Violations } from "../core/errors.js";
import {
  checkAssignmentKey,
  checkSelectRequest,
  resolutionOrder,
  resolveLabel,
  scopeOf,
  type Assignment,
  type AssignmentKey,
  type SelectRequest,
} from "../core/execution-cluster-label.js";
import { checkResourceName } from "../core/names.js";
import { checkDomain } from "../core/project.js";
import type { PageRequest } from "../core/paging.js";
import type { RoutingIndex } from "../routing/routing-index.js";
import { selectCluster } from "../routing/select-cluster.js";
import { assignmentSortKey } from "../store/assignment-repository.js";
import type { Stores } from "../store/stores.js";
import { checkNamedKey, checkOrgField, listPage, requireMessage, toTimestamp } from "./common.js";


/**
 * ExecutionClusterLabelService: labels, their assignments, and SelectCluster, which is answered
 * from the in-memory routing index.
 */
export function executionClusterLabelService(
  stores: Stores,
  routing: RoutingIndex,
): ServiceImpl<typeof ExecutionClusterLabelService> {
  const { labels, assignments, domains } = stores;

  const checkAssignment = (key: AssignmentKey, prefix: string) => {
    const violations = new Violations();
    checkOrgField(key.org, `${prefix}org`, violations);
    checkAssignmentKey(key, domains, prefix, violations);
    return violations;
  };

  return {
    async createClusterLabel(request) {
      const label = requireMessage(request.label, "label");
      checkLabel(label, "label");
      return { label: toLabelMessage(await labels.create(label.org, label.name, label.clusters)) };
    },

    async getClusterLabel(request) {
      checkNamedKey(request.org, request.name);
      return { label: toLabelMessage(await labels.get(request.org, request.name)) };
    },

    async listClusterLabels(request) {
      const fetch = (page: PageRequest) => labels.list(request.org, page);
      const { items, nextPageToken } = await listPage(request, {}, new Violations(), fetch, toLabelMessage, (label) => [label.name]);
      return { labels: items, nextPageToken };
    },

    async updateClusterLabel(request) {
      const label = requireMessage(request.label, "label");
      checkLabel(label, "label");
      return { label: toLabelMessage(await labels.update(label.org, label.name, label.clusters, label.etag)) };
    },

    async deleteClusterLabel(request) {
      checkNamedKey(request.org, request.name);
      await labels.delete(request.org, request.name);
      return {};
    },

    async getDefaultClusterLabel(request) {
      const violations = new Violations();
      checkOrgField(request.org, "org", violations);
      violations.throwIfAny();
      return { label: await labels.getDefault(request.org) };
    },

    async setDefaultClusterLabel(request) {
      const violations = new Violations();
      checkOrgField(request.org, "org", violations);
      if (request.label !== "") violations.add("label", checkResourceName(request.label));
      violations.throwIfAny();
      return { label: await labels.setDefault(request.org, request.label, "label") };
    },

    async updateExecutionClusterLabel(request) {
      const assignment = requireMessage(request.executionClusterLabel, "execution_cluster_label");
      const prefix = "execution_cluster_label.";
      const violations = checkAssignment(assignment, prefix);
      violations.add(`${prefix}value`, checkResourceName(assignment.value));
      violations.throwIfAny();
      const stored = await assignments.upsert(assignment, assignment.value, `${prefix}value`);
      return { executionClusterLabel: toAssignmentMessage(stored) };
    },

    async getExecutionClusterLabel(request) {
      checkAssignment(request, "").throwIfAny();
      // One read transaction: the stored row, every scope it may inherit from and the default agree.
      const { value: read } = await stores.changes.readAt(async () => {
        const inherited = new Map<string, string | undefined>();
        for (const scope of resolutionOrder(request)) inherited.set(scopeKey(scope), (await assignments.find(scope))?.value);
        return { stored: await assignments.find(request), inherited, defaultLabel: await labels.getDefault(request.org) };
      });
      const { stored } = read;
      const effective = resolveLabel(request, (scope) => read.inherited.get(scopeKey(scope)), read.defaultLabel);
      return {
        executionClusterLabel: stored && toAssignmentMessage(stored),
        effectiveValue: effective?.value ?? "",
        effectiveScope: effective ? ExecutionClusterLabelScope[effective.scope] : ExecutionClusterLabelScope.UNSPECIFIED,
      };
    },

    async deleteExecutionClusterLabel(request) {
      checkAssignment(request, "").throwIfAny();
      await assignments.delete(request);
      return {};
    },

    async listExecutionClusterLabels(request) {
      const violations = new Violations();
      if (request.project !== "") violations.add("project", checkResourceName(request.project));
      if (request.domain !== "") violations.add("domain", checkDomain(request.domain, domains));
      const filter = { project: request.project, domain: request.domain };
      const fetch = (page: PageRequest) => assignments.list(request.org, filter, page);
      const { items, nextPageToken } = await listPage(request, filter, violations, fetch, toAssignmentMessage, assignmentSortKey);
      return { executionClusterLabels: items, nextPageToken };
    },

    selectCluster(request) {
      // Answered from memory without waiting; only a request before the index's first load waits for it.
      const select = () => selectCluster(routing, toSelectRequest(request, domains));
      return routing.loaded ? select() : routing.ready.then(select);
    },
  };

}

function scopeKey(scope: AssignmentKey): string {
  return [scope.project, scope.domain, scope.workflow, scope.launchPlan].join("\0");
}

function checkLabel(label: ClusterLabelMessage, field: string): void {
  const violations = new Violations();
  checkOrgField(label.org, `${field}.org`, violations);
  violations.add(`${field}.name`, checkResourceName(label.name));
  checkLabelMembers(label.clusters, `${field}.clusters`, violations);
  violations.throwIfAny();
}

/** The routing request as the core reads it, checked; every problem is INVALID_ARGUMENT naming its field. */
function toSelectRequest(request: SelectClusterRequest, domains: readonly string[]): SelectRequest {
  const { target } = request;
  const select: SelectRequest = {
    org: request.org,
    project: request.project,
    domain: request.domain,
    workflow: request.workflow,
    launchPlan: request.launchPlan,
    executionId: request.executionId,
    target: target.case ? { kind: target.case, name: target.value } : null,
  };
  const violations = new Violations();
  checkOrgField(request.org, "org", violations);
  checkSelectRequest(select, domains, violations);
  violations.throwIfAny();
  return select;
}

export function toLabelMessage(label: ClusterLabel): ClusterLabelMessage {
  return create(ClusterLabelSchema, {
    org: label.org,
    name: label.name,
    clusters: label.clusters,
    createTime: toTimestamp(label.createTime),
    updateTime: toTimestamp(label.updateTime),
    etag: label.etag,
    revision: BigInt(label.revision),
  });
}

export function toAssignmentMessage(assignment: Assignment): ExecutionClusterLabelMessage {
  return create(ExecutionClusterLabelSchema, {
    org: assignment.org,
    project: assignment.project,
    domain: assignment.domain,
    workflow: assignment.workflow,
    launchPlan: assignment.launchPlan,
    value: assignment.value,
    scope: ExecutionClusterLabelScope[scopeOf(assignment)],
    updateTime: toTimestamp(assignment.updateTime),
    revision: BigInt(assignment.revision),
  });
}
