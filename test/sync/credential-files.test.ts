import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterService, SyncHealth } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { CredentialFileError, MAX_CA_FILE_BYTES, MAX_TOKEN_FILE_BYTES, readConfinedFile } from "../../src/sync/credential-files.js";
import { readCredentials } from "../../src/sync/kube-connection.js";
import { DEFAULT_SYNC_SETTINGS } from "../../src/sync/sync-settings.js";
import { StandInApiServer } from "../support/kube/stand-in-apiserver.js";
import { testPki } from "../support/kube/test-ca.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);
const CA = testPki("credential-files").caCertPem;
const TOKEN = "outside-secret-" + "k".repeat(40);

/** A fresh credential directory and, beside it (not inside), a directory of files that must never be sent. */
function directories(): { allowed: string; outside: string } {
  const allowed = mkdtempSync(join(tmpdir(), "creds-"));
  const outside = mkdtempSync(join(tmpdir(), "outside-"));
  writeFileSync(join(outside, "token"), `${TOKEN}\n`);
  writeFileSync(join(outside, "ca.crt"), CA);
  return { allowed, outside };
}

function read(allowed: string, tokenPath: string, caCertPath: string, dirs: readonly string[] = [allowed]) {
  return readCredentials("https://127.0.0.1:1", { kind: "bearer_token_file", tokenPath, caCertPath }, dirs);
}

/** The CredentialFileError `run` throws, checked never to quote the secret. */
function refusal(run: () => unknown): CredentialFileError {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(CredentialFileError);
  expect((thrown as Error).message).not.toContain(TOKEN);
  return thrown as CredentialFileError;
}

describe("credential files, read as a sync pass reads them", () => {
  it("reads a Secret mounted the Kubernetes way (..data links), also through a linked credential directory", () => {
    const { allowed } = directories();
    mkdirSync(join(allowed, "..2024_01_01"));
    writeFileSync(join(allowed, "..2024_01_01", "token"), "mounted-token-0123456789\n");
    writeFileSync(join(allowed, "..2024_01_01", "ca.crt"), `# cluster CA\n${CA}`);
    symlinkSync("..2024_01_01", join(allowed, "..data"));
    symlinkSync("..data/token", join(allowed, "token"));
    symlinkSync("..data/ca.crt", join(allowed, "ca.crt"));
    const linked = join(mkdtempSync(join(tmpdir(), "link-")), "credentials");
    symlinkSync(allowed, linked);

    const credentials = read(linked, join(linked, "token"), join(linked, "ca.crt"));
    expect(credentials.token).toBe("mounted-token-0123456789");
    expect(credentials.caPem).toBe(CA.trim() + "\n");
    expect(read(allowed, join(allowed, "token"), join(allowed, "ca.crt")).token).toBe("mounted-token-0123456789");
  });

  it("refuses a symbolic link inside a credential directory that leads outside, without sending its contents anywhere", () => {
    const { allowed, outside } = directories();
    symlinkSync(join(outside, "token"), join(allowed, "token"));
    writeFileSync(join(allowed, "ca.crt"), CA);
    const error = refusal(() => read(allowed, join(allowed, "token"), join(allowed, "ca.crt")));
    expect(error.problem).toBe("outside");
    expect(error.message).toContain(`credential file ${join(allowed, "token")}: resolves (through a symbolic link) to a file outside the credential directories`);
  });

  it("refuses `link/..` by its text, and by where the kernel really takes it", () => {
    const { allowed, outside } = directories();
    mkdirSync(join(outside, "sub"));
    symlinkSync(join(outside, "sub"), join(allowed, "dirlink"));
    writeFileSync(join(allowed, "ca.crt"), CA);
    // Read as text, this is allowed/token; the kernel takes dirlink/.. to `outside`.
    const sneaky = join(allowed, "dirlink") + "/../token";
    expect(refusal(() => read(allowed, sneaky, join(allowed, "ca.crt"))).message).toContain(`must not contain "." or ".." segments`);
    expect(refusal(() => readConfinedFile(sneaky, [allowed], MAX_TOKEN_FILE_BYTES)).problem).toBe("outside");
    // A linked directory pointing outside the credential directories is refused the same way.
    expect(refusal(() => readConfinedFile(join(allowed, "dirlink", "x"), [allowed], 10)).problem).toBe("missing");
    writeFileSync(join(outside, "sub", "x"), TOKEN);
    expect(refusal(() => readConfinedFile(join(allowed, "dirlink", "x"), [allowed], 1024)).problem).toBe("outside");
  });

  it("refuses what is not a regular file, without hanging on a FIFO", () => {
    const { allowed } = directories();
    writeFileSync(join(allowed, "ca.crt"), CA);
    mkdirSync(join(allowed, "a-directory"));
    execFileSync("mkfifo", [join(allowed, "a-fifo")]);
    for (const name of ["a-directory", "a-fifo"]) {
      const error = refusal(() => read(allowed, join(allowed, name), join(allowed, "ca.crt")));
      expect([error.problem, error.message]).toEqual(["not_a_file", `credential file ${join(allowed, name)}: is not a regular file`]);
    }
    expect(refusal(() => read(allowed, join(allowed, "absent"), join(allowed, "ca.crt"))).message).toContain("does not exist (is the Secret mounted?)");
  });

  it(`bounds a token file to ${MAX_TOKEN_FILE_BYTES} bytes and a CA file to ${MAX_CA_FILE_BYTES}`, () => {
    const { allowed } = directories();
    writeFileSync(join(allowed, "ca.crt"), CA);
    writeFileSync(join(allowed, "token"), "t".repeat(MAX_TOKEN_FILE_BYTES));
    expect(read(allowed, join(allowed, "token"), join(allowed, "ca.crt")).token).toHaveLength(MAX_TOKEN_FILE_BYTES);
    writeFileSync(join(allowed, "token"), "t".repeat(MAX_TOKEN_FILE_BYTES + 1));
    expect(refusal(() => read(allowed, join(allowed, "token"), join(allowed, "ca.crt"))).problem).toBe("too_large");
    writeFileSync(join(allowed, "token"), TOKEN);
    writeFileSync(join(allowed, "big-ca.crt"), `${"#".repeat(MAX_CA_FILE_BYTES)}\n${CA}`);
    expect(refusal(() => read(allowed, join(allowed, "token"), join(allowed, "big-ca.crt"))).problem).toBe("too_large");
  });

  it("refuses a CA file without a parseable certificate, and a token file that is not one token", () => {
    const { allowed } = directories();
    writeFileSync(join(allowed, "token"), TOKEN);
    const [header, footer] = ["-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"];
    const bad: Record<string, string> = {
      empty: "",
      blank: "\n  \n",
      text: "not a certificate\n",
      "bad body": `${header}\nbm90IGEgY2VydGlmaWNhdGU=\n${footer}\n`,
      "a key": testPki("credential-files").caKeyPem,
      "one bad of two": `${CA}${header}\nAAAA\n${footer}\n`,
    };
    for (const [name, text] of Object.entries(bad)) {
      writeFileSync(join(allowed, "ca.crt"), text);
      const error = refusal(() => read(allowed, join(allowed, "token"), join(allowed, "ca.crt")));
      expect([name, error.problem]).toEqual([name, "no_certificate"]);
    }
    writeFileSync(join(allowed, "ca.crt"), CA);
    for (const [text, problem] of [["\n", "empty"], [`${TOKEN} ${TOKEN}`, "malformed"], [`${TOKEN}\n${TOKEN}\n`, "malformed"]] as const) {
      writeFileSync(join(allowed, "token"), text);
      expect(refusal(() => read(allowed, join(allowed, "token"), join(allowed, "ca.crt"))).problem).toBe(problem);
    }
  });

  it("holds nothing inside a credential directory that does not exist", () => {
    const { outside } = directories();
    const error = refusal(() => read(outside, join(outside, "token"), join(outside, "ca.crt"), [join(outside, "missing")]));
    expect(error.problem).toBe("outside");
  });
});

describe("the sync loop with bad credential files, against the stand-in Kubernetes API", () => {
  let server: TestServer;
  let clusters: Client<typeof ClusterService>;
  const apis: StandInApiServer[] = [];
  const root = mkdtempSync(join(tmpdir(), "credential-root-"));

  beforeAll(async () => {
    server = await startTestServer({
      sync: {
        ...DEFAULT_SYNC_SETTINGS,
        // Every pass here is caused by a registration or a retry, never by the clock.
        intervalMs: 3_600_000,
        fullResyncIntervalMs: 3_600_000,
        requestTimeoutMs: 2_000,
        initialBackoffMs: 50,
        maxBackoffMs: 200,
        credentialDirectories: [root],
      },
    });
    const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
    clusters = createClient(ClusterService, transport);
    await createClient(ProjectService, transport).createProject({ project: { id: "project1" } });
  });

  afterAll(async () => {
    await server?.stop();
    await Promise.all(apis.map((api) => api.stop()));
  });

  async function standIn(): Promise<StandInApiServer> {
    const api = await StandInApiServer.start();
    apis.push(api);
    return api;
  }

  async function register(name: string, api: StandInApiServer, tokenPath: string, caCertPath: string): Promise<void> {
    await clusters.createCluster({
      cluster: { name, endpoint: api.url, auth: { method: { case: "bearerTokenFile", value: { tokenPath, caCertPath } } } },
    });
  }

  async function syncStatus(name: string) {
    return (await clusters.getCluster({ name })).cluster!.syncStatus!;
  }

  async function failsWith(name: string, text: string): Promise<void> {
    await waitFor(`${name}'s pass to fail with "${text}"`, async () => (await syncStatus(name))?.lastError.includes(text) ?? false, 20_000);
    expect((await syncStatus(name)).health).toBe(SyncHealth.FAILING);
  }

  it("sends nothing when the token file is a link leading outside, and uses the file once it is a real one", async () => {
    const api = await standIn();
    const dir = mkdtempSync(join(root, "escape-"));
    const outside = api.writeCredentials(mkdtempSync(join(tmpdir(), "outside-")));
    symlinkSync(outside.tokenPath, join(dir, "token"));
    writeFileSync(join(dir, "ca.crt"), api.caCertPem);
    await register("escape", api, join(dir, "token"), join(dir, "ca.crt"));

    await failsWith("escape", "resolves (through a symbolic link) to a file outside the credential directories");
    expect(api.requestCount).toBe(0);
    expect((await syncStatus("escape")).lastError).not.toContain(api.token);

    // Files are checked when read: replacing the link with the file itself is picked up.
    writeFileSync(join(dir, "token.new"), `${api.token}\n`);
    renameSync(join(dir, "token.new"), join(dir, "token"));
    await server.sync!.runOnce();
    expect(api.getObject("namespaces", "", "project1-development")).toBeDefined();
    expect((await syncStatus("escape")).health).toBe(SyncHealth.HEALTHY);
  });

  it("sends nothing with an empty or a garbage CA file", async () => {
    for (const [name, ca] of [["empty-ca", ""], ["garbage-ca", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]]) {
      const api = await standIn();
      const dir = mkdtempSync(join(root, `${name}-`));
      const credentials = api.writeCredentials(dir);
      writeFileSync(credentials.caCertPath, ca!);
      await register(name!, api, credentials.tokenPath, credentials.caCertPath);
      await failsWith(name!, ca === "" ? "holds no PEM certificate" : "certificate 1 of 1 is not a valid X.509 certificate");
      expect(api.requestCount).toBe(0);
    }
  });

  it("refuses at registration a path that goes through `..`, naming the field", async () => {
    const api = await standIn();
    const dir = mkdtempSync(join(root, "dotdot-"));
    const outside = api.writeCredentials(mkdtempSync(join(tmpdir(), "outside-")));
    symlinkSync(join(outside.tokenPath, "..", "sub"), join(dir, "dirlink"));
    mkdirSync(join(outside.tokenPath, "..", "sub"));
    writeFileSync(join(dir, "ca.crt"), api.caCertPem);
    const refused = await register("dotdot", api, `${dir}/dirlink/../token`, join(dir, "ca.crt")).catch((error: unknown) => ConnectError.from(error));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.InvalidArgument);
    expect((refused as ConnectError).rawMessage).toContain(`must not contain "." or ".." segments`);
    expect((refused as ConnectError).rawMessage).not.toContain(api.token);
    expect(api.requestCount).toBe(0);
  });
});

describe("a CA file never falls back to Node's default trust store", () => {
  let api: StandInApiServer;
  beforeAll(async () => {
    api = await StandInApiServer.start();
  });
  afterAll(() => api?.stop());

  it("sends no request, token or not, when the default store would have trusted the server", async () => {
    const dir = mkdtempSync(join(tmpdir(), "unpinned-"));
    const credentials = api.writeCredentials(dir);
    writeFileSync(credentials.caCertPath, "");
    const extraCa = join(mkdtempSync(join(tmpdir(), "default-store-")), "ca.pem");
    writeFileSync(extraCa, api.caCertPem);

    const child = await run(process.execPath, ["--import", "tsx", "test/sync/credential-files.child.ts", api.url, credentials.tokenPath, credentials.caCertPath, dir], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: extraCa },
      timeout: 60_000,
    });
    const { outcome, control } = JSON.parse(child.stdout) as { outcome: string; control: number };
    // The control, made after the pass, reached the stand-in: its default store does trust it.
    expect(control).toBe(401);
    expect(outcome).toMatch(/^CredentialFileError: credential file .*ca\.crt: holds no PEM certificate/);
    expect(api.requestLog.map((entry) => entry.path)).toEqual(["/control-without-token"]);
  });
});
