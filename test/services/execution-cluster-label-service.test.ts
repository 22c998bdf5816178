import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import {
  ExecutionClusterLabelScope,
  ExecutionClusterLabelService,
  type SelectClusterRequest,
} from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SelectClusterRequestSchema } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { failure, fieldsOf } from "../support/errors.js";
import { seedCluster } from "../support/fixtures.js";
import { inMemoryClient, rejectedUnchanged as rejectedUnchangedIn, tempStores, type TempStores } from "../support/stores.js";
import { testEngines } from "../support/engines.js";

// Every test here runs on each engine (PostgreSQL only when reachable; see test/support/engines.ts).
describe.each(testEngines())("on $name", (engine) => {
  let stores: TempStores;
  let ecl: ReturnType<typeof inMemoryClient<typeof ExecutionClusterLabelService>>;
  let clusters: ReturnType<typeof inMemoryClient<typeof ClusterService>>;
  let projects: ReturnType<typeof inMemoryClient<typeof ProjectService>>;
  let queues: ReturnType<typeof inMemoryClient<typeof QueueService>>;

  beforeEach(async () => {
    stores = await tempStores(engine);
    ecl = inMemoryClient(ExecutionClusterLabelService, stores);
    clusters = inMemoryClient(ClusterService, stores);
    projects = inMemoryClient(ProjectService, stores);
    queues = inMemoryClient(QueueService, stores);
    for (const name of ["dataplane_1", "dataplane_2", "dataplane_3"]) await clusters.createCluster({ cluster: seedCluster(name) });
    await projects.createProject({ project: { id: "project1" } });
  });
  afterEach(() => stores.cleanup());

  const only = (cluster: string, weight = 1) => [{ cluster, weight }];

  type SelectInit = Omit<MessageInitShape<typeof SelectClusterRequestSchema>, "$typeName">;
  async function select(overrides: SelectInit = {}) {
    return ecl.selectCluster({ project: "project1", domain: "development", executionId: "exec-1", ...overrides });
  }

  const rejectedUnchanged = (call: () => Promise<unknown>, code: Code) => rejectedUnchangedIn(stores, call, code);

  describe("labels", () => {
    it("defines, reads, lists, updates and deletes a label", async () => {
      const created = (await ecl.createClusterLabel({ label: { name: "label1", clusters: only("dataplane_1") } })).label!;
      expect(created.clusters).toEqual([expect.objectContaining({ cluster: "dataplane_1", weight: 1 })]);
      expect((await ecl.listClusterLabels({})).labels.map((l) => l.name)).toEqual(["label1"]);
      const updated = (
        await ecl.updateClusterLabel({
          label: { name: "label1", clusters: [{ cluster: "dataplane_1", weight: 0.7 }, { cluster: "dataplane_2", weight: 0.3 }], etag: created.etag },
        })
      ).label!;
      expect(updated.clusters.map((c) => [c.cluster, c.weight])).toEqual([["dataplane_1", 0.7], ["dataplane_2", 0.3]]);
      await rejectedUnchanged(() => ecl.updateClusterLabel({ label: { name: "label1", clusters: only("dataplane_1"), etag: created.etag } }), Code.Aborted);
      await ecl.deleteClusterLabel({ name: "label1" });
      expect((await failure(ecl.getClusterLabel({ name: "label1" }))).code).toBe(Code.NotFound);
    });

    it.each([
      ["no clusters", { name: "l", clusters: [] }, ["label.clusters"]],
      ["zero weight", { name: "l", clusters: only("dataplane_1", 0) }, ["label.clusters[0].weight"]],
      ["weight above 1", { name: "l", clusters: only("dataplane_1", 1.5) }, ["label.clusters[0].weight"]],
      ["NaN weight", { name: "l", clusters: only("dataplane_1", Number.NaN) }, ["label.clusters[0].weight"]],
      ["a cluster twice", { name: "l", clusters: [...only("dataplane_1"), ...only("dataplane_1")] }, ["label.clusters[1].cluster"]],
      ["bad name", { name: "Label 1", clusters: only("dataplane_1") }, ["label.name"]],
    ])("rejects bad input (%s) with INVALID_ARGUMENT", async (_, label, fields) => {
      const error = await rejectedUnchanged(() => ecl.createClusterLabel({ label }), Code.InvalidArgument);
      expect(fieldsOf(error)).toEqual(fields);
    });

    it("only names registered clusters", async () => {
      const error = await rejectedUnchanged(
        () => ecl.createClusterLabel({ label: { name: "l", clusters: only("ghost") } }),
        Code.FailedPrecondition,
      );
      expect(error.rawMessage).toContain('"ghost"');
    });

    it("keeps a label that is assigned or the default, saying where; and a cluster a label names", async () => {
      await ecl.createClusterLabel({ label: { name: "label1", clusters: only("dataplane_1") } });
      await ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "project1", domain: "development", value: "label1" } });
      await ecl.setDefaultClusterLabel({ label: "label1" });
      const error = await rejectedUnchanged(() => ecl.deleteClusterLabel({ name: "label1" }), Code.FailedPrecondition);
      expect(error.rawMessage).toContain("default label");
      expect(error.rawMessage).toContain('"project1/development"');

      await clusters.drainCluster({ name: "dataplane_1" });
      const clusterError = await rejectedUnchanged(() => clusters.deleteCluster({ name: "dataplane_1" }), Code.FailedPrecondition);
      expect(clusterError.rawMessage).toContain('label(s) "label1"');
    });

    it("sets, reads and clears the default label; an unknown one is INVALID_ARGUMENT", async () => {
      await ecl.createClusterLabel({ label: { name: "label1", clusters: only("dataplane_1") } });
      expect((await ecl.setDefaultClusterLabel({ label: "label1" })).label).toBe("label1");
      expect((await ecl.getDefaultClusterLabel({})).label).toBe("label1");
      expect(fieldsOf(await rejectedUnchanged(() => ecl.setDefaultClusterLabel({ label: "nope" }), Code.InvalidArgument))).toEqual(["label"]);
      await ecl.setDefaultClusterLabel({ label: "" });
      expect((await ecl.getDefaultClusterLabel({})).label).toBe("");
    });
  });

  describe("execution cluster label assignments", () => {
    beforeEach(async () => {
      await ecl.createClusterLabel({ label: { name: "label1", clusters: only("dataplane_1") } });
      await ecl.createClusterLabel({ label: { name: "label2", clusters: only("dataplane_2") } });
    });

    it("upserts, reads the stored and effective value, and deletes idempotently", async () => {
      const scope = { project: "project1", domain: "development" };
      const stored = (await ecl.updateExecutionClusterLabel({ executionClusterLabel: { ...scope, value: "label1" } })).executionClusterLabel!;
      expect(stored.scope).toBe(ExecutionClusterLabelScope.PROJECT_DOMAIN);
      await ecl.updateExecutionClusterLabel({ executionClusterLabel: { ...scope, value: "label2" } });
      const got = await ecl.getExecutionClusterLabel(scope);
      expect(got.executionClusterLabel?.value).toBe("label2");
      expect([got.effectiveValue, got.effectiveScope]).toEqual(["label2", ExecutionClusterLabelScope.PROJECT_DOMAIN]);

      const workflow = await ecl.getExecutionClusterLabel({ ...scope, workflow: "wf" });
      expect(workflow.executionClusterLabel).toBeUndefined();
      expect([workflow.effectiveValue, workflow.effectiveScope]).toEqual(["label2", ExecutionClusterLabelScope.PROJECT_DOMAIN]);

      await ecl.deleteExecutionClusterLabel(scope);
      await ecl.deleteExecutionClusterLabel(scope);
      const gone = await ecl.getExecutionClusterLabel(scope);
      expect([gone.executionClusterLabel, gone.effectiveValue, gone.effectiveScope]).toEqual([undefined, "", ExecutionClusterLabelScope.UNSPECIFIED]);
    });

    it("rejects unknown labels, unregistered and archived projects, and malformed scopes", async () => {
      const base = { project: "project1", domain: "development", value: "label1" };
      expect(fieldsOf(await rejectedUnchanged(() => ecl.updateExecutionClusterLabel({ executionClusterLabel: { ...base, value: "nope" } }), Code.InvalidArgument))).toEqual([
        "execution_cluster_label.value",
      ]);
      await rejectedUnchanged(() => ecl.updateExecutionClusterLabel({ executionClusterLabel: { ...base, project: "ghost" } }), Code.FailedPrecondition);
      await rejectedUnchanged(() => ecl.updateExecutionClusterLabel({ executionClusterLabel: { ...base, domain: "qa" } }), Code.InvalidArgument);
      await rejectedUnchanged(() => ecl.updateExecutionClusterLabel({ executionClusterLabel: { ...base, domain: "", workflow: "wf" } }), Code.InvalidArgument);
      await rejectedUnchanged(() => ecl.updateExecutionClusterLabel({}), Code.InvalidArgument);
      await projects.archiveProject({ id: "project1" });
      const archived = await rejectedUnchanged(() => ecl.updateExecutionClusterLabel({ executionClusterLabel: base }), Code.FailedPrecondition);
      expect(archived.rawMessage).toContain("archived");
    });

    it("lists by project and domain, paged in scope order", async () => {
      await projects.createProject({ project: { id: "team1" } });
      for (const scope of [
        { project: "project1" },
        { project: "project1", domain: "development" },
        { project: "project1", domain: "development", workflow: "wf" },
        { project: "project1", domain: "production", launchPlan: "lp" },
        { project: "team1", domain: "production" },
      ]) {
        await ecl.updateExecutionClusterLabel({ executionClusterLabel: { ...scope, value: "label1" } });
      }
      const describe = (list: { project: string; domain: string; workflow: string; launchPlan: string }[]) =>
        list.map((a) => [a.project, a.domain, a.workflow, a.launchPlan].join("/"));
      expect(describe((await ecl.listExecutionClusterLabels({ project: "project1", domain: "development" })).executionClusterLabels)).toEqual([
        "project1/development//",
        "project1/development/wf/",
      ]);
      const first = await ecl.listExecutionClusterLabels({ pageSize: 3 });
      const second = await ecl.listExecutionClusterLabels({ pageSize: 3, pageToken: first.nextPageToken });
      expect(describe([...first.executionClusterLabels, ...second.executionClusterLabels])).toEqual([
        "project1///",
        "project1/development//",
        "project1/development/wf/",
        "project1/production//lp",
        "team1/production//",
      ]);
    });
  });

  describe("SelectCluster", () => {
    beforeEach(async () => {
      for (const [name, cluster] of [["lp", "dataplane_1"], ["wf", "dataplane_2"], ["pd", "dataplane_3"], ["p", "dataplane_1"], ["dflt", "dataplane_2"]]) {
        await ecl.createClusterLabel({ label: { name: name!, clusters: only(cluster!) } });
      }
    });

    it("resolves launch plan > workflow > project-domain > project > default label > any cluster", async () => {
      const assign = (scope: object, value: string) => ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "project1", ...scope, value } });
      const request = { workflow: "wf1", launchPlan: "lp1" };
      const answer = async () => {
        const selection = await select(request);
        return [selection.label, selection.reason];
      };
      expect((await select(request)).reason).toBe("no label assigned: any eligible cluster");
      await ecl.setDefaultClusterLabel({ label: "dflt" });
      expect(await answer()).toEqual(["dflt", "default label dflt"]);
      await assign({}, "p");
      expect(await answer()).toEqual(["p", "project label p"]);
      await assign({ domain: "development" }, "pd");
      expect(await answer()).toEqual(["pd", "project-domain label pd"]);
      await assign({ domain: "development", workflow: "wf1" }, "wf");
      expect(await answer()).toEqual(["wf", "workflow label wf"]);
      await assign({ domain: "development", launchPlan: "lp1" }, "lp");
      expect(await answer()).toEqual(["lp", "launch plan label lp"]);
      expect((await select(request)).cluster).toBe("dataplane_1");
      // Another domain only sees the project-wide assignment.
      expect((await select({ ...request, domain: "production" })).label).toBe("p");
    });

    it("lets an explicit cluster, label or queue in the request override the assignments", async () => {
      await ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "project1", value: "p" } });
      expect(await select({ target: { case: "cluster", value: "dataplane_3" } })).toMatchObject({ cluster: "dataplane_3", reason: "cluster from the request" });
      expect(await select({ target: { case: "label", value: "wf" } })).toMatchObject({ cluster: "dataplane_2", label: "wf" });
      await queues.createQueue({ queue: { name: "q3", clusters: ["dataplane_3"] } });
      expect(await select({ target: { case: "queue", value: "q3" } })).toMatchObject({ cluster: "dataplane_3", reason: "queue q3 from the request" });
    });

    it("answers with the cluster's endpoint and pool", async () => {
      expect(await select({ target: { case: "cluster", value: "dataplane_2" } })).toMatchObject({
        cluster: "dataplane_2",
        endpoint: "https://dataplane-2.example.com:443",
        pool: "default",
      });
    });

    it("sends one execution to one cluster, and spreads many by weight", async () => {
      await ecl.createClusterLabel({
        label: { name: "spread", clusters: [{ cluster: "dataplane_1", weight: 0.6 }, { cluster: "dataplane_2", weight: 0.2 }, { cluster: "dataplane_3", weight: 0.2 }] },
      });
      const target = { case: "label" as const, value: "spread" };
      const first = (await select({ target, executionId: "f3a1b2c4d5" })).cluster;
      for (let i = 0; i < 20; i++) expect((await select({ target, executionId: "f3a1b2c4d5" })).cluster).toBe(first);
      const counts = new Map<string, number>();
      for (let i = 0; i < 20_000; i++) {
        const { cluster } = await select({ target, executionId: `exec-${i}` });
        counts.set(cluster, (counts.get(cluster) ?? 0) + 1);
      }
      expect(Math.abs(counts.get("dataplane_1")! / 20_000 - 0.6)).toBeLessThan(0.02);
      expect(Math.abs(counts.get("dataplane_2")! / 20_000 - 0.2)).toBeLessThan(0.02);
      expect(Math.abs(counts.get("dataplane_3")! / 20_000 - 0.2)).toBeLessThan(0.02);
      // 20 000 calls are CPU-bound: about 4 s on an idle machine, several times that on a busy one
      // (it runs once per engine), so it gets more than the default 30 s.
    }, 120_000);

    it("never chooses drained, disabled or deleted clusters, and says why when nothing is left", async () => {
      await ecl.createClusterLabel({ label: { name: "pair", clusters: [...only("dataplane_1"), ...only("dataplane_2")] } });
      const picks = async (request: SelectInit) => {
        const seen = new Set<string>();
        for (let i = 0; i < 200; i++) seen.add((await select({ ...request, executionId: `e${i}` })).cluster);
        return [...seen].sort();
      };
      const target = { case: "label" as const, value: "pair" };
      expect(await picks({ target })).toEqual(["dataplane_1", "dataplane_2"]);
      await clusters.drainCluster({ name: "dataplane_1" });
      expect(await picks({ target })).toEqual(["dataplane_2"]);
      await clusters.updateCluster({ cluster: { name: "dataplane_2", enabled: false }, updateMask: { paths: ["enabled"] } });
      const none = await failure(select({ target }));
      expect(none.code).toBe(Code.FailedPrecondition);
      // Each reason says what would make the cluster routable again, and nothing else is suggested.
      expect(none.rawMessage).toBe(
        'label "pair" has no cluster that can take executions of project1/development: "dataplane_1" is drained (ActivateCluster routes to it again); ' +
          '"dataplane_2" is disabled (UpdateCluster with enabled: true routes to it again)',
      );
      expect((await failure(select({ target: { case: "cluster", value: "dataplane_1" } }))).code).toBe(Code.FailedPrecondition);

      await ecl.deleteClusterLabel({ name: "pd" });
      await clusters.drainCluster({ name: "dataplane_3" });
      await clusters.deleteCluster({ name: "dataplane_3" });
      await clusters.activateCluster({ name: "dataplane_1" });
      expect(await picks({})).toEqual(["dataplane_1"]);
    });

    it("sees label edits on the very next call", async () => {
      await ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "project1", value: "p" } });
      expect((await select()).cluster).toBe("dataplane_1");
      await ecl.updateClusterLabel({ label: { name: "p", clusters: only("dataplane_3") } });
      expect((await select()).cluster).toBe("dataplane_3");
      await ecl.deleteExecutionClusterLabel({ project: "project1" });
      expect((await select()).label).toBe("");
    });

    it("routes through a queue over every cluster of its pool, and refuses a drained queue", async () => {
      await queues.createQueue({ queue: { name: "everything", clusters: ["*"] } });
      expect(["dataplane_1", "dataplane_2", "dataplane_3"]).toContain((await select({ target: { case: "queue", value: "everything" } })).cluster);
      await queues.drainQueue({ name: "everything" });
      expect((await failure(select({ target: { case: "queue", value: "everything" } }))).code).toBe(Code.FailedPrecondition);
    });

    it("refuses unregistered and archived projects", async () => {
      expect((await failure(select({ project: "ghost" }))).code).toBe(Code.FailedPrecondition);
      await projects.archiveProject({ id: "project1" });
      expect((await failure(select())).rawMessage).toContain("archived");
    });

    it.each([
      ["unknown label", { target: { case: "label" as const, value: "nope" } }, ["label"]],
      ["unknown queue", { target: { case: "queue" as const, value: "nope" } }, ["queue"]],
      ["unknown cluster", { target: { case: "cluster" as const, value: "nope" } }, ["cluster"]],
      ["no execution id", { executionId: "" }, ["execution_id"]],
      ["unknown domain", { domain: "qa" }, ["domain"]],
      ["no domain", { domain: "" }, ["domain"]],
      ["bad project", { project: "Project 1" }, ["project"]],
    ])("answers %s with INVALID_ARGUMENT naming the field", async (_, request, fields) => {
      const error = await failure(select(request as Partial<SelectClusterRequest>));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(fieldsOf(error)).toEqual(fields);
    });
  });
});
