import type { Selectable } from "kysely";
import type { Assignment, AssignmentKey } from "../core/execution-cluster-label.js";
import type { PageRequest } from "../core/paging.js";
import type { ChangeLog } from "./changes.js";
import type { Page } from "./rows.js";
import type { ClusterLabelRepository } from "./cluster-label-repository.js";
import type { Tables } from "./schema.js";
import type { ProjectRepository } from "./project-repository.js";

type AssignmentRow = Selectable<Tables["execution_cluster_labels"]>;

export interface AssignmentFilter {
  project: string;
  domain: string;
}

/** Execution cluster labels: which label applies at a project, project-domain, workflow or launch plan. */
export class AssignmentRepository {
  constructor(
    private readonly changes: ChangeLog,
    private readonly projects: ProjectRepository,
    private readonly labels: ClusterLabelRepository,
  ) {}

  /** The current unit of work's transaction, or the shared handle. */
  private get db() {
    return this.changes.db;
  }

  /** Creates or replaces the assignment at the key's scope. */
  upsert(key: AssignmentKey, value: string, valueField: string): Promise<Assignment> {
    return this.changes.write(async () => {
      await this.projects.requireActive(key.org, key.project);
      await this.labels.requireExisting(key.org, value, valueField);
      await this.db
        .insertInto("execution_cluster_labels")
        .values({ ...scopeColumns(key), value, update_time: Date.now() })
        .onConflict((conflict) =>
          conflict
            .columns(["org", "project", "domain", "workflow", "launch_plan"])
            .doUpdateSet((eb) => ({ value: eb.ref("excluded.value"), update_time: eb.ref("excluded.update_time") })),
        )
        .execute();
      await this.changes.record({ kind: "assignment", ...key });
      return (await this.find(key))!;
    });
  }

  async find(key: AssignmentKey): Promise<Assignment | undefined> {
    const row = await this.db.selectFrom("execution_cluster_labels").selectAll().where((eb) => eb.and(scopeColumns(key))).executeTakeFirst();
    return row && toAssignment(row);
  }

  /** Removes the assignment at the key's scope, if there is one. */
  delete(key: AssignmentKey): Promise<void> {
    return this.changes.write(async () => {
      const { numDeletedRows } = await this.db
        .deleteFrom("execution_cluster_labels")
        .where((eb) => eb.and(scopeColumns(key)))
        .executeTakeFirstOrThrow();
      // Deleting is idempotent; only a real removal is a change.
      if (numDeletedRows > 0n) await this.changes.record({ kind: "assignment", ...key });
    });
  }

  async list(org: string, filter: AssignmentFilter, page: PageRequest): Promise<Page<Assignment>> {
    const [project, domain, workflow, launchPlan] = page.after ?? ["", "", "", ""];
    const rows = await this.db
      .selectFrom("execution_cluster_labels")
      .selectAll()
      .where("org", "=", org)
      .$if(filter.project !== "", (query) => query.where("project", "=", filter.project))
      .$if(filter.domain !== "", (query) => query.where("domain", "=", filter.domain))
      .where((eb) =>
        eb(
          eb.refTuple("project", "domain", "workflow", "launch_plan"),
          ">",
          eb.tuple(project ?? "", domain ?? "", workflow ?? "", launchPlan ?? ""),
        ),
      )
      .orderBy("project")
      .orderBy("domain")
      .orderBy("workflow")
      .orderBy("launch_plan")
      .limit(page.size + 1)
      .execute();
    return { items: rows.slice(0, page.size).map(toAssignment), hasMore: rows.length > page.size };
  }

  /** Every assignment, for the routing index. */
  async all(): Promise<Assignment[]> {
    return (await this.db.selectFrom("execution_cluster_labels").selectAll().execute()).map(toAssignment);
  }
}

/** The key columns of an assignment's scope (only the identifying fields, whatever `key` carries). */
function scopeColumns(key: AssignmentKey) {
  return { org: key.org, project: key.project, domain: key.domain, workflow: key.workflow, launch_plan: key.launchPlan };
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
