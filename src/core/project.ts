import { Violations } from "./errors.js";
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
}

/** The deployment stages every project is provisioned for (flyteadmin's defaults). */
export const DEFAULT_DOMAINS = ["development", "staging", "production"] as const;

const MAX_DESCRIPTION_LENGTH = 300;
const MAX_DISPLAY_NAME_LENGTH = 64;

/** The namespace of a project-domain under the default template. */
export function defaultNamespace(project: string, domain: string): string {
  return `${project}-${domain}`;
}

/**
 * Checks a project id: a resource name whose `{project}-{domain}` namespace stays a valid
 * Kubernetes namespace name for every configured domain.
 */
export function checkProjectId(id: string, domains: readonly string[], field: string, violations: Violations): void {
  const problem = checkResourceName(id);
  if (problem) {
    violations.add(field, problem);
    return;
  }
  for (const domain of domains) {
    const namespace = defaultNamespace(id, domain);
    const namespaceProblem = checkResourceName(namespace);
    if (namespaceProblem) {
      violations.add(field, `is too long: its namespace "${namespace}" for domain "${domain}" ${namespaceProblem}`);
      return;
    }
  }
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
  const seen = new Set<string>();
  domains.forEach((domain, index) => {
    violations.add(`${field}[${index}]`, checkResourceName(domain));
    if (seen.has(domain)) violations.add(`${field}[${index}]`, `"${domain}" is listed twice`);
    seen.add(domain);
  });
}
