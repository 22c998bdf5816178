import { alreadyExists, failedPrecondition, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import { inactiveProjectProblem, type Project, type ProjectState } from "../core/project.js";
import type { ChangeLog } from "./changes.js";
import { nextUpdateTime, type Page } from "./rows.js";
import type { Db } from "./database.js";

interface ProjectRow {
  org: string;
  id: string;
  name: string;
  description: string;
  state: string;
  create_time: number;
  update_time: number;
  version: number;
  revision: number;
}

export interface NewProject {
  org: string;
  id: string;
  name: string;
  description: string;
}

/** Projects in SQLite. Archiving keeps the row (and the namespaces); it only stops sync and routing. */
export class ProjectRepository {
  constructor(
    private readonly db: Db,
    private readonly changes: ChangeLog,
  ) {}

  create(project: NewProject): Project {
    return this.changes.write(() => {
      if (this.findRow(project.org, project.id)) {
        throw alreadyExists(`project "${project.id}" is already registered; use UpdateProject to change it`);
      }
      const now = Date.now();
      this.db
        .prepare(
          `INSERT INTO projects (org, id, name, description, state, create_time, update_time, version)
           VALUES (?, ?, ?, ?, 'ACTIVE', ?, ?, 1)`,
        )
        .run(project.org, project.id, project.name || project.id, project.description, now, now);
      this.changes.record({ kind: "project", org: project.org, id: project.id });
      return this.get(project.org, project.id);
    });
  }

  get(org: string, id: string): Project {
    const project = this.find(org, id);
    if (!project) throw notFound(`project "${id}" is not registered; ListProjects shows the projects there are`);
    return project;
  }

  /** Throws FAILED_PRECONDITION unless the project exists and is ACTIVE. */
  requireActive(org: string, id: string): Project {
    const project = this.find(org, id);
    const problem = inactiveProjectProblem(id, project?.state);
    if (problem) throw failedPrecondition(problem);
    return project!;
  }

  list(org: string, state: ProjectState | "", page: PageRequest): Page<Project> {
    const rows = this.db
      .prepare(
        `SELECT * FROM projects WHERE org = @org AND id > @after AND (@state = '' OR state = @state)
         ORDER BY id LIMIT @limit`,
      )
      .all({ org, after: page.after?.[0] ?? "", state, limit: page.size + 1 }) as ProjectRow[];
    return { items: rows.slice(0, page.size).map(toProject), hasMore: rows.length > page.size };
  }

  /** Every project of every organization in `state`, for the routing index and the sync loop. */
  allInState(state: ProjectState): Project[] {
    return (this.db.prepare("SELECT * FROM projects WHERE state = ? ORDER BY org, id").all(state) as ProjectRow[]).map(toProject);
  }

  find(org: string, id: string): Project | undefined {
    const row = this.findRow(org, id);
    return row && toProject(row);
  }

  update(org: string, id: string, name: string, description: string, etag: string): Project {
    return this.changes.write(() => {
      const current = this.get(org, id);
      checkEtag("project", id, etag, current.etag);
      this.db
        .prepare(`UPDATE projects SET name = ?, description = ?, update_time = ?, version = version + 1 WHERE org = ? AND id = ?`)
        .run(name || id, description, nextUpdateTime(current), org, id);
      this.changes.record({ kind: "project", org, id });
      return this.get(org, id);
    });
  }

  /** Archives or activates a project. Idempotent. */
  setState(org: string, id: string, state: ProjectState): Project {
    return this.changes.write(() => {
      const current = this.get(org, id);
      if (current.state !== state) {
        this.db
          .prepare(`UPDATE projects SET state = ?, update_time = ?, version = version + 1 WHERE org = ? AND id = ?`)
          .run(state, nextUpdateTime(current), org, id);
      }
      this.changes.record({ kind: "project", org, id });
      return this.get(org, id);
    });
  }

  private findRow(org: string, id: string): ProjectRow | undefined {
    return this.db.prepare("SELECT * FROM projects WHERE org = ? AND id = ?").get(org, id) as ProjectRow | undefined;
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
