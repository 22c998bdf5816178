import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { startTestServer, type TestServer } from "../support/server.js";
import { cliAgainst, fixture, tableRows, type Cli } from "./run-cli.js";

const WALK_THROUGH_MS = 120_000;
// The seed's endpoints are documentation placeholders (`https://<DATAPLANE-1-K8S-API-ENDPOINT>:443`):
// imported as is, the clusters are registered disabled without an endpoint; --cluster-endpoint fills them in.
const ENDPOINTS = [
  "--cluster-endpoint", "dataplane_1=https://dataplane1.example.com:443",
  "--cluster-endpoint", "dataplane_2=https://dataplane2.example.com:443",
];

describe("clusterplane CLI: the multi-cluster seed (flyteadmin import, labels, execution cluster labels) and the other nouns", () => {
  let server: TestServer;
  let cli: Cli;

  beforeAll(async () => {
    server = await startTestServer();
    cli = cliAgainst(server.url);
  });
  afterAll(() => server.stop());

  it(
    "import flyteadmin values-override.yaml: dry run changes nothing, the real run creates dataplane_1/2 and label1/2; running it again changes nothing, and its placeholders keep the endpoints set since",
    async () => {
      const dryRun = await cli(["import", "flyteadmin", fixture("values-override.yaml"), "--dry-run"]);
      expect(dryRun.code).toBe(0);
      expect(dryRun.stdout).toContain("(configmap.clusters), into pool default");
      expect(dryRun.stdout).toMatch(/cluster +dataplane_1 +create +\(no endpoint yet: placeholder\), disabled/);
      expect(dryRun.stdout).toMatch(/label +label2 +create +dataplane_2=1/);
      expect(dryRun.stdout).toContain("Secret cluster-credentials");
      expect(dryRun.stdout).toContain("Dry run: nothing changed (4 changes to make)");

      const noConfirmation = await cli(["import", "flyteadmin", fixture("values-override.yaml")]);
      expect(noConfirmation.code).toBe(3);
      expect(JSON.parse((await cli(["get", "cluster", "-o", "json"])).stdout)).toEqual([]);

      // The seed's file as is: the placeholder clusters are registered disabled, the labels created.
      const asIs = await cli(["import", "flyteadmin", fixture("values-override.yaml"), "--yes"]);
      expect(asIs.code).toBe(0);
      expect(asIs.stdout).toContain("cluster dataplane_1 created\ncluster dataplane_2 created\nlabel label1 created\nlabel label2 created\n");
      expect(asIs.stdout).toContain("is a placeholder: registered disabled without an endpoint");
      const disabled = JSON.parse((await cli(["get", "cluster", "-o", "json"])).stdout) as { enabled?: boolean; endpoint?: string }[];
      expect(disabled.map((c) => [c.enabled ?? false, c.endpoint ?? ""])).toEqual([[false, ""], [false, ""]]);

      // The real endpoints: both clusters are updated and enabled; a second run changes nothing.
      const filledIn = await cli(["import", "flyteadmin", fixture("values-override.yaml"), ...ENDPOINTS, "--yes"]);
      expect(filledIn.code).toBe(0);
      expect(filledIn.stdout).toContain("cluster dataplane_1 updated\ncluster dataplane_2 updated\n");
      expect(filledIn.stdout).toMatch(/cluster +dataplane_1 +update +endpoint \(none\) -> https:\/\/dataplane1\.example\.com:443; enabled false -> true/);
      const again = await cli(["import", "flyteadmin", fixture("values-override.yaml"), ...ENDPOINTS]);
      expect(again).toMatchObject({
        code: 0,
        stdout: "From " + fixture("values-override.yaml") + " (configmap.clusters), into pool default: nothing to change; its 4 objects are already registered.\n",
      });

      // The seed's file as is, again (a re-run of the day-1 step): its placeholders leave the
      // endpoints set since alone, and nothing is disabled. The dry run says exactly that.
      const placeholdersDryRun = await cli(["import", "flyteadmin", fixture("values-override.yaml"), "--dry-run"]);
      expect(placeholdersDryRun).toMatchObject({ code: 0, stdout: again.stdout });
      const placeholders = await cli(["import", "flyteadmin", fixture("values-override.yaml"), "--yes"]);
      expect(placeholders).toMatchObject({ code: 0, stdout: again.stdout });
      const kept = JSON.parse((await cli(["get", "cluster", "-o", "json"])).stdout) as { name: string; enabled?: boolean; endpoint?: string }[];
      expect(kept.map((c) => [c.name, c.endpoint, c.enabled])).toEqual([
        ["dataplane_1", "https://dataplane1.example.com:443", true],
        ["dataplane_2", "https://dataplane2.example.com:443", true],
      ]);
      // What does differ from the file is shown as a change, field by field, and only that.
      expect((await cli(["update", "label", "label2", "--cluster", "dataplane_1=1"])).code).toBe(0);
      const drifted = await cli(["import", "flyteadmin", fixture("values-override.yaml"), "--dry-run"]);
      expect(drifted.code).toBe(0);
      expect(drifted.stdout).toContain("  label   label2   update   dataplane_2=1 (was dataplane_1=1)\n");
      expect(drifted.stdout).toContain("  unchanged: cluster dataplane_1, cluster dataplane_2, label label1\n");
      expect(drifted.stdout).toContain("Dry run: nothing changed (1 change to make).");
      expect((await cli(["import", "flyteadmin", fixture("values-override.yaml"), "--yes"])).stdout).toContain("label label2 updated\n");

      expect(tableRows((await cli(["get", "label"])).stdout)).toEqual([
        { NAME: "label1", CLUSTERS: "dataplane_1=1" },
        { NAME: "label2", CLUSTERS: "dataplane_2=1" },
      ]);
      const clusters = JSON.parse((await cli(["get", "cluster", "-o", "json"])).stdout) as { name: string; pool: string; auth: unknown }[];
      expect(clusters.map(({ name, pool }) => [name, pool])).toEqual([["dataplane_1", "default"], ["dataplane_2", "default"]]);
      expect(clusters[1]!.auth).toEqual({
        bearerTokenFile: { tokenPath: "/var/run/credentials/dataplane_2_token", caCertPath: "/var/run/credentials/dataplane_2_cacert" },
      });
    },
    WALK_THROUGH_MS,
  );

  it(
    "projects and execution cluster labels: the seed's ecl.yaml, workflow-ecl.yaml with -p -d WORKFLOW, ecl-production.yaml; the default label; select-cluster",
    async () => {
      expect(await cli(["create", "project", "--file", fixture("project.yaml")])).toMatchObject({ code: 0, stdout: 'project "project1" created\n' });
      expect((await cli(["create", "project", "team1", "--description", "team one"])).code).toBe(0);

      const ecl = await cli(["update", "execution-cluster-label", "--attrFile", fixture("ecl.yaml")]);
      expect(ecl).toMatchObject({ code: 0, stdout: "Updated execution-cluster-label of project project1, domain development: label1\n" });

      // workflow-ecl.yaml names label "project1": it must exist (flyteadmin would silently fall back).
      const missingLabel = await cli(["update", "execution-cluster-label", "-p", "project1", "-d", "development", "example.training_workflow", "--attrFile", fixture("workflow-ecl.yaml")]);
      expect(missingLabel.code).toBe(1);
      expect(missingLabel.stderr).toMatch(/^Error: INVALID_ARGUMENT: .*label "project1" does not exist/);
      expect((await cli(["create", "label", "--file", fixture("label.yaml")])).code).toBe(0);
      const workflow = await cli(["update", "execution-cluster-label", "-p", "project1", "-d", "development", "example.training_workflow", "--attrFile", fixture("workflow-ecl.yaml")]);
      expect(workflow.stdout).toBe("Updated execution-cluster-label of project project1, domain development, workflow example.training_workflow: project1\n");
      const contradiction = await cli(["update", "execution-cluster-label", "-p", "team1", "--attrFile", fixture("ecl.yaml")]);
      expect(contradiction.code).toBe(2);

      expect((await cli(["update", "execution-cluster-label", "--attrFile", fixture("ecl-production.yaml")])).code).toBe(0);
      expect(tableRows((await cli(["get", "execution-cluster-label"])).stdout)).toEqual([
        { PROJECT: "project1", DOMAIN: "development", WORKFLOW: "-", "LAUNCH PLAN": "-", VALUE: "label1" },
        { PROJECT: "project1", DOMAIN: "development", WORKFLOW: "example.training_workflow", "LAUNCH PLAN": "-", VALUE: "project1" },
        { PROJECT: "team1", DOMAIN: "production", WORKFLOW: "-", "LAUNCH PLAN": "-", VALUE: "label2" },
      ]);
      const scoped = await cli(["get", "execution-cluster-label", "-p", "project1", "-d", "development", "other.workflow", "-o", "json"]);
      expect(JSON.parse(scoped.stdout)).toEqual({ effectiveValue: "label1", effectiveScope: "EXECUTION_CLUSTER_LABEL_SCOPE_PROJECT_DOMAIN" });

      // Where team1's production executions now run (the seed's `pyflyte run --project team1 --domain production`).
      const selected = await cli(["select-cluster", "-p", "team1", "-d", "production", "training_workflow", "--execution-id", "run-1", "-o", "json"]);
      expect(JSON.parse(selected.stdout)).toMatchObject({ cluster: "dataplane_2", label: "label2", pool: "default" });
      expect(tableRows((await cli(["select-cluster", "-p", "project1", "-d", "development", "example.training_workflow", "--execution-id", "run-2"])).stdout)[0]).toMatchObject({
        LABEL: "project1",
        REASON: "workflow label project1",
        "EXECUTION ID": "run-2",
      });

      expect(await cli(["update", "default-label", "label1"])).toMatchObject({ code: 0, stdout: "default label set to label1\n" });
      expect(parseYaml((await cli(["get", "default-label", "-o", "yaml"])).stdout)).toEqual({ label: "label1" });
      expect((await cli(["update", "default-label", ""])).stdout).toBe("default label cleared\n");

      expect((await cli(["delete", "execution-cluster-label", "-p", "team1", "-d", "production"])).code).toBe(3);
      expect((await cli(["delete", "execution-cluster-label", "--attrFile", fixture("ecl-production.yaml"), "--yes"])).code).toBe(0);
      expect(await cli(["get", "execution-cluster-label", "-p", "team1"])).toMatchObject({ code: 0, stdout: "", stderr: "No execution cluster labels.\n" });

      // A label still assigned somewhere stays, with the server's reason.
      expect((await cli(["update", "label", "project1", "--cluster", "dataplane_1=0.25", "--cluster", "dataplane_2=0.75"])).code).toBe(0);
      expect(JSON.parse((await cli(["get", "label", "project1", "-o", "json"])).stdout).clusters).toEqual([
        { cluster: "dataplane_1", weight: 0.25 },
        { cluster: "dataplane_2", weight: 0.75 },
      ]);
      const assigned = await cli(["delete", "label", "project1", "--yes"]);
      expect(assigned.code).toBe(1);
      expect(assigned.stderr).toMatch(/^Error: FAILED_PRECONDITION: /);

      expect((await cli(["update", "project", "project1", "--description", "renamed"])).code).toBe(0);
      expect(await cli(["archive", "project", "team1"])).toMatchObject({ code: 0, stdout: 'project "team1" archived: no longer synced or routable\n' });
      expect(tableRows((await cli(["get", "project"])).stdout)).toEqual([
        { ID: "project1", NAME: "Project One", STATE: "ACTIVE", DESCRIPTION: "renamed" },
        { ID: "team1", NAME: "team1", STATE: "ARCHIVED", DESCRIPTION: "team one" },
      ]);
      expect(JSON.parse((await cli(["activate", "project", "team1", "-o", "json"])).stdout).state).toBe("PROJECT_STATE_ACTIVE");
    },
    WALK_THROUGH_MS,
  );

  it(
    "queues from the queue manifest and flags; cluster drain, activate and disable",
    async () => {
      // The clusters of the import above, or register them here when this test runs alone.
      if ((await cli(["get", "cluster", "dataplane_1"])).code !== 0) {
        expect((await cli(["import", "flyteadmin", fixture("values-override.yaml"), ...ENDPOINTS, "--yes"])).code).toBe(0);
      }
      expect(await cli(["create", "queue", "--file", fixture("queue.yaml")])).toMatchObject({ code: 0, stdout: 'queue "all-dataplanes" created\n' });
      expect((await cli(["update", "queue", "all-dataplanes", "--clusters", "dataplane_1"])).code).toBe(0);
      expect(tableRows((await cli(["get", "queue", "--pool", "default"])).stdout)).toEqual([
        { NAME: "all-dataplanes", POOL: "default", CLUSTERS: "dataplane_1", STATE: "ACTIVE", IMPLICIT: "no" },
        { NAME: "dataplane_1", POOL: "default", CLUSTERS: "dataplane_1", STATE: "ACTIVE", IMPLICIT: "yes" },
        { NAME: "dataplane_2", POOL: "default", CLUSTERS: "dataplane_2", STATE: "ACTIVE", IMPLICIT: "yes" },
      ]);
      expect((await cli(["delete", "queue", "all-dataplanes", "--yes"])).stderr).toMatch(/FAILED_PRECONDITION/);
      expect((await cli(["drain", "queue", "all-dataplanes"])).stdout).toBe('queue "all-dataplanes" drained\n');
      expect((await cli(["activate", "queue", "all-dataplanes"])).stdout).toBe('queue "all-dataplanes" activated\n');
      expect((await cli(["drain", "queue", "all-dataplanes"])).code).toBe(0);
      expect(await cli(["delete", "queue", "all-dataplanes", "--yes"])).toMatchObject({ code: 0, stdout: 'queue "all-dataplanes" deleted\n' });

      expect((await cli(["drain", "cluster", "dataplane_2"])).code).toBe(0);
      expect(tableRows((await cli(["get", "cluster", "--state", "drained"])).stdout).map((row) => row.NAME)).toEqual(["dataplane_2"]);
      expect((await cli(["activate", "cluster", "dataplane_2"])).code).toBe(0);
      expect((await cli(["update", "cluster", "dataplane_2", "--enabled", "false"])).code).toBe(0);
      expect(tableRows((await cli(["get", "cluster", "dataplane_2"])).stdout)[0]).toMatchObject({ ENABLED: "false", STATE: "ACTIVE", SYNC: "DISABLED" });
    },
    WALK_THROUGH_MS,
  );
});
