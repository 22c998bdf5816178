import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterService, SyncHealth } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { DEFAULT_SYNC_SETTINGS, type SyncSettings } from "../../src/sync/sync-settings.js";
import { StandInApiServer, type Fault } from "../support/kube/stand-in-apiserver.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";

const SPARK_TEMPLATE = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: spark
  annotations:
    clusterplane.io/team: "{{ project }}"
    clusterplane.io/tier: "{{ tier }}"
`;

/** Generous: a busy machine is slow, never wrong; a real failure still ends the test. */
const PATIENCE = 20_000;

let server: TestServer;
let apiA: StandInApiServer;
let apiB: StandInApiServer;
let templatesDir: string;
let clusters: Client<typeof ClusterService>;
let projects: Client<typeof ProjectService>;
let routing: Client<typeof ExecutionClusterLabelService>;

const tokenFiles = new Map<string, string>();

async function register(name: string, api: StandInApiServer): Promise<void> {
  const credentials = api.writeCredentials(mkdtempSync(join(tmpdir(), `creds-${name}-`)));
  tokenFiles.set(name, credentials.tokenPath);
  await clusters.createCluster({
    cluster: {
      name,
      endpoint: api.url,
      auth: { method: { case: "bearerTokenFile", value: { tokenPath: credentials.tokenPath, caCertPath: credentials.caCertPath } } },
    },
  });
}

async function syncStatus(name: string) {
  return (await clusters.getCluster({ name })).cluster!.syncStatus!;
}

/** Deletes an object behind the control plane's back, as a person with kubectl would. */
function deleteOnCluster(api: StandInApiServer, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = https.request(`${api.url}${path}`, { method: "DELETE", ca: api.caCertPem, headers: { authorization: `Bearer ${api.token}` } }, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode ?? 0));
    });
    request.on("error", reject);
    request.end();
  });
}

/** Every project-domain namespace of `project` exists on `api`, with its service accounts. */
function converged(api: StandInApiServer, project: string): boolean {
  return ["development", "staging", "production"].every(
    (domain) =>
      api.getObject("namespaces", "", `${project}-${domain}`) !== undefined &&
      api.getObject("serviceaccounts", `${project}-${domain}`, "spark") !== undefined,
  );
}

beforeAll(async () => {
  [apiA, apiB] = await Promise.all([StandInApiServer.start(), StandInApiServer.start()]);
  templatesDir = mkdtempSync(join(tmpdir(), "templates-"));
  writeFileSync(join(templatesDir, "spark.yaml"), SPARK_TEMPLATE);
  const sync: SyncSettings = {
    ...DEFAULT_SYNC_SETTINGS,
    // Long periods: every pass in these tests is caused by a change, never by the clock.
    intervalMs: 3_600_000,
    fullResyncIntervalMs: 3_600_000,
    requestTimeoutMs: 400,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
    templatePath: templatesDir,
    credentialDirectories: [tmpdir()],
    provisioning: {
      ...DEFAULT_SYNC_SETTINGS.provisioning,
      serviceAccount: { name: "default", labels: {}, annotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/{{ domain }}" } },
      templateData: { tier: "standard" },
      domainData: { production: { tier: "critical" } },
    },
  };
  server = await startTestServer({ sync });
  const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
  clusters = createClient(ClusterService, transport);
  projects = createClient(ProjectService, transport);
  routing = createClient(ExecutionClusterLabelService, transport);
  await projects.createProject({ project: { id: "project1" } });
  await projects.createProject({ project: { id: "team1" } });
  await register("dataplane_1", apiA);
  await register("dataplane_2", apiB);
});

afterAll(async () => {
  await server?.stop();
  await Promise.all([apiA?.stop(), apiB?.stop()]);
});

describe("the cluster-sync loop against two stand-in Kubernetes API servers", () => {
  it("converges both clusters to every project-domain's namespace and service accounts", async () => {
    await waitFor("both clusters converged", () => ["project1", "team1"].every((p) => converged(apiA, p) && converged(apiB, p)), PATIENCE);
    await server.sync!.idle();
    const account = apiA.getObject("serviceaccounts", "team1-production", "default") as { metadata: { annotations: Record<string, string> } };
    expect(account.metadata.annotations["eks.amazonaws.com/role-arn"]).toBe("arn:aws:iam::1:role/production");
    const spark = apiB.getObject("serviceaccounts", "project1-production", "spark") as { metadata: { annotations: Record<string, string> } };
    expect(spark.metadata.annotations).toEqual({ "clusterplane.io/team": "project1", "clusterplane.io/tier": "critical" });
    const status = await syncStatus("dataplane_1");
    expect(status.health).toBe(SyncHealth.HEALTHY);
    expect(status.objectsFailed).toBe(0);
    expect(status.lastSuccessTime).toBeDefined();
  });

  it("sends no writes on a second pass", async () => {
    apiA.resetCounters();
    apiB.resetCounters();
    const reports = await server.sync!.runOnce();
    expect(reports.map((r) => [r.cluster, r.applied, r.unchanged > 0])).toEqual([["dataplane_1", 0, true], ["dataplane_2", 0, true]]);
    expect(apiA.writeCount + apiB.writeCount).toBe(0);
  });

  it("re-applies only what a template change changed", async () => {
    apiA.resetCounters();
    writeFileSync(join(templatesDir, "spark.yaml"), SPARK_TEMPLATE.replace("clusterplane.io/tier", "clusterplane.io/level"));
    const reports = await server.sync!.runOnce();
    // One spark service account per project-domain: 2 projects x 3 domains.
    expect(reports.find((r) => r.cluster === "dataplane_1")!.applied).toBe(6);
    expect(apiA.writeCount).toBe(6);
    const spark = apiA.getObject("serviceaccounts", "team1-staging", "spark") as { metadata: { annotations: Record<string, string> } };
    expect(spark.metadata.annotations).toEqual({ "clusterplane.io/team": "team1", "clusterplane.io/level": "standard" });
  });

  it("applies a template change at once, without waiting for the interval", async () => {
    writeFileSync(join(templatesDir, "spark.yaml"), SPARK_TEMPLATE.replace("clusterplane.io/tier", "clusterplane.io/grade"));
    const annotated = (api: StandInApiServer) =>
      (api.getObject("serviceaccounts", "project1-development", "spark") as { metadata: { annotations: Record<string, string> } }).metadata
        .annotations["clusterplane.io/grade"] === "standard";
    await waitFor("both clusters re-applied", () => annotated(apiA) && annotated(apiB), PATIENCE);
    await server.sync!.idle();
  });

  it("repairs drift made by hand on the next full pass (a normal pass trusts its hashes)", async () => {
    await deleteOnCluster(apiA, "/api/v1/namespaces/team1-staging/serviceaccounts/spark");
    await server.sync!.runOnce();
    expect(apiA.getObject("serviceaccounts", "team1-staging", "spark")).toBeUndefined();
    apiA.resetCounters();
    const reports = await server.sync!.runOnce(true);
    // Everything is sent again; only the deleted object changes anything on the cluster.
    expect(reports.find((r) => r.cluster === "dataplane_1")!.applied).toBe(18);
    expect(apiA.changeCount).toBe(1);
    expect(apiA.getObject("serviceaccounts", "team1-staging", "spark")).toBeDefined();
  });

  it("reports a template error on every cluster but keeps routing to them", async () => {
    writeFileSync(join(templatesDir, "broken.yaml"), "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: '{{ nowhere }}'\n");
    try {
      await server.sync!.runOnce();
      const status = await syncStatus("dataplane_1");
      expect(status.health).toBe(SyncHealth.DEGRADED);
      expect(status.lastError).toContain("{{ nowhere }}");
      expect((await routing.selectCluster({ project: "project1", domain: "development", executionId: "e1" })).cluster).toMatch(/^dataplane_[12]$/);
    } finally {
      rmSync(join(templatesDir, "broken.yaml"));
    }
    await server.sync!.runOnce();
    expect((await syncStatus("dataplane_1")).health).toBe(SyncHealth.HEALTHY);
  });

  it("provisions a cluster re-pointed to another API server in the middle of a pass", async () => {
    const [slow, other] = await Promise.all([StandInApiServer.start(), StandInApiServer.start()]);
    try {
      await slow.setFault({ kind: "slow", delayMs: 100 });
      await register("moving", slow);
      await waitFor("the first pass under way", () => slow.requestCount > 0, PATIENCE);
      const credentials = other.writeCredentials(mkdtempSync(join(tmpdir(), "creds-other-")));
      await clusters.updateCluster({
        cluster: { name: "moving", endpoint: other.url, auth: { method: { case: "bearerTokenFile", value: credentials } } },
        updateMask: { paths: ["endpoint", "auth"] },
      });
      await waitFor("the new API server provisioned", () => ["project1", "team1"].every((p) => converged(other, p)), 15_000);
    } finally {
      await clusters.drainCluster({ name: "moving" });
      await clusters.deleteCluster({ name: "moving" });
      await Promise.all([slow.stop(), other.stop()]);
    }
  });

  it("syncs a newly registered project and a newly registered cluster without waiting for the interval", async () => {
    await projects.createProject({ project: { id: "newcomer" } });
    await waitFor("the new project on both clusters", () => converged(apiA, "newcomer") && converged(apiB, "newcomer"), PATIENCE);
    const apiC = await StandInApiServer.start();
    try {
      await register("dataplane_3", apiC);
      await waitFor("the new cluster converged", () => ["project1", "team1", "newcomer"].every((p) => converged(apiC, p)), PATIENCE);
    } finally {
      await clusters.drainCluster({ name: "dataplane_3" });
      await clusters.deleteCluster({ name: "dataplane_3" });
      await apiC.stop();
    }
  });

  it("routes to a new cluster only once its first pass has provisioned it", async () => {
    const api = await StandInApiServer.start();
    try {
      await api.setFault({ kind: "slow", delayMs: 150 });
      await register("fresh", api);
      const explicit = () => routing.selectCluster({ project: "project1", domain: "development", executionId: "e1", target: { case: "cluster", value: "fresh" } });
      const early = await explicit().catch((error: unknown) => error as Error);
      expect(String(early)).toContain("not provisioned yet");
      await waitFor("the first pass done", async () => (await syncStatus("fresh")).health === SyncHealth.HEALTHY, 20_000);
      expect((await explicit()).cluster).toBe("fresh");
    } finally {
      await clusters.drainCluster({ name: "fresh" });
      await clusters.deleteCluster({ name: "fresh" });
      await api.stop();
    }
  });

  it("reads credentials from their files on every pass, so a rotated token is picked up", async () => {
    const tokenPath = tokenFiles.get("dataplane_2")!;
    writeFileSync(tokenPath, "a-token-the-cluster-does-not-know\n");
    await projects.createProject({ project: { id: "rotation" } });
    await waitFor("the stale token reported", async () => (await syncStatus("dataplane_2")).lastError.includes("401"), PATIENCE);
    writeFileSync(tokenPath, `${apiB.token}\n`);
    await waitFor("the new token used", async () => converged(apiB, "rotation") && (await syncStatus("dataplane_2")).health === SyncHealth.HEALTHY, PATIENCE);
  });

  it("never routes to a cluster whose identity may not create namespaces (403), and says how to fix it", async () => {
    const api = await StandInApiServer.start();
    try {
      api.failRequests({ resource: "namespaces", verbs: ["patch"], answer: "forbidden" });
      await register("rbac-less", api);
      await waitFor("the 403 reported", async () => (await syncStatus("rbac-less")).failureKind === "forbidden", 30_000);
      expect((await syncStatus("rbac-less")).health).toBe(SyncHealth.FAILING);
      expect(api.listObjects("namespaces").map((ns) => (ns.metadata as { name: string }).name)).not.toContain("project1-development");
      const refused = await routing
        .selectCluster({ project: "project1", domain: "development", executionId: "e1", target: { case: "cluster", value: "rbac-less" } })
        .catch((error: unknown) => ConnectError.from(error));
      expect(refused).toBeInstanceOf(ConnectError);
      expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
      expect((refused as ConnectError).rawMessage).toContain("grant it RBAC");
    } finally {
      await clusters.drainCluster({ name: "rbac-less" });
      await clusters.deleteCluster({ name: "rbac-less" });
      await api.stop();
    }
  });

  it("keeps routing to clusters that do not serve a template's kind: DEGRADED, their project-domains provisioned", async () => {
    writeFileSync(join(templatesDir, "quota.yaml"), "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\nspec:\n  hard: {cpu: '8'}\n");
    try {
      await waitFor("the unsupported kind reported", async () => (await syncStatus("dataplane_1")).health === SyncHealth.DEGRADED, 30_000);
      const status = await syncStatus("dataplane_1");
      expect(status.failureKind).toBe("");
      expect(status.objectFailures[0]?.kind).toBe("unsupported-kind");
      for (const cluster of ["dataplane_1", "dataplane_2"]) {
        const selected = await routing.selectCluster({ project: "project1", domain: "staging", executionId: "e2", target: { case: "cluster", value: cluster } });
        expect(selected.cluster).toBe(cluster);
      }
    } finally {
      rmSync(join(templatesDir, "quota.yaml"));
    }
    await waitFor("healthy again once the template is gone", async () => (await syncStatus("dataplane_1")).health === SyncHealth.HEALTHY, 30_000);
  });

  it("routes a new project to a cluster as soon as the pass its creation triggers has provisioned it", async () => {
    const provisionedOn = (cluster: string) =>
      new Promise<void>((resolve) => {
        const unsubscribe = server.sync!.onPass((report) => {
          if (report.cluster !== cluster || !report.outcome.provisioned.some((pair) => pair.project === "routable")) return;
          unsubscribe();
          resolve();
        });
      });
    const passes = Promise.all([provisionedOn("dataplane_1"), provisionedOn("dataplane_2")]);
    await projects.createProject({ project: { id: "routable" } });
    await passes;
    // The outcome is in the change log before the pass is reported; routing follows it on commit.
    for (const cluster of ["dataplane_1", "dataplane_2"]) {
      const selected = await routing.selectCluster({ project: "routable", domain: "production", executionId: "e3", target: { case: "cluster", value: cluster } });
      expect(selected.cluster).toBe(cluster);
    }
    expect(converged(apiA, "routable") && converged(apiB, "routable")).toBe(true);
  });

  const faults: [string, Fault, RegExp][] = [
    ["down", { kind: "down" }, /connection refused/],
    ["answering 500", { kind: "error500" }, /500 InternalError/],
    ["slow", { kind: "slow", delayMs: 1_500 }, /no answer within 400 ms/],
    ["a black hole", { kind: "blackhole" }, /no answer within 400 ms/],
    ["rejecting our token", { kind: "wrong-token" }, /401 Unauthorized/],
    ["presenting another CA's certificate", { kind: "wrong-ca" }, /TLS verification failed/],
  ];

  it.each(faults)("keeps the other cluster converged while one is %s, reports it, and heals", async (_, fault, error) => {
    await apiB.setFault(fault);
    const project = `fault-${fault.kind}`;
    try {
      await projects.createProject({ project: { id: project } });
      await waitFor("the healthy cluster converged", () => converged(apiA, project), PATIENCE);
      await waitFor("the fault reported", async () => (await syncStatus("dataplane_2")).health === SyncHealth.FAILING, PATIENCE);
      const failing = await syncStatus("dataplane_2");
      expect(failing.lastError).toMatch(error);
      expect(failing.consecutiveFailures).toBeGreaterThan(0);
      expect((await syncStatus("dataplane_1")).health).toBe(SyncHealth.HEALTHY);
      // A cluster failing sync is not routed to.
      const selection = await routing.selectCluster({ project, domain: "development", executionId: "e1" });
      expect(selection.cluster).toBe("dataplane_1");
    } finally {
      await apiB.clearFault();
    }
    await waitFor("the faulty cluster healed", async () => converged(apiB, project) && (await syncStatus("dataplane_2")).health === SyncHealth.HEALTHY, 15_000);
    expect((await syncStatus("dataplane_2")).lastError).toBe("");
  });
});
