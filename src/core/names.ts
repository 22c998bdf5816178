/**
 * Naming rules. Resource names are DNS-1123 labels so they can appear in Kubernetes object names
 * and URLs unchanged; cluster names may also contain '_' because flyteadmin configurations use
 * names such as `dataplane_1`.
 */

import { quoteValue } from "./errors.js";

const MAX_NAME_LENGTH = 63;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const CLUSTER_NAME = /^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$/;

/** Returns why `name` is not a valid resource name, or null when it is. */
export function checkResourceName(name: string): string | null {
  return checkAgainst(name, DNS_LABEL, "lowercase letters, digits and '-'");
}

/** Returns why `name` is not a valid cluster name, or null when it is. */
export function checkClusterName(name: string): string | null {
  return checkAgainst(name, CLUSTER_NAME, "lowercase letters, digits, '-' and '_'");
}

/** Returns why `org` is not a valid organization, or null. Empty means the default organization. */
export function checkOrg(org: string): string | null {
  return org === "" ? null : checkResourceName(org);
}

function checkAgainst(name: string, pattern: RegExp, alphabet: string): string | null {
  if (name.length === 0) return "is required";
  if (name.length > MAX_NAME_LENGTH) {
    return `must be at most ${MAX_NAME_LENGTH} characters (got ${name.length})`;
  }
  if (!pattern.test(name)) {
    return `${quoteValue(name)} must contain only ${alphabet}, and start and end with a letter or digit`;
  }
  return null;
}
