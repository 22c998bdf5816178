import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ProjectService, ProjectState } from "../../gen/clusterplane/v1/project_pb.js";
import { failure, fieldsOf } from "../support/errors.js";
import { inMemoryClient, snapshot, tempStores, type TempStores } from "../support/stores.js";
import { testEngines } from "../support/engines.js";

// Every test here runs on each engine (PostgreSQL only when reachable; see test/support/engines.ts).
describe.each(testEngines())("on $name", (engine) => {
  let stores: TempStores;
  let projects: ReturnType<typeof inMemoryClient<typeof ProjectService>>;

  beforeEach(async () => {
    stores = await tempStores(engine);
    projects = inMemoryClient(ProjectService, stores);
  });
  afterEach(() => stores.cleanup());

  describe("ProjectService", () => {
    it("registers a project with the configured domains", async () => {
      const { project } = await projects.createProject({ project: { id: "project1", description: "team one" } });
      expect(project).toMatchObject({ id: "project1", name: "project1", description: "team one", state: ProjectState.ACTIVE });
      expect(project?.domains.map((d) => d.id)).toEqual(["development", "staging", "production"]);
      expect((await projects.getProject({ id: "project1" })).project?.etag).toBe(project?.etag);
    });

    it("rejects ids that are not names or whose namespaces would be too long, changing nothing", async () => {
      const before = await snapshot(stores);
      const bad = await failure(projects.createProject({ project: { id: "Project_1" } }));
      expect(fieldsOf(bad)).toEqual(["project.id"]);
      const long = await failure(projects.createProject({ project: { id: "p".repeat(55) } }));
      expect(long.code).toBe(Code.InvalidArgument);
      expect(long.rawMessage).toContain(`namespace template gives "${"p".repeat(55)}-development"`);
      expect(fieldsOf(await failure(projects.createProject({})))).toEqual(["project"]);
      expect(await snapshot(stores)).toEqual(before);
    });

    it("rejects a second registration of the same id", async () => {
      await projects.createProject({ project: { id: "project1" } });
      expect((await failure(projects.createProject({ project: { id: "project1" } }))).code).toBe(Code.AlreadyExists);
    });

    it("updates name and description with etag checks", async () => {
      const created = (await projects.createProject({ project: { id: "project1" } })).project!;
      const updated = (await projects.updateProject({ project: { id: "project1", name: "Project One", description: "d", etag: created.etag } })).project!;
      expect(updated).toMatchObject({ name: "Project One", description: "d" });
      expect((await failure(projects.updateProject({ project: { id: "project1", etag: created.etag } }))).code).toBe(Code.Aborted);
      expect((await failure(projects.updateProject({ project: { id: "nope" } }))).code).toBe(Code.NotFound);
      expect(fieldsOf(await failure(projects.updateProject({ project: { id: "project1", description: "x".repeat(301) } })))).toEqual([
        "project.description",
      ]);
    });

    it("archives and activates, and lists by state, paged", async () => {
      for (const id of ["a", "b", "c"]) await projects.createProject({ project: { id } });
      expect((await projects.archiveProject({ id: "b" })).project?.state).toBe(ProjectState.ARCHIVED);
      const ids = async (state: ProjectState) => (await projects.listProjects({ state })).projects.map((p) => p.id);
      expect(await ids(ProjectState.ACTIVE)).toEqual(["a", "c"]);
      expect(await ids(ProjectState.ARCHIVED)).toEqual(["b"]);
      expect((await projects.activateProject({ id: "b" })).project?.state).toBe(ProjectState.ACTIVE);
      const page = await projects.listProjects({ pageSize: 2 });
      expect(page.projects.map((p) => p.id)).toEqual(["a", "b"]);
      expect((await projects.listProjects({ pageSize: 2, pageToken: page.nextPageToken })).projects.map((p) => p.id)).toEqual(["c"]);
      expect((await failure(projects.archiveProject({ id: "zzz" }))).code).toBe(Code.NotFound);
    });
  });
});
