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
    createClusterLabel(request) {
      const label = requireMessage(request.label, "label");
      checkLabel(label, "label");
      return { label: toLabelMessage(labels.create(label.org, label.name, label.clusters)) };
    },

    getClusterLabel(request) {
      checkNamedKey(request.org, request.name);
      return { label: toLabelMessage(labels.get(request.org, request.name)) };
    },

    listClusterLabels(request) {
      const fetch = (page: PageRequest) => labels.list(request.org, page);
      const { items, nextPageToken } = listPage(request, {}, new Violations(), fetch, toLabelMessage, (label) => [label.name]);
      return { labels: items, nextPageToken };
    },

    updateClusterLabel(request) {
      const label = requireMessage(request.label, "label");
      checkLabel(label, "label");
      return { label: toLabelMessage(labels.update(label.org, label.name, label.clusters, label.etag)) };
    },

    deleteClusterLabel(request) {
      checkNamedKey(request.org, request.name);
      labels.delete(request.org, request.name);
      return {};
    },

    getDefaultClusterLabel(request) {
      const violations = new Violations();
      checkOrgField(request.org, "org", violations);
      violations.throwIfAny();
      return { label: labels.getDefault(request.org) };
    },

    setDefaultClusterLabel(request) {
      const violations = new Violations();
      checkOrgField(request.org, "org", violations);
      if (request.label !== "") violations.add("label", checkResourceName(request.label));
      violations.throwIfAny();
      return { label: labels.setDefault(request.org, request.label, "label") };
    },

    updateExecutionClusterLabel(request) {
      const assignment = requireMessage(request.executionClusterLabel, "execution_cluster_label");
      const prefix = "execution_cluster_label.";
      const violations = checkAssignment(assignment, prefix);
      violations.add(`${prefix}value`, checkResourceName(assignment.value));
      violations.throwIfAny();
      const stored = assignments.upsert(assignment, assignment.value, `${prefix}value`);
      return { executionClusterLabel: toAssignmentMessage(stored) };
    },

    getExecutionClusterLabel(request) {
      checkAssignment(request, "").throwIfAny();
      const stored = assignments.find(request);
      const effective = resolveLabel(request, (scope) => assignments.find(scope)?.value, labels.getDefault(request.org));
      return {
        executionClusterLabel: stored && toAssignmentMessage(stored),
        effectiveValue: effective?.value ?? "",
        effectiveScope: effective ? ExecutionClusterLabelScope[effective.scope] : ExecutionClusterLabelScope.UNSPECIFIED,
      };
    },

    deleteExecutionClusterLabel(request) {
      checkAssignment(request, "").throwIfAny();
      assignments.delete(request);
      return {};
    },

    listExecutionClusterLabels(request) {
      const violations = new Violations();
      if (request.project !== "") violations.add("project", checkResourceName(request.project));
      if (request.domain !== "") violations.add("domain", checkDomain(request.domain, domains));
      const filter = { project: request.project, domain: request.domain };
      const fetch = (page: PageRequest) => assignments.list(request.org, filter, page);
      const { items, nextPageToken } = listPage(request, filter, violations, fetch, toAssignmentMessage, assignmentSortKey);
      return { executionClusterLabels: items, nextPageToken };
    },

    selectCluster(request) {
      return selectCluster(routing, toSelectRequest(request, domains));
    },
  };

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
