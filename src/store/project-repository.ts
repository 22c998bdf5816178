import type { Selectable } from "kysely";
import { alreadyExists, failedPrecondition, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import { inactiveProjectProblem, type Project, type ProjectState } from "../core/project.js";
import type { ChangeLog } from "./changes.js";
import { nextUpdateTime, type Page } from "./rows.js";
import type { Tables } from "./schema.js";

type ProjectRow = Selectable<Tables["projects"]>;

export interface NewProject {
  org: string;
  id: string;
  name: string;
  description: string;
}

/** Projects. Archiving keeps the row (and the namespaces); it only stops sync and routing. */
export class ProjectRepository {
  constructor(private readonly changes: ChangeLog) {}

  /** The current unit of work's transaction, or the shared handle. */
  private get db() {
    return this.changes.db;
  }

  create(project: NewProject): Promise<Project> {
    return this.changes.write(async () => {
      if (await this.findRow(project.org, project.id)) {
        throw alreadyExists(`project "${project.id}" is already registered; use UpdateProject to change it`);
      }
      const now = Date.now();
      await this.db
        .insertInto("projects")
        .values({
          org: project.org,
          id: project.id,
          name: project.name || project.id,
          description: project.description,
          state: "ACTIVE",
          create_time: now,
          update_time: now,
          version: 1,
        })
        .execute();
      await this.changes.record({ kind: "project", org: project.org, id: project.id });
      return this.get(project.org, project.id);
    });
  }

  async get(org: string, id: string): Promise<Project> {
    const project = await this.find(org, id);
    if (!project) throw notFound(`project "${id}" is not registered; ListProjects shows the projects there are`);
    return project;
  }

  /** Throws FAILED_PRECONDITION unless the project exists and is ACTIVE. */
  async requireActive(org: string, id: string): Promise<Project> {
    const project = await this.find(org, id);
    const problem = inactiveProjectProblem(id, project?.state);
    if (problem) throw failedPrecondition(problem);
    return project!;
  }

  async list(org: string, state: ProjectState | "", page: PageRequest): Promise<Page<Project>> {
    const rows = await this.db
      .selectFrom("projects")
      .selectAll()
      .where("org", "=", org)
      .where("id", ">", page.after?.[0] ?? "")
      .$if(state !== "", (query) => query.where("state", "=", state))
      .orderBy("id")
      .limit(page.size + 1)
      .execute();
    return { items: rows.slice(0, page.size).map(toProject), hasMore: rows.length > page.size };
  }

  /** Every project of every organization in `state`, for the routing index and the sync loop. */
  async allInState(state: ProjectState): Promise<Project[]> {
    const rows = await this.db.selectFrom("projects").selectAll().where("state", "=", state).orderBy("org").orderBy("id").execute();
    return rows.map(toProject);
  }

  async find(org: string, id: string): Promise<Project | undefined> {
    const row = await this.findRow(org, id);
    return row && toProject(row);
  }

  update(org: string, id: string, name: string, description: string, etag: string): Promise<Project> {
    return this.changes.write(async () => {
      const current = await this.get(org, id);
      checkEtag("project", id, etag, current.etag);
      await this.db
        .updateTable("projects")
        .set((eb) => ({ name: name || id, description, update_time: nextUpdateTime(current), version: eb("version", "+", 1) }))
        .where("org", "=", org)
        .where("id", "=", id)
        .execute();
      await this.changes.record({ kind: "project", org, id });
      return this.get(org, id);
    });
  }

  /** Archives or activates a project. Idempotent. */
  setState(org: string, id: string, state: ProjectState): Promise<Project> {
    return this.changes.write(async () => {
      const current = await this.get(org, id);
      if (current.state !== state) {
        await this.db
          .updateTable("projects")
          .set((eb) => ({ state, update_time: nextUpdateTime(current), version: eb("version", "+", 1) }))
          .where("org", "=", org)
          .where("id", "=", id)
          .execute();
      }
      await this.changes.record({ kind: "project", org, id });
      return this.get(org, id);
    });
  }

  private findRow(org: string, id: string): Promise<ProjectRow | undefined> {
    return this.db.selectFrom("projects").selectAll().where("org", "=", org).where("id", "=", id).executeTakeFirst();
  }
}

function toProject(row: ProjectRow): Project {
  return {
    org: row.org,
    id: row.id,
    name: row.name,
    description: row.description,
    state: row.state as ProjectState,
    createTime: new Date(row.create_time),
    updateTime: new Date(row.update_time),
    etag: makeEtag(row.version, row.update_time),
    revision: row.revision,
  };
}
