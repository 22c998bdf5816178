import type { Assignment, AssignmentKey } from "../core/execution-cluster-label.js";
import type { PageRequest } from "../core/paging.js";
import type { ChangeLog } from "./changes.js";
import type { Page } from "./rows.js";
import type { ClusterLabelRepository } from "./cluster-label-repository.js";
import type { Db } from "./database.js";
import type { ProjectRepository } from "./project-repository.js";

interface AssignmentRow {
  org: string;
  project: string;
  domain: string;
  workflow: string;
  launch_plan: string;
  value: string;
  update_time: number;
  revision: number;
}

export interface AssignmentFilter {
  project: string;
  domain: string;
}

/** Execution cluster labels: which label applies at a project, project-domain, workflow or launch plan. */
export class AssignmentRepository {
  constructor(
    private readonly db: Db,
    private readonly changes: ChangeLog,
    private readonly projects: ProjectRepository,
    private readonly labels: ClusterLabelRepository,
  ) {}

  /** Creates or replaces the assignment at the key's scope. */
  upsert(key: AssignmentKey, value: string, valueField: string): Assignment {
    return this.changes.write(() => {
      this.projects.requireActive(key.org, key.project);
      this.labels.requireExisting(key.org, value, valueField);
      this.db
        .prepare(
          `INSERT INTO execution_cluster_labels (org, project, domain, workflow, launch_plan, value, update_time)
           VALUES (@org, @project, @domain, @workflow, @launchPlan, @value, @now)
           ON CONFLICT (org, project, domain, workflow, launch_plan)
           DO UPDATE SET value = excluded.value, update_time = excluded.update_time`,
        )
        .run({ ...key, value, now: Date.now() });
      this.changes.record({ kind: "assignment", ...key });
      return this.find(key)!;
    });
  }

  find(key: AssignmentKey): Assignment | undefined {
    const row = this.db
      .prepare(
        `SELECT * FROM execution_cluster_labels
         WHERE org = @org AND project = @project AND domain = @domain AND workflow = @workflow AND launch_plan = @launchPlan`,
      )
      .get(key) as AssignmentRow | undefined;
    return row && toAssignment(row);
  }

  /** Removes the assignment at the key's scope, if there is one. */
  delete(key: AssignmentKey): void {
    this.changes.write(() => {
      const { changes } = this.db
        .prepare(
          `DELETE FROM execution_cluster_labels
           WHERE org = @org AND project = @project AND domain = @domain AND workflow = @workflow AND launch_plan = @launchPlan`,
        )
        .run(key);
      // Deleting is idempotent; only a real removal is a change.
      if (changes > 0) this.changes.record({ kind: "assignment", ...key });
    });
  }

  list(org: string, filter: AssignmentFilter, page: PageRequest): Page<Assignment> {
    const [project, domain, workflow, launchPlan] = page.after ?? ["", "", "", ""];
    const rows = this.db
      .prepare(
        `SELECT * FROM execution_cluster_labels
         WHERE org = @org AND (@filterProject = '' OR project = @filterProject) AND (@filterDomain = '' OR domain = @filterDomain)
           AND (project, domain, workflow, launch_plan) > (@project, @domain, @workflow, @launchPlan)
         ORDER BY project, domain, workflow, launch_plan LIMIT @limit`,
      )
      .all({
        org,
        filterProject: filter.project,
        filterDomain: filter.domain,
        project: project ?? "",
        domain: domain ?? "",
        workflow: workflow ?? "",
        launchPlan: launchPlan ?? "",
        limit: page.size + 1,
      }) as AssignmentRow[];
    return { items: rows.slice(0, page.size).map(toAssignment), hasMore: rows.length > page.size };
  }

  /** Every assignment, for the routing index. */
  all(): Assignment[] {
    return (this.db.prepare("SELECT * FROM execution_cluster_labels").all() as AssignmentRow[]).map(toAssignment);
  }
}

/** The sort key of an assignment, as carried by page tokens. */
export function assignmentSortKey(assignment: AssignmentKey): string[] {
  return [assignment.project, assignment.domain, assignment.workflow, assignment.launchPlan];
}

function toAssignment(row: AssignmentRow): Assignment {
  return {
    org: row.org,
    project: row.project,
    domain: row.domain,
    workflow: row.workflow,
    launchPlan: row.launch_plan,
    value: row.value,
    updateTime: new Date(row.update_time),
    revision: row.revision,
  };
}
