import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";

let server: TestServer;
let watchers: ChildProcess[] = [];
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());
afterEach(() => {
  for (const child of watchers) child.kill();
  watchers = [];
});

/** `clusterplane get … --watch` as its own long-running process; its stdout lines as they come. */
function watch(args: string[]) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("CLUSTERPLANE_")));
  const child = spawn(process.execPath, ["bin/clusterplane.mjs", ...args], {
    env: { ...env, CLUSTERPLANE_ENDPOINT: server.url, XDG_CONFIG_HOME: "/nonexistent" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  watchers.push(child);
  const lines: string[] = [];
  const errors: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => lines.push(line));
  createInterface({ input: child.stderr! }).on("line", (line) => errors.push(line));
  return { lines, errors };
}

const transport = () => createGrpcTransport({ baseUrl: server.url });

/** A watch row in brief: name, state and the mark of a row that left (`(deleted)`, `(no longer matches)`). */
function brief(line: string): string {
  const state = /\b(ACTIVE|DRAINED)\b/.exec(line)?.[1];
  const gone = /\((deleted|no longer matches)\)$/.exec(line)?.[0];
  return [line.split(" ")[0], state, gone].filter(Boolean).join(" ");
}

describe("clusterplane get NOUN --watch", () => {
  it("prints the list, then a row per change, as kubectl get -w does", async () => {
    const clusters = createClient(ClusterService, transport());
    await clusters.createCluster({ cluster: seedCluster("dataplane_1") });
    const { lines } = watch(["get", "cluster", "--watch"]);
    await waitFor("the list", () => lines.some((line) => line.startsWith("dataplane_1")), 20_000);
    expect(lines[0]).toMatch(/^NAME +POOL +MODE +ENDPOINT/);

    await clusters.createCluster({ cluster: seedCluster("dataplane_2") });
    await waitFor("the new cluster's row", () => lines.some((line) => line.startsWith("dataplane_2")), 20_000);
    // A sync pass changes READY and PROVISIONED: the row comes again.
    const desired = [{ project: "p", domain: "development" }];
    await server.stores.sync.recordOutcome("", "dataplane_2", {
      startedAt: new Date(), finishedAt: new Date(), full: false, applied: 2, unchanged: 0, failure: null,
      objectsFailed: 0, objectFailures: [], templateErrors: [], desired, provisioned: desired,
    });
    await waitFor("the synced row", () => lines.some((line) => /^dataplane_2 .* True +1\/1 /.test(line)), 20_000);
    await clusters.drainCluster({ name: "dataplane_2" });
    await waitFor("the drained row", () => lines.some((line) => /^dataplane_2 .*DRAINED/.test(line)), 20_000);
    const { cluster } = await clusters.getCluster({ name: "dataplane_2" });
    await clusters.deleteCluster({ name: "dataplane_2", etag: cluster!.etag });
    await waitFor("the deleted row", () => lines.some((line) => /^dataplane_2 .*\(deleted\)$/.test(line)), 20_000);
    // Columns line up with the list's header.
    const header = lines[0]!;
    const added = lines.find((line) => line.startsWith("dataplane_2"))!;
    expect(added.indexOf("default")).toBe(header.indexOf("POOL"));
  });

  it("-o json prints one event per line: the list, SNAPSHOT_COMPLETE, then PUT and DELETE", async () => {
    const projects = createClient(ProjectService, transport());
    await projects.createProject({ project: { id: "team1" } });
    const { lines } = watch(["get", "project", "--watch", "-o", "json"]);
    await waitFor("the snapshot", () => lines.some((line) => line.includes("SNAPSHOT_COMPLETE")), 20_000);
    await projects.createProject({ project: { id: "team2" } });
    await projects.archiveProject({ id: "team2" });
    await waitFor("two live events", () => lines.length >= 4, 20_000);
    const events = lines.map((line) => JSON.parse(line) as { type: string; revision: string; object?: { id: string; state?: string } });
    expect(events.map((e) => [e.type, e.object?.id])).toEqual([
      ["PUT", "team1"],
      ["SNAPSHOT_COMPLETE", undefined],
      ["PUT", "team2"],
      ["PUT", "team2"],
    ]);
    expect(events[3]!.object?.state).toBe("PROJECT_STATE_ARCHIVED");
    expect(Number(events[3]!.revision)).toBeGreaterThan(Number(events[2]!.revision));
  });

  it("watches one object by name, and execution cluster labels by scope", async () => {
    const clusters = createClient(ClusterService, transport());
    const ecl = createClient(ExecutionClusterLabelService, transport());
    await createClient(ProjectService, transport()).createProject({ project: { id: "team3" } });
    await clusters.createCluster({ cluster: seedCluster("dataplane_3") });
    await ecl.createClusterLabel({ label: { name: "label3", clusters: [{ cluster: "dataplane_3", weight: 1 }] } });
    const one = watch(["get", "cluster", "dataplane_3", "--watch", "-o", "json"]);
    const scoped = watch(["get", "execution-cluster-label", "-p", "team3", "--watch", "-o", "json"]);
    await waitFor("both snapshots", () => [one, scoped].every(({ lines }) => lines.some((l) => l.includes("SNAPSHOT_COMPLETE"))), 20_000);
    await clusters.createCluster({ cluster: seedCluster("dataplane_4") });
    await clusters.drainCluster({ name: "dataplane_3" });
    // Another project's assignment is outside the scope watched.
    await createClient(ProjectService, transport()).createProject({ project: { id: "team4" } });
    await ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "team4", domain: "staging", value: "label3" } });
    await ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "team3", domain: "staging", value: "label3" } });
    await waitFor("the drain", () => one.lines.length >= 3, 20_000);
    await waitFor("the assignment", () => scoped.lines.length >= 2, 20_000);
    expect(one.lines.map((line) => JSON.parse(line).object?.name ?? "-")).toEqual(["dataplane_3", "-", "dataplane_3"]);
    const events = scoped.lines.map((line) => JSON.parse(line) as { type: string; object?: { project: string; domain: string; value: string } });
    expect(events.map((e) => [e.type, e.object?.project])).toEqual([["SNAPSHOT_COMPLETE", undefined], ["PUT", "team3"]]);
    expect(events[1]!.object).toMatchObject({ project: "team3", domain: "staging", value: "label3" });
  });

  it("keeps the list's columns for every later row, a narrower one included", async () => {
    const clusters = createClient(ClusterService, transport());
    await clusters.createCluster({ cluster: seedCluster("a_rather_long_cluster_name") });
    const { lines } = watch(["get", "cluster", "--watch"]);
    await waitFor("the list", () => lines.some((line) => line.startsWith("a_rather_long_cluster_name ")), 20_000);
    await clusters.createCluster({ cluster: seedCluster("c_1") });
    await waitFor("c_1's row", () => lines.some((line) => line.startsWith("c_1 ")), 20_000);
    const rows = lines.filter((line) => /^(a_rather_long_cluster_name|c_1) /.test(line));
    expect(rows.map((row) => [row.split(" ")[0], row.indexOf(" default ") + 1])).toEqual([
      ["a_rather_long_cluster_name", lines[0]!.indexOf("POOL")],
      ["c_1", lines[0]!.indexOf("POOL")],
    ]);
  });

  it("applies get's --pool and --state: rows outside them never show, and one that stops matching leaves", async () => {
    await createClient(ClusterPoolService, transport()).createClusterPool({ clusterPool: seedProdPool({ name: "blue" }) });
    const clusters = createClient(ClusterService, transport());
    await clusters.createCluster({ cluster: seedCluster("blue_1", "blue") });
    await clusters.createCluster({ cluster: seedCluster("blue_2", "blue") });
    await clusters.drainCluster({ name: "blue_2" });
    await clusters.createCluster({ cluster: seedCluster("green_1") });
    const { lines } = watch(["get", "cluster", "--watch", "--pool", "blue", "--state", "active"]);
    await waitFor("the list", () => lines.some((line) => line.startsWith("blue_1")), 20_000);

    await clusters.createCluster({ cluster: seedCluster("green_2") }); // another pool
    await clusters.drainCluster({ name: "green_1" });
    await clusters.activateCluster({ name: "blue_2" }); // starts matching
    await clusters.drainCluster({ name: "blue_1" }); // stops matching
    const { cluster } = await clusters.getCluster({ name: "blue_1" });
    await clusters.deleteCluster({ name: "blue_1", etag: cluster!.etag }); // gone already
    await clusters.createCluster({ cluster: seedCluster("b_3", "blue") });
    // Changes come in order: once b_3's row is out, every earlier change has been shown or not.
    await waitFor("b_3's row", () => lines.some((line) => line.startsWith("b_3")), 20_000);
    expect(lines.map(brief)).toEqual(["NAME", "blue_1 ACTIVE", "blue_2 ACTIVE", "blue_1 DRAINED (no longer matches)", "b_3 ACTIVE"]);
    // Every row keeps the list's columns, a shorter name (b_3) included.
    for (const line of lines.slice(1)) expect([line, line.indexOf(" blue ") + 1]).toEqual([line, lines[0]!.indexOf("POOL")]);
  });

  it("prints the header with the first row when the list was empty", async () => {
    await createClient(ClusterPoolService, transport()).createClusterPool({ clusterPool: seedProdPool({ name: "violet" }) });
    const { lines, errors } = watch(["get", "cluster", "--watch", "--pool", "violet"]);
    await waitFor("the empty list", () => errors.includes("No clusters yet; watching."), 20_000);
    await createClient(ClusterService, transport()).createCluster({ cluster: seedCluster("violet_1", "violet") });
    await waitFor("violet_1's row", () => lines.some((line) => line.startsWith("violet_1")), 20_000);
    expect(lines.map(brief)).toEqual(["NAME", "violet_1 ACTIVE"]);
    expect(lines[1]!.indexOf("violet ")).toBe(lines[0]!.indexOf("POOL"));
  });

  it("-o json with --state: a DELETE event for an object that stops matching, a PUT when it matches again", async () => {
    const projects = createClient(ProjectService, transport());
    await projects.createProject({ project: { id: "f-active" } });
    await projects.createProject({ project: { id: "f-archived" } });
    await projects.archiveProject({ id: "f-archived" });
    const { lines } = watch(["get", "project", "--watch", "--state", "active", "-o", "json"]);
    await waitFor("the snapshot", () => lines.some((line) => line.includes("SNAPSHOT_COMPLETE")), 20_000);
    await projects.archiveProject({ id: "f-active" });
    await projects.activateProject({ id: "f-archived" });
    await projects.createProject({ project: { id: "f-new" } });
    await waitFor("f-new", () => lines.some((line) => line.includes('"f-new"')), 20_000);
    const events = lines.map((line) => JSON.parse(line) as { type: string; object?: { id: string; state?: string } });
    expect(events.filter((e) => !e.object || e.object.id.startsWith("f-")).map((e) => [e.type, e.object?.id, e.object?.state])).toEqual([
      ["PUT", "f-active", "PROJECT_STATE_ACTIVE"],
      ["SNAPSHOT_COMPLETE", undefined, undefined],
      ["DELETE", "f-active", "PROJECT_STATE_ARCHIVED"],
      ["PUT", "f-archived", "PROJECT_STATE_ACTIVE"],
      ["PUT", "f-new", "PROJECT_STATE_ACTIVE"],
    ]);
    // Nothing archived is listed (team2 of an earlier test, say), only taken away.
    expect(events.filter((e) => e.type === "PUT").every((e) => e.object?.state === "PROJECT_STATE_ACTIVE")).toBe(true);
  });
});
