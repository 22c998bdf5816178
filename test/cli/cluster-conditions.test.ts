import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService, ConditionStatus } from "../../gen/clusterplane/v1/cluster_pb.js";
import { seedCluster } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { cliAgainst, tableRows, type Cli } from "./run-cli.js";

let server: TestServer;
let cli: Cli;
beforeAll(async () => {
  server = await startTestServer();
  cli = cliAgainst(server.url);
  const clusters = createClient(ClusterService, createGrpcTransport({ baseUrl: server.url }));
  for (const name of ["dataplane_1", "dataplane_2", "dataplane_3"]) await clusters.createCluster({ cluster: seedCluster(name) });
  const pair = (domain: string) => ({ project: "team1", domain });
  const desired = ["development", "staging", "production"].map(pair);
  const outcome = { startedAt: new Date(), finishedAt: new Date(), full: false, applied: 6, unchanged: 0, objectsFailed: 0, objectFailures: [], templateErrors: [], desired };
  await server.stores.sync.recordOutcome("", "dataplane_1", { ...outcome, failure: null, provisioned: desired });
  await server.stores.sync.recordOutcome("", "dataplane_2", {
    ...outcome,
    failure: { kind: "forbidden", message: "the identity may not create namespaces (403): grant it RBAC for namespaces and serviceaccounts" },
    provisioned: [],
  });
});
afterAll(() => server.stop());

describe("a cluster's conditions, as the API and the CLI show them", () => {
  it("ClusterService returns the conditions and the provisioned count", async () => {
    const clusters = createClient(ClusterService, createGrpcTransport({ baseUrl: server.url }));
    const { cluster } = await clusters.getCluster({ name: "dataplane_2" });
    expect(cluster!.conditions.map((c) => [c.type, ConditionStatus[c.status], c.reason])).toEqual([
      ["Reachable", "TRUE", "APIServerAnswered"],
      ["Authorized", "FALSE", "Forbidden"],
      ["Provisioned", "FALSE", "PassFailed"],
      ["Degraded", "FALSE", "AllObjectsApplied"],
    ]);
    expect(cluster!.syncStatus).toMatchObject({ projectDomainsProvisioned: 0, projectDomainsDesired: 3, failureKind: "forbidden" });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('clusterplane_cluster_condition{org="",cluster="dataplane_2",condition="Authorized",status="False"} 1');
    expect(metrics).toContain('clusterplane_cluster_project_domains_provisioned{org="",cluster="dataplane_1"} 3');
  });

  it("get cluster has READY and PROVISIONED; get cluster NAME lists the conditions", async () => {
    const list = await cli(["get", "cluster"]);
    expect(list.code).toBe(0);
    const rows = tableRows(list.stdout);
    expect(rows.map((row) => [row.NAME, row.READY, row.PROVISIONED])).toEqual([
      ["dataplane_1", "True", "3/3"],
      ["dataplane_2", "False", "0/3"],
      ["dataplane_3", "-", "-"],
    ]);
    const one = await cli(["get", "cluster", "dataplane_2"]);
    expect(one.stdout).toMatch(/^Authorized +FALSE +Forbidden +\S+ +the identity may not create namespaces \(403\)/m);
    const none = await cli(["get", "cluster", "dataplane_3"]);
    expect(none.stdout).toContain("No conditions yet: the cluster has not been through a sync pass.");
  });
});
