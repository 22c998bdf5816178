import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Browser } from "playwright-core";
import { ClusterService, SyncHealth } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { DEFAULT_SYNC_SETTINGS } from "../../src/sync/sync-settings.js";
import { seedProdPool } from "../support/fixtures.js";
import { StandInApiServer } from "../support/kube/stand-in-apiserver.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";
import { ARTIFACTS, axe, chromiumAvailable, launch, openTab, screenshot, seriousOf, VIEWPORTS } from "./console/harness.js";

/** Generous: a busy machine is slow, never wrong. */
const PATIENCE = 30_000;

describe.skipIf(!chromiumAvailable)("the web console with the sync loop on: health from real conditions", () => {
  let server: TestServer;
  let healthy: StandInApiServer;
  let broken: StandInApiServer;
  let browser: Browser;

  beforeAll(async () => {
    [healthy, broken] = await Promise.all([StandInApiServer.start(), StandInApiServer.start()]);
    // dataplane_2's API server expects another token: its passes fail with 401.
    await broken.setFault({ kind: "wrong-token" });
    server = await startTestServer({
      sync: { ...DEFAULT_SYNC_SETTINGS, intervalMs: 3_600_000, fullResyncIntervalMs: 3_600_000, requestTimeoutMs: 400, initialBackoffMs: 50, maxBackoffMs: 200, credentialDirectories: [tmpdir()] },
    });
    const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
    const clusters = createClient(ClusterService, transport);
    await createClient(ClusterPoolService, transport).createClusterPool({ clusterPool: seedProdPool({ name: "prod" }) });
    await createClient(ProjectService, transport).createProject({ project: { id: "flytesnacks" } });
    for (const [name, api, pool] of [["dataplane_1", healthy, "prod"], ["dataplane_2", broken, "prod"]] as const) {
      const credentials = api.writeCredentials(mkdtempSync(join(tmpdir(), `creds-${name}-`)));
      await clusters.createCluster({
        cluster: { name, pool, endpoint: api.url, auth: { method: { case: "bearerTokenFile", value: { tokenPath: credentials.tokenPath, caCertPath: credentials.caCertPath } } } },
      });
    }
    await createClient(ExecutionClusterLabelService, transport).createClusterLabel({ label: { name: "gpu", clusters: [{ cluster: "dataplane_1", weight: 0.7 }, { cluster: "dataplane_2", weight: 0.3 }] } });
    await createClient(ExecutionClusterLabelService, transport).setDefaultClusterLabel({ label: "gpu" });
    await clusters.createCluster({ cluster: { name: "edge_1", pool: "default" } });
    const health = async (name: string) => (await clusters.getCluster({ name })).cluster?.syncStatus?.health;
    await waitFor("dataplane_1 synced", async () => (await health("dataplane_1")) === SyncHealth.HEALTHY, PATIENCE);
    await waitFor("dataplane_2 refused", async () => (await health("dataplane_2")) === SyncHealth.FAILING, PATIENCE);
    browser = await launch();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await Promise.all([healthy?.stop(), broken?.stop()]);
  });

  it("shows a synced cluster as healthy (provisioned 3/3) and a refused one as unauthorized, with the condition's sentence", async () => {
    const tab = await openTab(browser, `${server.url}/`);
    try {
      await tab.page.waitForSelector('[data-feed="live"]', { timeout: 20_000 });
      const row = (name: string) => tab.page.locator(`tr[data-cluster="${name}"]`);
      await row("dataplane_1").locator('[data-health="ok"]').waitFor({ timeout: PATIENCE });
      expect(await row("dataplane_1").textContent()).toContain("3/3");
      await row("dataplane_2").locator('[data-health="bad"]').waitFor({ timeout: PATIENCE });
      expect(await row("dataplane_2").textContent()).toMatch(/Unauthorized|Sync failing/);
      expect((await row("dataplane_2").locator(".reason").textContent())?.length).toBeGreaterThan(10);
      await tab.page.waitForTimeout(300);
      for (const [viewportName, viewport] of Object.entries(VIEWPORTS)) {
        await tab.page.setViewportSize(viewport);
        await tab.page.evaluate(() => (window.location.hash = "#/"));
        await screenshot(tab.page, `synced-overview-${viewportName}`);
        await tab.page.evaluate(() => (window.location.hash = "#/cluster/dataplane_2"));
        await tab.page.getByRole("heading", { name: "Conditions" }).waitFor();
        await screenshot(tab.page, `synced-cluster-${viewportName}`);
        expect(seriousOf(await axe(tab.page))).toEqual([]);
      }
      // The API server takes the token again: the next pass (backoff, not the interval) says so, live.
      await tab.page.setViewportSize(VIEWPORTS.desktop);
      await broken.clearFault();
      await tab.page.locator('h1 [data-health="ok"]').waitFor({ timeout: PATIENCE });
      expect(await tab.page.getByTestId("condition-history").textContent()).toContain("Authorized False → True");
      expect(await tab.page.getByTestId("pass-history").textContent()).toContain("healthy");
      await screenshot(tab.page, "synced-cluster-recovered-desktop");
      const conditions = await tab.page.locator("table").first().textContent();
      expect(conditions).toContain("Reachable");
      expect(conditions).toContain("Authorized");
      expect(tab.problems).toEqual([]);
      if (process.env.UPDATE_CONSOLE_SCREENSHOTS) {
        mkdirSync("docs/console", { recursive: true });
        for (const name of ["synced-overview-desktop", "synced-overview-narrow", "synced-cluster-desktop"]) copyFileSync(join(ARTIFACTS, `${name}.png`), join("docs/console", `${name}.png`));
      }
    } finally {
      await tab.close();
    }
  }, 120_000);
});
