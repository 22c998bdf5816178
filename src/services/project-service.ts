import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ProjectSchema,
  ProjectService,
  ProjectState as ProjectStateEnum,
  type Project as ProjectMessage,
} from "../../gen/clusterplane/v1/project_pb.js";
import { Violations } from "../core/errors.js";
import { checkResourceName } from "../core/names.js";
import type { PageRequest } from "../core/paging.js";
import type { NamespaceSpec } from "../core/desired-state.js";
import { checkProjectId, checkProjectText, type Project, type ProjectState } from "../core/project.js";
import type { ProjectRepository } from "../store/project-repository.js";
import { checkOrgField, listPage, requireMessage, stateFilter, toTimestamp } from "./common.js";

/** ProjectService: validates requests, then hands them to the project repository. */
export function projectService(
  projects: ProjectRepository,
  domains: readonly string[],
  namespaces: NamespaceSpec,
): ServiceImpl<typeof ProjectService> {
  const toMessage = (project: Project) => toProjectMessage(project, domains);

  const checkKey = (org: string, id: string) => {
    const violations = new Violations();
    checkOrgField(org, "org", violations);
    violations.add("id", checkResourceName(id));
    violations.throwIfAny();
  };
  return {
    async createProject(request) {
      const project = requireMessage(request.project, "project");
      const violations = new Violations();
      checkOrgField(project.org, "project.org", violations);
      checkProjectId(project.id, domains, namespaces, "project.id", violations);
      checkProjectText(project.name, project.description, "project", violations);
      violations.throwIfAny();
      const created = await projects.create({ org: project.org, id: project.id, name: project.name, description: project.description });
      return { project: toMessage(created) };
    },

    async getProject(request) {
      checkKey(request.org, request.id);
      return { project: toMessage(await projects.get(request.org, request.id)) };
    },

    async listProjects(request) {
      const violations = new Violations();
      const state = stateFilter<ProjectState>(ProjectStateEnum, request.state, "state", violations);
      const fetch = (page: PageRequest) => projects.list(request.org, state, page);
      const { items, nextPageToken } = await listPage(request, { state }, violations, fetch, toMessage, (project) => [project.id]);
      return { projects: items, nextPageToken };
    },

    async updateProject(request) {
      const project = requireMessage(request.project, "project");
      const violations = new Violations();
      checkOrgField(project.org, "project.org", violations);
      violations.add("project.id", checkResourceName(project.id));
      checkProjectText(project.name, project.description, "project", violations);
      violations.throwIfAny();
      return { project: toMessage(await projects.update(project.org, project.id, project.name, project.description, project.etag)) };
    },

    async archiveProject(request) {
      checkKey(request.org, request.id);
      return { project: toMessage(await projects.setState(request.org, request.id, "ARCHIVED")) };
    },

    async activateProject(request) {
      checkKey(request.org, request.id);
      return { project: toMessage(await projects.setState(request.org, request.id, "ACTIVE")) };
    },
  };
}

/** A project as the API shows it: every configured domain listed with it. */
export function toProjectMessage(project: Project, domains: readonly string[]): ProjectMessage {
  return create(ProjectSchema, {
    org: project.org,
    id: project.id,
    name: project.name,
    description: project.description,
    state: ProjectStateEnum[project.state],
    domains: domains.map((domain) => ({ id: domain, name: domain })),
    createTime: toTimestamp(project.createTime),
    updateTime: toTimestamp(project.updateTime),
    etag: project.etag,
    revision: BigInt(project.revision),
  });
}
