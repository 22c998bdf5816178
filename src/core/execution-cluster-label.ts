import { quoteValue, Violations } from "./errors.js";
import { checkClusterName, checkResourceName } from "./names.js";
import { checkDomain } from "./project.js";

/** Where an assignment applies, from least to most specific. */
export type AssignmentScope = "DEFAULT" | "PROJECT" | "PROJECT_DOMAIN" | "WORKFLOW" | "LAUNCH_PLAN";

/** The key of an assignment: which fields are set decides its scope. */
export interface AssignmentKey {
  org: string;
  project: string;
  domain: string;
  workflow: string;
  launchPlan: string;
}

export interface Assignment extends AssignmentKey {
  value: string;
  updateTime: Date;
  /** The change-log revision that last changed it. */
  revision: number;
}

const MAX_ENTITY_NAME_LENGTH = 255;
// Workflow and launch plan names are code identifiers such as `core.flyte_basics.hello_world.my_wf`.
const ENTITY_NAME = /^[A-Za-z0-9_.\-:]+$/;

export function scopeOf(key: Pick<AssignmentKey, "domain" | "workflow" | "launchPlan">): Exclude<AssignmentScope, "DEFAULT"> {
  if (key.launchPlan !== "") return "LAUNCH_PLAN";
  if (key.workflow !== "") return "WORKFLOW";
  if (key.domain !== "") return "PROJECT_DOMAIN";
  return "PROJECT";
}

/**
 * The keys to look an execution up by, most specific first: launch plan, workflow,
 * project-domain, project. The resolution order of execution cluster labels.
 */
export function resolutionOrder(key: AssignmentKey): AssignmentKey[] {
  const { org, project, domain, workflow, launchPlan } = key;
  // Plain literals rather than spreads: this runs on every SelectCluster.
  const order: AssignmentKey[] = [];
  if (domain !== "" && launchPlan !== "") order.push({ org, project, domain, workflow: "", launchPlan });
  if (domain !== "" && workflow !== "") order.push({ org, project, domain, workflow, launchPlan: "" });
  if (domain !== "") order.push({ org, project, domain, workflow: "", launchPlan: "" });
  order.push({ org, project, domain: "", workflow: "", launchPlan: "" });
  return order;
}

/**
 * Checks an assignment key: a project, and a configured domain whenever a workflow or launch
 * plan is named; a launch-plan assignment names no workflow.
 */
export function checkAssignmentKey(
  key: AssignmentKey,
  domains: readonly string[],
  prefix: string,
  violations: Violations,
): void {
  violations.add(`${prefix}project`, checkResourceName(key.project));
  if (key.domain !== "") violations.add(`${prefix}domain`, checkDomain(key.domain, domains));
  if ((key.workflow !== "" || key.launchPlan !== "") && key.domain === "") {
    violations.add(`${prefix}domain`, "is required with a workflow or launch plan");
  }
  if (key.workflow !== "" && key.launchPlan !== "") {
    violations.add(`${prefix}launch_plan`, "names its own scope; leave workflow empty for a launch-plan assignment");
  }
  violations.add(`${prefix}workflow`, checkEntityName(key.workflow));
  violations.add(`${prefix}launch_plan`, checkEntityName(key.launchPlan));
}

export function checkEntityName(name: string): string | null {
  if (name === "") return null;
  if (name.length > MAX_ENTITY_NAME_LENGTH) return `must be at most ${MAX_ENTITY_NAME_LENGTH} characters`;
  if (!ENTITY_NAME.test(name)) return `${quoteValue(name)} may contain only letters, digits, '_', '.', '-' and ':'`;
  return null;
}

/** The label that applies to `key` and the scope it came from, or null when none does. */
export function resolveLabel(
  key: AssignmentKey,
  lookup: (scope: AssignmentKey) => string | undefined,
  defaultLabel: string | undefined,
): { value: string; scope: AssignmentScope } | null {
  for (const scope of resolutionOrder(key)) {
    const value = lookup(scope);
    if (value !== undefined) return { value, scope: scopeOf(scope) };
  }
  return defaultLabel ? { value: defaultLabel, scope: "DEFAULT" } : null;
}

/** An execution asking where to run: its scope, its id, and at most one explicit target. */
export interface SelectRequest extends AssignmentKey {
  executionId: string;
  target: { kind: "cluster" | "label" | "queue"; name: string } | null;
}

const MAX_EXECUTION_ID_LENGTH = 255;

/** Checks a routing request; every problem names its field. */
export function checkSelectRequest(request: SelectRequest, domains: readonly string[], violations: Violations): void {
  violations.add("project", checkResourceName(request.project));
  violations.add("domain", request.domain === "" ? `is required: one of ${domains.join(", ")}` : checkDomain(request.domain, domains));
  violations.add("workflow", checkEntityName(request.workflow));
  violations.add("launch_plan", checkEntityName(request.launchPlan));
  if (request.executionId === "") violations.add("execution_id", "is required: it keeps one execution on one cluster");
  else if (request.executionId.length > MAX_EXECUTION_ID_LENGTH) {
    violations.add("execution_id", `must be at most ${MAX_EXECUTION_ID_LENGTH} characters`);
  }
  const { target } = request;
  if (target) {
    // Labels are DNS labels; clusters and queues (one set of names) may also contain '_'.
    violations.add(target.kind, target.kind === "label" ? checkResourceName(target.name) : checkClusterName(target.name));
  }
}
