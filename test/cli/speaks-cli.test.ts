import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestServer, type TestServer } from "../support/server.js";
import { cliAgainst, fixture, type Cli } from "./run-cli.js";

/**
 * Runs the bin with its stdout a pipe whose reader has already gone, as in `clusterplane … | head -1`
 * once head has exited.
 */
function withClosedStdout(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/clusterplane.mjs", ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

describe("the CLI speaks CLI: its flags, commands and manifest keys, not the API's", () => {
  let server: TestServer;
  let cli: Cli;
  const scratch = mkdtempSync(join(tmpdir(), "clusterplane-cli-speaks-"));
  const file = (name: string, text: string) => {
    const path = join(scratch, name);
    writeFileSync(path, text);
    return path;
  };

  beforeAll(async () => {
    server = await startTestServer();
    cli = cliAgainst(server.url);
  });
  afterAll(async () => {
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("names the flags that set the fields a rejection names, and the commands for the RPCs it names", async () => {
    const noAuth = await cli(["create", "cluster", "c1", "--endpoint", "https://10.0.0.1:443"]);
    expect(noAuth).toMatchObject({
      code: 1,
      stderr: "Error: INVALID_ARGUMENT: credentials are required: --token-path PATH and --ca-cert-path PATH (files mounted from a Secret), or --in-cluster; or leave out --endpoint too, to register a pull-mode cluster whose agent connects out\n",
    });

    const twoProblems = await cli(["create", "cluster", "c1", "--token-path", "/etc/passwd", "--ca-cert-path", "/var/run/credentials/ca"]);
    expect(twoProblems.code).toBe(1);
    expect(twoProblems.stderr).toMatch(/^Error: INVALID_ARGUMENT:\n {2}--token-path: .*outside the credential directories.*\n {2}--endpoint: is required to enable a cluster \(unless --in-cluster is given\)/);

    const weight = await cli(["create", "label", "l1", "--cluster", "c1=3"]);
    expect(weight).toMatchObject({ code: 1, stderr: expect.stringMatching(/^Error: INVALID_ARGUMENT: --cluster NAME=WEIGHT \(the WEIGHT\): 3 must be in \(0, 1\]/) });

    const pool = ["create", "cluster-pool", "prod", "--object-store-uri", "s3://b", "--secret-store-type", "vault"];
    expect((await cli(pool)).code).toBe(0);
    const again = await cli(pool);
    expect(again).toMatchObject({ code: 1, stderr: 'Error: ALREADY_EXISTS: cluster pool "prod" already exists; use clusterplane update cluster-pool to change its config\n' });

    const unregistered = await cli(["update", "execution-cluster-label", "-p", "nobody", "-d", "development", "--value", "l1"]);
    expect(unregistered.code).toBe(1);
    expect(unregistered.stderr).toContain("(clusterplane create project)");

    for (const result of [noAuth, twoProblems, weight, again, unregistered]) {
      expect(result.stderr).not.toMatch(/bearer_token_file|cluster\.auth|cluster\.endpoint|label\.clusters|UpdateClusterPool|CreateProject/);
    }
  });

  it("names manifest keys, in the manifest's own form, when the request came from --file", async () => {
    // Neither endpoint nor auth is a pull-mode cluster; an endpoint without auth is a mistake.
    const manifest = file("cluster.yaml", "name: c2\npool: default\nendpoint: https://10.0.0.2:443\n");
    const rejected = await cli(["create", "cluster", "--file", manifest]);
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toBe(
      "Error: INVALID_ARGUMENT: auth: is required: {type: file_path, tokenPath: PATH, certPath: PATH} or {type: in_cluster}; " +
        "or leave out both endpoint and auth to register a pull-mode cluster, whose agent connects out\n",
    );
    const outside = file("outside.yaml", "name: c2\nendpoint: https://10.0.0.2:443\nauth:\n  type: file_path\n  tokenPath: /etc/passwd\n  certPath: /var/run/credentials/ca\n");
    expect((await cli(["create", "cluster", "--file", outside])).stderr).toMatch(/^Error: INVALID_ARGUMENT: auth\.tokenPath: /);
  });

  it("answers an unknown manifest key with the key it is probably meant to be, at every depth, before anything is sent", async () => {
    const pool = file("pool.yaml", readFileSync(fixture("prod-pool.yaml"), "utf8").replace("secret_store:", "secret_stor:").replace("name: prod", "nme: prod"));
    expect(await cli(["create", "cluster-pool", "prod2", "--file", pool])).toMatchObject({
      code: 2,
      stderr: `Error: ${pool}:\n  nme: unknown key; did you mean name?\n  config.secret_stor: unknown key; did you mean secret_store?\n`,
    });
    // The protobuf JSON form (what -o yaml prints) gets suggestions in that form.
    const camel = file("camel.yaml", "name: prod3\nconfig:\n  objectStoreRef: {uri: s3://b}\n  secretStore: {type: VAULT}\n  imageRegistri: {locator: r}\n");
    expect(await cli(["create", "cluster-pool", "--file", camel])).toMatchObject({ code: 2, stderr: `Error: ${camel}: config.imageRegistri: unknown key; did you mean imageRegistry?\n` });
    const auth = file("auth.yaml", "name: c3\nendpoint: https://10.0.0.3:443\nauth:\n  type: file_path\n  tokenPth: /var/run/credentials/t\n  certPath: /var/run/credentials/ca\n");
    expect(await cli(["create", "cluster", "--file", auth])).toMatchObject({ code: 2, stderr: `Error: ${auth}: auth.tokenPth: unknown key; did you mean tokenPath?\n` });
    const label = file("label.yaml", "name: l2\nclusters:\n  - id: c1\n    wieght: 1\n");
    expect(await cli(["create", "label", "--file", label])).toMatchObject({ code: 2, stderr: `Error: ${label}: clusters[0].wieght: unknown key; did you mean weight?\n` });
    const nothingClose = file("far.yaml", "name: q1\nbucket: x\n");
    // Nothing close: the keys there are instead.
    expect((await cli(["create", "queue", "--file", nothingClose])).stderr).toMatch(new RegExp(`^Error: ${nothingClose}: bucket: unknown key; known: org, name, pool, clusters, .*etag`));
  });

  it("prints its version", async () => {
    const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    expect(await cli(["--version"])).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: "" });
    expect(await cli(["-v"])).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it("stops quietly when its reader goes away (EPIPE): no stack, exit 0, and the command still completes", async () => {
    expect(await withClosedStdout(["--help"])).toEqual({ code: 0, stderr: "" });
    expect(await withClosedStdout(["get", "cluster-pool"], { CLUSTERPLANE_ENDPOINT: server.url })).toEqual({ code: 0, stderr: "" });
    // A change whose progress nobody reads is still made.
    expect(await withClosedStdout(["create", "project", "piped"], { CLUSTERPLANE_ENDPOINT: server.url })).toEqual({ code: 0, stderr: "" });
    expect((await cli(["get", "project", "piped"])).code).toBe(0);
  });
});
