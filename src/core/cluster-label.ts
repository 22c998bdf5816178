import { checkNoRepeats, Violations } from "./errors.js";
import { checkClusterName } from "./names.js";

export interface LabelMember {
  cluster: string;
  weight: number;
}

export interface ClusterLabel {
  org: string;
  name: string;
  clusters: LabelMember[];
  createTime: Date;
  updateTime: Date;
  etag: string;
  /** The change-log revision that last changed it (0 before the log existed). */
  revision: number;
}

/**
 * Checks a label's clusters: at least one, each once, weights in (0, 1]. Weights are relative
 * within the label, so they need not add up to 1 (flyteadmin's docs ask for that; nothing depends on it).
 */
export function checkLabelMembers(members: readonly LabelMember[], field: string, violations: Violations): void {
  if (members.length === 0) {
    violations.add(field, "is required: at least one {cluster, weight}");
    return;
  }
  members.forEach((member, index) => {
    violations.add(`${field}[${index}].cluster`, checkClusterName(member.cluster));
    if (!(member.weight > 0 && member.weight <= 1)) {
      violations.add(`${field}[${index}].weight`, `${member.weight} must be in (0, 1]; weights are relative within the label`);
    }
  });
  checkNoRepeats(members.map((member) => member.cluster), (index) => `${field}[${index}].cluster`, violations);
}

