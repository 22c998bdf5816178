import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { parseSyncSettings } from "../../src/sync/sync-settings.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { cliAgainst, fixture, type Cli } from "./run-cli.js";

describe("clusterplane import flyteadmin: a ConfigMap with clusters, labels, default label and cluster_resources", () => {
  let server: TestServer;
  let cli: Cli;
  const scratch = mkdtempSync(join(tmpdir(), "clusterplane-cli-import-"));

  beforeAll(async () => {
    server = await startTestServer();
    cli = cliAgainst(server.url);
  });
  afterAll(async () => {
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it(
    "reads the YAML inside the ConfigMap's data, keeps enabled as flyteadmin reads it, sets the default label, and writes sync settings serve can read",
    async () => {
      const dryRun = await cli(["import", "flyteadmin", fixture("flyteadmin-configmap.yaml"), "--dry-run", "--sync-config-out", join(scratch, "unused.yaml")]);
      expect(dryRun.code).toBe(0);
      expect(dryRun.stdout).toContain("(data.clusters.yaml.clusters)");
      expect(dryRun.stdout).toMatch(/cluster +dataplane_4 +create +https:\/\/dataplane4\.example\.com:443, disabled/);
      expect(dryRun.stdout).toMatch(/default label +gpu +set +was none/);
      expect(dryRun.stdout).toContain("cluster_resources.standaloneDeployment has no clusterplane equivalent");
      // A dry run writes nothing; it prints the settings instead.
      const printed = dryRun.stdout.slice(dryRun.stdout.indexOf("# Sync settings"), dryRun.stdout.indexOf("Dry run:"));
      expect(parseYaml(printed)).toEqual({
        templatePath: "/etc/flyte/clusterresource/templates",
        interval: "90m",
        templateData: { defaultIamRole: { value: "arn:aws:iam::123456789012:role/flyte-dataplane" } },
        customData: { production: { projectQuotaCpu: { value: "5" }, projectQuotaMemory: { value: "4000Mi" } }, development: { projectQuotaCpu: { value: "2" } } },
        namespaceTemplate: "{{ project }}-{{ domain }}",
      });

      const syncConfig = join(scratch, "sync.yaml");
      const imported = await cli(["import", "flyteadmin", fixture("flyteadmin-configmap.yaml"), "--yes", "--sync-config-out", syncConfig]);
      expect(imported.code).toBe(0);
      expect(imported.stdout).toContain("cluster dataplane_3 created\ncluster dataplane_4 created\nlabel gpu created\ndefault label gpu set\n");
      expect(imported.stdout).toContain(`clusterplane serve --sync-config ${syncConfig}`);
      const settings = parseSyncSettings(parseYaml(readFileSync(syncConfig, "utf8")), syncConfig);
      expect(settings).toMatchObject({ intervalMs: 5_400_000, templatePath: "/etc/flyte/clusterresource/templates" });
      expect(settings.provisioning.domainData.production).toEqual({ projectQuotaCpu: "5", projectQuotaMemory: "4000Mi" });

      const clusters = JSON.parse((await cli(["get", "cluster", "-o", "json"])).stdout) as { name: string; enabled: boolean }[];
      expect(clusters.map(({ name, enabled }) => [name, enabled])).toEqual([["dataplane_3", true], ["dataplane_4", false]]);
      expect((await cli(["get", "default-label"])).stdout).toBe("gpu\n");

      // The file changed (as with helm upgrade): what differs is updated, the rest is left alone.
      const changed = join(scratch, "changed.yaml");
      writeFileSync(changed, readFileSync(fixture("flyteadmin-configmap.yaml"), "utf8").replace("weight: 0.75", "weight: 0.5"));
      const reimport = await cli(["import", "flyteadmin", changed, "--yes"]);
      expect(reimport.code).toBe(0);
      expect(reimport.stdout).toMatch(/label +gpu +update +dataplane_3=0\.5, dataplane_4=0\.25 \(was dataplane_3=0\.75, dataplane_4=0\.25\)/);
      expect(reimport.stdout).toContain("  unchanged: cluster dataplane_3, cluster dataplane_4, default label gpu\n");
      expect(reimport.stdout).not.toMatch(/cluster +dataplane_\d +(update|create)/);
      expect(reimport.stdout).toContain("label gpu updated\n");

      const notFlyteadmin = join(scratch, "other.yaml");
      writeFileSync(notFlyteadmin, "replicaCount: 2\n");
      expect(await cli(["import", "flyteadmin", notFlyteadmin])).toMatchObject({ code: 2, stderr: expect.stringContaining("no flyteadmin `clusters`") });
    },
    120_000,
  );
});
