import { checkNoRepeats, quoteValue, Violations } from "./errors.js";
import { namespaceProblem, type NamespaceSpec } from "./desired-state.js";
import { checkResourceName } from "./names.js";

export type ProjectState = "ACTIVE" | "ARCHIVED";

export interface Project {
  org: string;
  id: string;
  name: string;
  description: string;
  state: ProjectState;
  createTime: Date;
  updateTime: Date;
  etag: string;
  /** The change-log revision that last changed it (0 before the log existed). */
  revision: number;
}

/** The deployment stages every project is provisioned for (flyteadmin's defaults). */
export const DEFAULT_DOMAINS = ["development", "staging", "production"] as const;

const MAX_DESCRIPTION_LENGTH = 300;
const MAX_DISPLAY_NAME_LENGTH = 64;

/**
 * Checks a project id: a resource name whose namespace — under the configured template — is a
 * valid Kubernetes namespace name for every configured domain.
 */
export function checkProjectId(id: string, domains: readonly string[], namespaces: NamespaceSpec, field: string, violations: Violations): void {
  const problem = checkResourceName(id);
  if (problem) {
    violations.add(field, problem);
    return;
  }
  const namespace = namespaceProblem(namespaces, id, domains);
  if (namespace) violations.add(field, `cannot be provisioned: ${namespace}`);
}

export function checkProjectText(name: string, description: string, prefix: string, violations: Violations): void {
  if (name.length > MAX_DISPLAY_NAME_LENGTH) {
    violations.add(`${prefix}.name`, `must be at most ${MAX_DISPLAY_NAME_LENGTH} characters`);
  }
  if (description.length > MAX_DESCRIPTION_LENGTH) {
    violations.add(`${prefix}.description`, `must be at most ${MAX_DESCRIPTION_LENGTH} characters`);
  }
}

/** Checks the configured domains: names, no duplicates, at least one. */
export function checkDomains(domains: readonly string[], field: string, violations: Violations): void {
  if (domains.length === 0) violations.add(field, "must list at least one domain, for example development");
  domains.forEach((domain, index) => violations.add(`${field}[${index}]`, checkResourceName(domain)));
  checkNoRepeats(domains, (index) => `${field}[${index}]`, violations);
}

/** Why `domain` is not one of the configured domains, or null. */
export function checkDomain(domain: string, domains: readonly string[]): string | null {
  return domains.includes(domain) ? null : `${quoteValue(domain)} is not a configured domain; use one of ${domains.join(", ")}`;
}

/** Why a project in `state` (undefined: not registered) takes no new work, or null when it is ACTIVE. */
export function inactiveProjectProblem(id: string, state: ProjectState | undefined): string | null {
  if (state === undefined) return `project ${quoteValue(id)} is not registered; register it first (CreateProject)`;
  if (state === "ARCHIVED") return `project ${quoteValue(id)} is archived; activate it first (ActivateProject)`;
  return null;
}
