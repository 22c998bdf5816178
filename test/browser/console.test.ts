import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Browser } from "playwright-core";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { WatchRequestSchema, type WatchRequest } from "../../gen/clusterplane/v1/watch_pb.js";
import { bearer, newToken, writeTokensFile } from "../support/auth.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { axe, chromiumAvailable, launch, openTab, screenshot, seriousOf, signIn, VIEWPORTS } from "./console/harness.js";

const SIMULATED = 10_000;

describe.skipIf(!chromiumAvailable)("the web console in Chromium, against a real server with an admin and a viewer", () => {
  const admin = newToken("admin", "ops");
  const viewer = newToken("viewer", "auditor");
  let server: TestServer;
  let browser: Browser;
  const clientsOf = (token: string) => {
    const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(token)] });
    return {
      clusters: createClient(ClusterService, transport),
      pools: createClient(ClusterPoolService, transport),
      labels: createClient(ExecutionClusterLabelService, transport),
      projects: createClient(ProjectService, transport),
    };
  };

  beforeAll(async () => {
    const tokens = join(mkdtempSync(join(tmpdir(), "console-tokens-")), "tokens");
    writeTokensFile(tokens, [admin, viewer]);
    server = await startTestServer({ auth: { tokensFile: tokens } });
    const api = clientsOf(admin.token);
    await api.pools.createClusterPool({ clusterPool: seedProdPool({ name: "prod" }) });
    await api.clusters.createCluster({ cluster: seedCluster("dataplane_1", "prod") });
    await api.clusters.createCluster({ cluster: seedCluster("dataplane_2", "prod") });
    await api.clusters.createCluster({ cluster: seedCluster("dataplane_3") });
    // Pull mode: no endpoint, no auth; its agent would join with the token this returns.
    await api.clusters.createCluster({ cluster: { name: "edge_1", pool: "default" } });
    await api.labels.createClusterLabel({ label: { name: "gpu", clusters: [{ cluster: "dataplane_1", weight: 0.75 }, { cluster: "dataplane_2", weight: 0.25 }] } });
    await api.labels.createClusterLabel({ label: { name: "general", clusters: [{ cluster: "dataplane_3", weight: 1 }] } });
    await api.labels.setDefaultClusterLabel({ label: "general" });
    await api.projects.createProject({ project: { id: "flytesnacks", name: "Flyte snacks" } });
    await api.projects.createProject({ project: { id: "team1", name: "Team 1" } });
    await api.labels.updateExecutionClusterLabel({ executionClusterLabel: { project: "flytesnacks", domain: "production", value: "gpu" } });
    browser = await launch();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("serves index.html (no-cache) and hashed assets (immutable) with a strict CSP; unknown assets are 404", async () => {
    const index = await fetch(`${server.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const csp = index.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(index.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await index.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const script = /src="(assets\/[A-Za-z0-9_-]+\.js)"/.exec(html)?.[1];
    const style = /href="(assets\/[A-Za-z0-9_-]+\.css)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    const js = await fetch(`${server.url}/${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(js.headers.get("x-content-type-options")).toBe("nosniff");
    const css = await fetch(`${server.url}/${style}`);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    expect((await fetch(`${server.url}/assets/NOTHERE1.js`)).status).toBe(404);
    expect((await fetch(`${server.url}/assets/../../package.json`)).status).toBe(404);
    expect((await fetch(`${server.url}/`, { method: "POST" })).status).toBe(405);
    // Everything else still reaches the API.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("accepts API calls from its own origin and still refuses a foreign one", async () => {
    const call = (origin: string | undefined) =>
      fetch(`${server.url}/clusterplane.v1.ClusterPoolService/ListClusterPools`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${viewer.token}`, ...(origin ? { Origin: origin } : {}) },
        body: "{}",
      });
    const own = new URL(server.url);
    expect((await call(server.url)).status).toBe(200);
    expect((await call(`http://localhost:${own.port}`)).status).toBe(403); // Host is 127.0.0.1: another origin
    expect((await call(`https://${own.host}`)).status).toBe(403); // another scheme
    expect((await call(`http://${own.hostname}:${Number(own.port) + 1}`)).status).toBe(403); // another port
    expect((await call("http://evil.example")).status).toBe(403);
    expect((await call("null")).status).toBe(403);
    expect((await call(`${server.url}/path`)).status).toBe(403);
  });

  it("signs in with a pasted token (a wrong one is refused), keeps it for the tab only, and shows who is signed in", async () => {
    const tab = await openTab(browser, server.url);
    try {
      await tab.page.getByLabel("Access token").fill("not-a-valid-token-000000");
      await tab.page.getByRole("button", { name: "Sign in" }).click();
      await tab.page.getByText("unknown bearer token").waitFor();
      await signIn(tab.page, admin.token);
      expect(await tab.page.textContent('[data-testid="identity"]')).toBe("ops (admin)");
      expect(await tab.page.evaluate(() => [sessionStorage.getItem("clusterplane.token"), localStorage.length])).toEqual([admin.token, 0]);
      // A reload keeps the tab signed in.
      await tab.page.reload();
      await tab.page.waitForSelector('[data-feed="live"]');
      // A new tab (another session) must sign in again.
      const other = await openTab(browser, server.url);
      await other.page.getByLabel("Access token").waitFor();
      await other.close();
      expect(tab.problems).toEqual([]);
    } finally {
      await tab.close();
    }
  });

  it("shows a cluster created through the API within a second, from the Watch stream, without polling", async () => {
    const tab = await openTab(browser, server.url);
    try {
      await signIn(tab.page, admin.token);
      await tab.page.waitForSelector('tr[data-cluster="dataplane_1"]');
      const calls: string[] = [];
      tab.page.on("request", (request) => calls.push(new URL(request.url()).pathname));
      const started = Date.now();
      await clientsOf(admin.token).clusters.createCluster({ cluster: seedCluster("live_1", "prod") });
      await tab.page.waitForSelector('tr[data-cluster="live_1"]', { timeout: 5_000 });
      const elapsed = Date.now() - started;
      expect(elapsed).toBeLessThan(2_000); // a second is the aim; this leaves room for a busy machine
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      // Nothing was listed again: the change came on the open stream.
      expect(calls.filter((path) => /\/List/.test(path))).toEqual([]);
      expect(await tab.page.textContent('tr[data-cluster="edge_1"]')).toContain("pull");
      expect(await tab.page.textContent('tr[data-cluster="edge_1"]')).toContain("Agent not joined");
      expect(tab.problems).toEqual([]);
    } finally {
      await tab.close();
    }
  });

  it("resumes after the stream drops (the server restarts), with since_revision: a change made meanwhile arrives", async () => {
    const tokens = join(mkdtempSync(join(tmpdir(), "console-tokens-")), "tokens");
    writeTokensFile(tokens, [admin]);
    const first = await startTestServer({ auth: { tokensFile: tokens } });
    const databasePath = join(first.dir, "clusterplane.db");
    let second: TestServer | undefined;
    const tab = await openTab(browser, first.url);
    try {
      await signIn(tab.page, admin.token);
      const watches: WatchRequest[] = [];
      tab.page.on("request", (request) => {
        if (!request.url().endsWith("/clusterplane.v1.WatchService/Watch")) return;
        // A Connect streaming request body: one enveloped message (flags, length, bytes).
        const body = request.postDataBuffer();
        if (body) watches.push(fromBinary(WatchRequestSchema, body.subarray(5)));
      });
      // The server goes away: its streams end, and the console says it is reconnecting.
      await first.close();
      await tab.page.waitForSelector('[data-feed="reconnecting"]', { timeout: 10_000 });
      second = await startTestServer({ auth: { tokensFile: tokens }, port: first.port, databasePath });
      const { cluster } = await createClient(ClusterService, createConnectTransport({ baseUrl: second.url, httpVersion: "1.1", interceptors: [bearer(admin.token)] })).createCluster({
        cluster: seedCluster("resume_1"),
      });
      await tab.page.waitForSelector('tr[data-cluster="resume_1"]', { timeout: 15_000 });
      await tab.page.waitForSelector('[data-feed="live"]');
      // Resumed from the revision it had, not listed again.
      expect(watches.length).toBeGreaterThan(0);
      for (const watch of watches) {
        expect(watch.sinceRevision).toBeDefined();
        expect(watch.sinceRevision!).toBeLessThan(cluster!.revision);
      }
    } finally {
      await tab.close();
      await second?.close();
      await first.stop();
    }
  });

  it("lists again when its revision is out of range (OUT_OF_RANGE: the database behind the port was replaced)", async () => {
    const tokens = join(mkdtempSync(join(tmpdir(), "console-tokens-")), "tokens");
    writeTokensFile(tokens, [admin]);
    const clusterClient = (url: string) => createClient(ClusterService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [bearer(admin.token)] }));
    const first = await startTestServer({ auth: { tokensFile: tokens } });
    for (const name of ["old_1", "old_2", "old_3", "old_4"]) await clusterClient(first.url).createCluster({ cluster: seedCluster(name) });
    let second: TestServer | undefined;
    const tab = await openTab(browser, first.url);
    try {
      await signIn(tab.page, admin.token);
      await tab.page.waitForSelector('tr[data-cluster="old_4"]');
      const watches: WatchRequest[] = [];
      tab.page.on("request", (request) => {
        const body = request.url().endsWith("/clusterplane.v1.WatchService/Watch") ? request.postDataBuffer() : null;
        if (body) watches.push(fromBinary(WatchRequestSchema, body.subarray(5)));
      });
      await first.stop();
      await tab.page.waitForSelector('[data-feed="reconnecting"]', { timeout: 10_000 });
      // A fresh database on the same port: its newest revision is behind the one the console holds.
      second = await startTestServer({ auth: { tokensFile: tokens }, port: first.port });
      await clusterClient(second.url).createCluster({ cluster: seedCluster("fresh_1") });
      await tab.page.waitForSelector('tr[data-cluster="fresh_1"]', { timeout: 15_000 });
      await tab.page.waitForSelector('tr[data-cluster="old_1"]', { state: "detached" });
      // First a resume (refused with OUT_OF_RANGE), then a new snapshot.
      expect(watches.some((w) => w.sinceRevision !== undefined)).toBe(true);
      expect(watches.at(-1)?.sinceRevision).toBeUndefined();
      expect(tab.problems).toEqual([]);
    } finally {
      await tab.close();
      await second?.stop();
    }
  });

  it("drains a cluster from the UI after a confirmation naming the effect on routing; SelectCluster stops choosing it", async () => {
    const api = clientsOf(admin.token);
    const ids = Array.from({ length: 200 }, (_, i) => `drain-${i}`);
    const chosen = async () => new Set(await Promise.all(ids.map(async (executionId) => (await api.labels.selectCluster({ project: "flytesnacks", domain: "production", executionId })).cluster)));
    expect(await chosen()).toEqual(new Set(["dataplane_1", "dataplane_2"]));
    const tab = await openTab(browser, `${server.url}/#/cluster/dataplane_2`);
    try {
      await signIn(tab.page, admin.token);
      await tab.page.getByRole("button", { name: "Drain…" }).click();
      const dialog = tab.page.getByRole("dialog");
      await dialog.waitFor();
      const effect = await dialog.textContent();
      expect(effect).toContain("SelectCluster stops choosing dataplane_2");
      expect(effect).toContain("Label gpu: its executions go to dataplane_1 (weight 0.75)");
      await screenshot(tab.page, "cluster-drain-confirm-desktop");
      await dialog.getByRole("button", { name: "Drain dataplane_2" }).click();
      await tab.page.waitForSelector('[data-testid="cluster-state"]:text("drained")');
      expect(await chosen()).toEqual(new Set(["dataplane_1"]));
      // And back.
      await tab.page.getByRole("button", { name: "Activate…" }).click();
      await tab.page.getByRole("dialog").getByRole("button", { name: "Activate dataplane_2" }).click();
      await tab.page.waitForSelector('[data-testid="cluster-state"]:text("active")');
      expect(await chosen()).toEqual(new Set(["dataplane_1", "dataplane_2"]));
      expect(tab.problems).toEqual([]);
    } finally {
      await tab.close();
    }
  });

  it(`runs the routing simulator over ${SIMULATED} execution ids and gets exactly SelectCluster's answers`, async () => {
    const tab = await openTab(browser, `${server.url}/#/labels`);
    try {
      await signIn(tab.page, admin.token);
      await tab.page.getByLabel("Project", { exact: true }).selectOption("flytesnacks");
      await tab.page.getByLabel("Domain", { exact: true }).selectOption("production");
      await tab.page.getByLabel("Execution ids").selectOption(String(SIMULATED));
      await tab.page.getByRole("button", { name: "Simulate" }).click();
      await tab.page.waitForSelector('[data-testid="sim-result"]', { timeout: 120_000 });
      const fromUi: Record<string, number> = await tab.page.$$eval("[data-sim-cluster]", (rows) =>
        Object.fromEntries(rows.map((row) => [row.getAttribute("data-sim-cluster"), Number(row.getAttribute("data-count"))])),
      );
      expect(await tab.page.getAttribute('[data-testid="sim-result"]', "data-failed")).toBe("0");
      expect(await tab.page.textContent('[data-testid="sim-resolution"]')).toContain("label gpu");
      await screenshot(tab.page, "labels-simulator-desktop");

      const api = clientsOf(admin.token);
      const expected: Record<string, number> = {};
      for (let start = 0; start < SIMULATED; start += 500) {
        const answers = await Promise.all(
          Array.from({ length: Math.min(500, SIMULATED - start) }, (_, i) =>
            api.labels.selectCluster({ project: "flytesnacks", domain: "production", executionId: `sim-${start + i}` }),
          ),
        );
        for (const answer of answers) expected[answer.cluster] = (expected[answer.cluster] ?? 0) + 1;
      }
      expect(fromUi).toEqual(expected);
      expect(Object.values(fromUi).reduce((a, b) => a + b, 0)).toBe(SIMULATED);
      // Weights 0.75 and 0.25 — about three quarters on dataplane_1.
      expect(fromUi.dataplane_1! / SIMULATED).toBeGreaterThan(0.7);
      expect(fromUi.dataplane_1! / SIMULATED).toBeLessThan(0.8);
      expect(tab.problems).toEqual([]);
    } finally {
      await tab.close();
    }
  }, 180_000);

  it("shows the server's field violations at the line of the pool manifest", async () => {
    const tab = await openTab(browser, `${server.url}/#/pools`);
    try {
      await signIn(tab.page, admin.token);
      await tab.page.getByRole("button", { name: "New pool…" }).click();
      const editor = tab.page.getByLabel(/Pool manifest/);
      const text = (await editor.inputValue()).replace("name: prod", "name: staging").replace("uri: s3://my-prod-bucket/prefix", "uri: not-a-uri");
      await editor.fill(text);
      await tab.page.getByRole("button", { name: "Create pool" }).click();
      const problems = tab.page.getByTestId("pool-problems");
      await problems.waitFor();
      const uriLine = text.split("\n").findIndex((line) => line.includes("uri: not-a-uri")) + 1;
      expect(await problems.textContent()).toContain(`line ${uriLine}`);
      expect(await problems.textContent()).toContain("config.object_store_ref.uri");
      await screenshot(tab.page, "pools-violation-desktop");
      await editor.fill(text.replace("uri: not-a-uri", "uri: s3://staging-bucket"));
      await tab.page.getByRole("button", { name: "Create pool" }).click();
      await tab.page.waitForSelector('tr[data-pool="staging"]');
    } finally {
      await tab.close();
    }
  });

  it("creates and archives a project from the UI", async () => {
    const tab = await openTab(browser, `${server.url}/#/projects`);
    try {
      await signIn(tab.page, admin.token);
      await tab.page.getByLabel("Id", { exact: true }).fill("made-in-ui");
      await tab.page.getByRole("button", { name: "Create project" }).click();
      await tab.page.waitForSelector('tr[data-project="made-in-ui"]');
      await tab.page.getByRole("button", { name: "Archive project made-in-ui" }).click();
      await tab.page.getByRole("dialog").getByRole("button", { name: "Archive" }).click();
      await tab.page.waitForSelector('tr[data-project="made-in-ui"] td:text("archived")');
    } finally {
      await tab.close();
    }
  });

  it("a viewer sees the console read-only, and the server refuses its drain even when the UI is bypassed", async () => {
    const tab = await openTab(browser, `${server.url}/#/cluster/dataplane_1`);
    try {
      await signIn(tab.page, viewer.token);
      expect(await tab.page.textContent('[data-testid="identity"]')).toBe("auditor (viewer)");
      expect(await tab.page.getByRole("button", { name: "Drain…" }).isDisabled()).toBe(true);
      await tab.page.getByText("Read-only: auditor has role viewer").waitFor();
      // Bypassing the UI: the page's own origin, the viewer's token, a hand-made Connect call.
      const answer = await tab.page.evaluate(async (token) => {
        const response = await fetch("/clusterplane.v1.ClusterService/DrainCluster", {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
          body: JSON.stringify({ name: "dataplane_1" }),
        });
        return { status: response.status, body: (await response.json()) as { code: string } };
      }, viewer.token);
      expect(answer.status).toBe(403);
      expect(answer.body.code).toBe("permission_denied");
      await expect(clientsOf(viewer.token).clusters.drainCluster({ name: "dataplane_1" })).rejects.toSatisfy(
        (error) => ConnectError.from(error).code === Code.PermissionDenied,
      );
      // The simulator needs a routing role: the refusal is shown in words.
      await tab.page.goto(`${server.url}/#/labels`);
      await tab.page.getByLabel("Execution ids").selectOption("1000");
      await tab.page.getByRole("button", { name: "Simulate" }).click();
      await tab.page.getByText("Refused by the server (permission denied)").first().waitFor({ timeout: 60_000 });
      expect((await clientsOf(admin.token).clusters.getCluster({ name: "dataplane_1" })).cluster?.state).toBe(1);
    } finally {
      await tab.close();
    }
  }, 90_000);

  it("every page at desktop and narrow widths: screenshots, and no serious or critical axe-core violation", async () => {
    const pages = { overview: "#/", cluster: "#/cluster/dataplane_1", labels: "#/labels", pools: "#/pools", projects: "#/projects" };
    const found: Record<string, unknown> = {};
    for (const [viewportName, viewport] of Object.entries(VIEWPORTS)) {
      const tab = await openTab(browser, server.url, viewport);
      try {
        await signIn(tab.page, admin.token);
        for (const [name, hash] of Object.entries(pages)) {
          await tab.page.evaluate((h) => (window.location.hash = h), hash);
          await tab.page.waitForSelector("main h1");
          await screenshot(tab.page, `${name}-${viewportName}`);
          const serious = seriousOf(await axe(tab.page));
          if (serious.length) found[`${name}-${viewportName}`] = serious;
        }
        // The sign-in page too.
        await tab.page.getByRole("button", { name: "Sign out" }).click();
        await tab.page.getByLabel("Access token").waitFor();
        await screenshot(tab.page, `sign-in-${viewportName}`);
        const serious = seriousOf(await axe(tab.page));
        if (serious.length) found[`sign-in-${viewportName}`] = serious;
        // Narrow: nothing wider than the window.
        if (viewportName === "narrow") {
          await signIn(tab.page, admin.token);
          const overflow = await tab.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          expect(overflow).toBeLessThanOrEqual(0);
        }
        expect(tab.problems).toEqual([]);
      } finally {
        await tab.close();
      }
    }
    expect(found).toEqual({});
    expect(readFileSync("test-artifacts/console/overview-desktop.png").length).toBeGreaterThan(1000);
  }, 120_000);

  it("a keyboard user reaches the pages and the drain button with Tab, and Escape cancels the confirmation", async () => {
    const tab = await openTab(browser, `${server.url}/#/cluster/dataplane_1`);
    try {
      await signIn(tab.page, admin.token);
      const focusedText = () => tab.page.evaluate(() => document.activeElement?.textContent?.trim() ?? "");
      const seen: string[] = [];
      for (let i = 0; i < 15 && !seen.includes("Drain…"); i++) {
        await tab.page.keyboard.press("Tab");
        seen.push(await focusedText());
      }
      expect(seen).toContain("Overview");
      expect(seen).toContain("Labels and routing");
      expect(seen).toContain("Drain…");
      await tab.page.keyboard.press("Enter");
      await tab.page.getByRole("dialog").waitFor();
      await tab.page.keyboard.press("Escape");
      await tab.page.getByRole("dialog").waitFor({ state: "detached" });
      expect((await clientsOf(admin.token).clusters.getCluster({ name: "dataplane_1" })).cluster?.state).toBe(1);
    } finally {
      await tab.close();
    }
  });
});
