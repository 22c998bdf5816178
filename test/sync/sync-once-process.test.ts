import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { DEFAULT_SYNC_SETTINGS } from "../../src/sync/sync-settings.js";
import { StandInApiServer } from "../support/kube/stand-in-apiserver.js";
import { startTestServer, type TestServer } from "../support/server.js";

const run = promisify(execFile);

/** Runs the CLI as its own process (asynchronously: the server it shares the database with runs here). */
async function clusterplane(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["bin/clusterplane.mjs", ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

let server: TestServer;
let api: StandInApiServer;
let syncConfig: string;

beforeAll(async () => {
  api = await StandInApiServer.start();
  // The server only registers the cluster here; its credential files live in the temporary directory.
  server = await startTestServer({ sync: { ...DEFAULT_SYNC_SETTINGS, enabled: false, credentialDirectories: [tmpdir()] } });
  const dir = mkdtempSync(join(tmpdir(), "sync-once-"));
  const credentials = api.writeCredentials(dir);
  syncConfig = join(dir, "sync.yaml");
  writeFileSync(syncConfig, `requestTimeout: 500ms\ncredentialDirectories: [${tmpdir()}]\nserviceAccount:\n  annotations:\n    owner: '{{ project }}'\n`);
  const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
  await createClient(ProjectService, transport).createProject({ project: { id: "project1" } });
  await createClient(ClusterService, transport).createCluster({
    cluster: {
      name: "dataplane_1",
      endpoint: api.url,
      auth: { method: { case: "bearerTokenFile", value: credentials } },
    },
  });
});

afterAll(async () => {
  await server?.stop();
  await api?.stop();
});

describe("clusterplane sync --once", () => {
  const db = () => join(server.dir, "clusterplane.db");

  it("applies everything once, then nothing, and says so per cluster", async () => {
    const first = await clusterplane("sync", "--once", "--db", db(), "--sync-config", syncConfig);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^dataplane_1\tapplied 6\tunchanged 0\tfailed 0\t\d+ ms\tok$/m);
    const account = api.getObject("serviceaccounts", "project1-staging", "default") as { metadata: { annotations: Record<string, string> } };
    expect(account.metadata.annotations.owner).toBe("project1");

    api.resetCounters();
    const second = await clusterplane("sync", "--once", "--db", db(), "--sync-config", syncConfig);
    expect(second.stdout).toMatch(/^dataplane_1\tapplied 0\tunchanged 6\tfailed 0/m);
    expect(api.writeCount).toBe(0);
  });

  it("exits 1 naming the failure when a cluster cannot be synced", async () => {
    await api.setFault({ kind: "down" });
    try {
      const result = await clusterplane("sync", "--once", "--full", "--db", db(), "--sync-config", syncConfig);
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/^dataplane_1\t.*FAILED\s+connection refused/m);
    } finally {
      await api.clearFault();
    }
  });

  it("refuses a sync config with a wrong key, naming it", async () => {
    const bad = join(mkdtempSync(join(tmpdir(), "bad-sync-")), "sync.yaml");
    writeFileSync(bad, "interval: sometimes\n");
    const result = await clusterplane("sync", "--once", "--db", db(), "--sync-config", bad);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${bad}.interval`);
  });

  it("refuses a database file that does not exist instead of creating an empty one (exit 2, says how to name the right one)", async () => {
    const typo = join(mkdtempSync(join(tmpdir(), "typo-db-")), "clusterplan.db");
    const result = await clusterplane("sync", "--once", "--db", typo, "--sync-config", syncConfig);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`no database at ${typo}`);
    expect(result.stderr).toContain("--db PATH");
    expect(result.stdout).toBe("");
    expect(existsSync(typo)).toBe(false);
  });

  it("names the environment variable a template value needs when it is not set", async () => {
    const variable = "CLUSTERPLANE_TEST_UNSET_ACCOUNT_ID";
    const needsEnv = join(mkdtempSync(join(tmpdir(), "env-sync-")), "sync.yaml");
    writeFileSync(needsEnv, `templateData:\n  accountId:\n    valueFrom:\n      env: ${variable}\n`);
    delete process.env[variable];
    const result = await clusterplane("sync", "--once", "--db", db(), "--sync-config", needsEnv);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${needsEnv}.templateData.accountId: environment variable ${variable} is not set`);
  });
});
