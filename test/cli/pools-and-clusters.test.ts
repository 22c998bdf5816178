import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type IncomingMessage } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { startTestServer, type TestServer } from "../support/server.js";
import { cliAgainst, fixture, tableRows, type Cli } from "./run-cli.js";

const WALK_THROUGH_MS = 120_000;

describe("clusterplane CLI: cluster pools and clusters (the cluster-pools seed)", () => {
  let server: TestServer;
  let cli: Cli;
  const scratch = mkdtempSync(join(tmpdir(), "clusterplane-cli-pools-"));

  beforeAll(async () => {
    server = await startTestServer();
    cli = cliAgainst(server.url);
  });
  afterAll(async () => {
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it(
    "create cluster-pool --file with the seed's manifest, get in all three formats, create cluster --pool, delete rules",
    async () => {
      const created = await cli(["create", "cluster-pool", "prod", "--file", fixture("prod-pool.yaml")]);
      expect(created).toMatchObject({ code: 0, stdout: 'cluster-pool "prod" created\n' });

      const cluster = await cli([
        "create", "cluster", "prod-us-east-1", "--pool", "prod", "--endpoint", "https://10.0.0.1:443",
        "--token-path", "/var/run/credentials/prod_us_east_1_token", "--ca-cert-path", "/var/run/credentials/prod_us_east_1_cacert",
      ]);
      expect(cluster).toMatchObject({ code: 0, stdout: 'cluster "prod-us-east-1" created\n' });

      // A table a person reads: aligned columns, the pool with its member clusters.
      const table = await cli(["get", "cluster-pool"]);
      expect(table.code).toBe(0);
      expect(table.stdout.split("\n")[0]).toMatch(/^NAME +OBJECT STORE +SECRET STORE +IMAGE REGISTRY +MEMBER CLUSTERS$/);
      expect(tableRows(table.stdout)).toEqual([
        { NAME: "default", "OBJECT STORE": "-", "SECRET STORE": "-", "IMAGE REGISTRY": "-", "MEMBER CLUSTERS": "-" },
        {
          NAME: "prod",
          "OBJECT STORE": "s3://my-prod-bucket/prefix",
          "SECRET STORE": "AWS_SECRETS_MANAGER us-east-1",
          "IMAGE REGISTRY": "123456789012.dkr.ecr.us-east-1.amazonaws.com/union",
          "MEMBER CLUSTERS": "prod-us-east-1",
        },
      ]);

      const json = await cli(["get", "cluster-pool", "prod", "-o", "json"]);
      expect(JSON.parse(json.stdout)).toMatchObject({
        name: "prod",
        config: {
          objectStoreRef: { uri: "s3://my-prod-bucket/prefix" },
          secretStore: { type: "SECRET_STORE_TYPE_AWS_SECRETS_MANAGER", locator: "us-east-1" },
          imageRegistry: { locator: "123456789012.dkr.ecr.us-east-1.amazonaws.com/union" },
        },
        memberClusters: ["prod-us-east-1"],
      });

      const yaml = await cli(["get", "cluster-pool", "-o", "yaml", "--limit", "5", "--page-size", "1"]);
      expect((parseYaml(yaml.stdout) as { name: string }[]).map((pool) => pool.name)).toEqual(["default", "prod"]);
      const limited = await cli(["get", "cluster-pool", "--limit", "1", "-o", "json"]);
      expect(JSON.parse(limited.stdout)).toHaveLength(1);
      expect(limited.stderr).toContain("more exist");

      const clusters = await cli(["get", "cluster"]);
      expect(tableRows(clusters.stdout)).toEqual([
        { NAME: "prod-us-east-1", POOL: "prod", MODE: "push", ENDPOINT: "https://10.0.0.1:443", ENABLED: "true", STATE: "ACTIVE", READY: "-", PROVISIONED: "-", SYNC: "PENDING", "LAST ERROR": "-" },
      ]);

      // No terminal and no --yes: refused, exit 3, nothing deleted.
      const refused = await cli(["delete", "cluster-pool", "prod"]);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toContain("--yes");
      expect((await cli(["get", "cluster-pool", "prod"])).code).toBe(0);

      // The server's rule, in its words: a pool with members stays.
      const referenced = await cli(["delete", "cluster-pool", "prod", "--yes"]);
      expect(referenced.code).toBe(1);
      expect(referenced.stderr).toMatch(/^Error: FAILED_PRECONDITION: .*prod-us-east-1/);

      expect((await cli(["delete", "cluster", "prod-us-east-1", "--yes"])).stderr).toMatch(/FAILED_PRECONDITION.*drain/i);
      expect(await cli(["drain", "cluster", "prod-us-east-1", "-o", "json"])).toMatchObject({ code: 0, stdout: expect.stringContaining('"CLUSTER_STATE_DRAINED"') });
      expect(await cli(["activate", "cluster", "prod-us-east-1"])).toMatchObject({ code: 0, stdout: 'cluster "prod-us-east-1" activated\n' });
      expect((await cli(["drain", "cluster", "prod-us-east-1"])).code).toBe(0);
      expect(await cli(["delete", "cluster", "prod-us-east-1", "--yes"])).toMatchObject({ code: 0, stdout: 'cluster "prod-us-east-1" deleted\n' });

      expect(await cli(["delete", "cluster-pool", "prod", "--yes"])).toMatchObject({ code: 0, stdout: 'cluster-pool "prod" deleted\n' });
      const gone = await cli(["get", "cluster-pool", "prod"]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/^Error: NOT_FOUND: /);
    },
    WALK_THROUGH_MS,
  );

  it(
    "create and update cluster from the cluster manifest, update with flags, round-trips -o yaml through update --file with its etag",
    async () => {
      expect((await cli(["create", "cluster-pool", "--file", fixture("prod-pool.yaml")])).code).toBe(0);
      expect(await cli(["create", "cluster", "--file", fixture("cluster.yaml")])).toMatchObject({ code: 0, stdout: 'cluster "prod-us-east-1" created\n' });

      const flags = await cli(["update", "cluster", "prod-us-east-1", "--enabled", "false", "--token-path", "/var/run/credentials/rotated", "-o", "yaml"]);
      expect(flags.code).toBe(0);
      expect(parseYaml(flags.stdout)).toMatchObject({
        enabled: false,
        endpoint: "https://prod-us-east-1.example.com:443",
        auth: { bearerTokenFile: { tokenPath: "/var/run/credentials/rotated", caCertPath: "/var/run/credentials/prod_us_east_1_cacert" } },
        syncStatus: { health: "SYNC_HEALTH_DISABLED" },
      });

      // What -o yaml prints is a manifest too; its etag makes a stale copy fail instead of overwriting.
      const current = await cli(["get", "cluster-pool", "prod", "-o", "yaml"]);
      const file = join(scratch, "prod.yaml");
      writeFileSync(file, current.stdout.replace("us-east-1", "eu-west-1"));
      expect(await cli(["update", "cluster-pool", "--file", file])).toMatchObject({ code: 0, stdout: 'cluster-pool "prod" updated\n' });
      const stale = await cli(["update", "cluster-pool", "prod", "--file", file]);
      expect(stale.code).toBe(1);
      expect(stale.stderr).toMatch(/^Error: ABORTED: /);
      expect(JSON.parse((await cli(["get", "cluster-pool", "prod", "-o", "json"])).stdout).config.secretStore.locator).toBe("eu-west-1");
    },
    WALK_THROUGH_MS,
  );

  it(
    "--edit: opens $EDITOR on the template, re-opens with the YAML error and then the server's error at the top, asks before applying",
    async () => {
      const editor = (steps: object[]) => {
        const dir = mkdtempSync(join(scratch, "editor-"));
        const env = { EDITOR: `node ${fixture("fake-editor.mjs")}`, FAKE_EDITOR_DIR: dir, FAKE_EDITOR_STEPS: JSON.stringify(steps) };
        return { env, seen: (round: number) => readFileSync(join(dir, `seen-${round}.yaml`), "utf8") };
      };

      const create = editor([
        { write: "name: [stage\n" },
        { write: "name: stage\nconfig:\n  object_store_ref: {uri: stage-bucket}\n  secret_store: {type: VAULT, locator: https://vault:8200}\n" },
        { replace: ["uri: stage-bucket", "uri: gs://stage-bucket"] },
      ]);
      const created = await cli(["create", "cluster-pool", "stage", "--edit", "--yes"], { env: create.env });
      expect(created).toMatchObject({ code: 0, stdout: 'cluster-pool "stage" created\n' });
      expect(create.seen(1)).toContain("name: stage");
      expect(create.seen(1)).toContain("# Required. Bucket URI with a scheme");
      expect(create.seen(2)).toMatch(/^# ERROR: the edited manifest: invalid YAML/);
      expect(create.seen(3)).toMatch(/^# ERROR: the server rejected it: INVALID_ARGUMENT: .*object_store_ref\.uri/);
      expect(create.seen(3)).toContain("uri: stage-bucket");

      // The change is shown; without a terminal it is applied only with --yes.
      const change = [{ replace: ["type: VAULT", "type: KUBERNETES"] }];
      const unconfirmed = await cli(["update", "cluster-pool", "stage", "--edit"], { env: editor(change).env });
      expect(unconfirmed.code).toBe(3);
      expect(unconfirmed.stderr).toContain("-     type: VAULT\n+     type: KUBERNETES\n");
      const confirmed = await cli(["update", "cluster-pool", "stage", "--edit", "--yes"], { env: editor(change).env });
      expect(confirmed).toMatchObject({ code: 0, stdout: 'cluster-pool "stage" updated\n' });
      expect(JSON.parse((await cli(["get", "cluster-pool", "stage", "-o", "json"])).stdout).config.secretStore.type).toBe("SECRET_STORE_TYPE_KUBERNETES");

      // Saving the file unchanged cancels.
      const unchanged = await cli(["update", "cluster-pool", "stage", "--edit", "--yes"], { env: editor([{}]).env });
      expect(unchanged.code).toBe(3);
      expect(unchanged.stderr).toContain("saved unchanged");
    },
    WALK_THROUGH_MS,
  );

  it("exit codes: 2 for usage and file problems, 1 with the server's field violations, 4 when the server cannot be reached", async () => {
    const [unknownOption, badFormat, missingFile, unknownKey, rejected, unreachable] = await Promise.all([
      cli(["get", "cluster", "--bogus"]),
      cli(["get", "cluster", "-o", "xml"]),
      cli(["create", "cluster-pool", "--file", join(scratch, "missing.yaml")]),
      cli(["create", "cluster-pool", "--file", "-"], { input: "name: typo\nconfig:\n  object_store: {uri: s3://b}\n" }),
      cli(["create", "cluster-pool", "bad", "--object-store-uri", "bucket-without-scheme", "--secret-store-type", "vault"]),
      cliAgainst("http://127.0.0.1:1")(["get", "cluster-pool"]),
    ]);
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("unknown option '--bogus'");
    expect(badFormat.code).toBe(2);
    expect(missingFile).toMatchObject({ code: 2, stderr: expect.stringContaining("cannot read") });
    expect(unknownKey).toMatchObject({ code: 2, stderr: "Error: stdin: config.object_store: unknown key; did you mean object_store_ref?\n" });
    expect(rejected.code).toBe(1);
    // The field is named by the flag that set it, not by the API's cluster_pool.config.object_store_ref.uri.
    expect(rejected.stderr).toMatch(/^Error: INVALID_ARGUMENT: --object-store-uri: /);
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toContain("cannot reach the clusterplane server at http://127.0.0.1:1");
    expect(unreachable.stderr).toContain("CLUSTERPLANE_ENDPOINT");
  });

  it("reads endpoint and token from the config file, sends the token as a bearer header, and --endpoint wins over the environment", async () => {
    const seen: IncomingMessage["headers"][] = [];
    // Answers every call with an empty message, in the encoding it was asked in.
    const recorder = createServer((request, response) => {
      seen.push(request.headers);
      request.resume();
      const type = request.headers["content-type"] ?? "application/proto";
      response.setHeader("Content-Type", type);
      response.end(type.includes("json") ? "{}" : "");
    });
    await new Promise<void>((resolve) => recorder.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(recorder.address() as { port: number }).port}`;
    try {
      const config = join(scratch, "cli.yaml");
      writeFileSync(config, `endpoint: ${url}\ntoken: s3cret\n`);
      const fromFile = await cliAgainst(undefined)(["get", "cluster-pool"], { env: { CLUSTERPLANE_CONFIG: config } });
      expect(fromFile).toMatchObject({ code: 0, stderr: "No cluster pools.\n" });
      const fromFlag = await cliAgainst("http://127.0.0.1:1")(["--endpoint", url, "--token", "t0ken", "get", "queue"]);
      expect(fromFlag.code).toBe(0);
      expect(seen.map((headers) => [headers.authorization, headers["connect-protocol-version"]])).toEqual([
        ["Bearer s3cret", "1"],
        ["Bearer t0ken", "1"],
      ]);
    } finally {
      recorder.close();
    }
  });
});
