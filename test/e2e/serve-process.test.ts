import { describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { seedProdPool } from "../support/fixtures.js";
import { bearer, newToken, writeTokensFile } from "../support/auth.js";
import { testPki } from "../support/kube/test-ca.js";
import { waitFor } from "../support/wait.js";

const BIN = "bin/clusterplane.mjs";

interface LogLine {
  msg: string;
  url?: string;
  [key: string]: unknown;
}

/** Starts `clusterplane serve` as its own process and waits for the line saying where it listens. */
async function startServeProcess(args: string[]) {
  const child = spawn(process.execPath, [BIN, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: LogLine[] = [];
  const reader = createInterface({ input: child.stdout! });
  const listening = new Promise<string>((resolve, reject) => {
    reader.on("line", (text) => {
      const line = JSON.parse(text) as LogLine;
      lines.push(line);
      if (line.url && line.msg.includes("listening")) resolve(line.url);
    });
    child.once("exit", (code) => reject(new Error(`serve exited early with ${code}`)));
  });
  return { child, lines, url: await listening };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

describe("clusterplane serve (the process npm start runs)", () => {
  it("serves, then on SIGTERM ends open streams, exits 0 and closes the database cleanly", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-serve-"));
    const databasePath = join(dir, "state.db");
    const { child, lines, url } = await startServeProcess(["--port", "0", "--db", databasePath]);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const pools = createClient(ClusterPoolService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
    await pools.createClusterPool({ clusterPool: seedProdPool() });

    const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
    const statuses: HealthCheckResponse_ServingStatus[] = [];
    const watching = (async () => {
      for await (const response of health.watch({ service: "" })) {
        statuses.push(response.status);
        if (statuses.length === 1) child.kill("SIGTERM");
      }
    })();

    expect(await exited(child)).toBe(0);
    await watching;
    expect(statuses[0]).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect(lines.map((line) => line.msg)).toContain("stopped; database closed");
    // A clean close checkpoints the write-ahead log into the database file and removes it.
    expect(existsSync(`${databasePath}-wal`)).toBe(false);
    const db = new Database(databasePath, { readonly: true });
    expect(db.prepare("SELECT name FROM cluster_pools ORDER BY name").pluck().all()).toEqual(["default", "prod"]);
    db.close();
  });

  it("refuses a bad setting with a message naming it and exit code 2", () => {
    const result = spawnSync(process.execPath, [BIN, "serve", "--port", "http"], { encoding: "utf8" });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("--port");
    expect(result.stderr).toContain("whole number");
  });

  it("serves TLS with bearer tokens from a --config file, and still stops cleanly on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-serve-tls-"));
    const pki = testPki("serve-process");
    writeFileSync(join(dir, "server.crt"), pki.serverCertPem);
    writeFileSync(join(dir, "server.key"), pki.serverKeyPem);
    const admin = newToken("admin", "ops");
    writeTokensFile(join(dir, "tokens"), [admin]);
    const config = join(dir, "clusterplane.yaml");
    writeFileSync(
      config,
      [
        "server:",
        "  port: 0",
        `  database: ${join(dir, "state.db")}`,
        "  shutdownGrace: 5s",
        "auth:",
        `  tokensFile: ${join(dir, "tokens")}`,
        "tls:",
        `  certFile: ${join(dir, "server.crt")}`,
        `  keyFile: ${join(dir, "server.key")}`,
        "sync:",
        "  enabled: false",
        "",
      ].join("\n"),
    );
    const { child, lines, url } = await startServeProcess(["--config", config]);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const nodeOptions = { ca: pki.caCertPem, servername: "localhost" };
    const pools = createClient(ClusterPoolService, createGrpcTransport({ baseUrl: url, nodeOptions, interceptors: [bearer(admin.token)] }));
    expect((await pools.listClusterPools({})).clusterPools.map((pool) => pool.name)).toEqual(["default"]);
    const anonymous = createClient(ClusterPoolService, createGrpcTransport({ baseUrl: url, nodeOptions }));
    const refused = await anonymous.listClusterPools({}).catch((error: unknown) => ConnectError.from(error));
    expect((refused as ConnectError).code).toBe(Code.Unauthenticated);
    const listening = lines.find((line) => line.msg.includes("listening"));
    expect(listening).toMatchObject({ auth: `bearer tokens from ${join(dir, "tokens")}` });

    child.kill("SIGTERM");
    expect(await exited(child)).toBe(0);
    expect(JSON.stringify(lines)).not.toContain(admin.token);
  });

  it("refuses to listen beyond loopback without authentication (exit code 2)", () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-serve-open-"));
    const result = spawnSync(process.execPath, [BIN, "serve", "--host", "0.0.0.0", "--port", "0", "--db", join(dir, "state.db"), "--no-sync"], {
      encoding: "utf8",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("refusing to listen on 0.0.0.0 without authentication");
    expect(result.stderr).toContain("auth.tokensFile");
    expect(result.stderr).toContain("--allow-unauthenticated");
  });

  it("refuses a configuration file with an unknown key, naming it (exit code 2)", () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-serve-config-"));
    writeFileSync(join(dir, "clusterplane.yaml"), "server:\n  prot: 8080\n");
    const result = spawnSync(process.execPath, [BIN, "serve", "--config", join(dir, "clusterplane.yaml")], { encoding: "utf8" });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("server.prot: unknown key; did you mean port?");
  });

  it("says which port is busy and how to choose another, exit code 2 and no stack", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-serve-busy-"));
    const occupant = createServer();
    await new Promise<void>((resolve) => occupant.listen(0, "127.0.0.1", resolve));
    const port = (occupant.address() as { port: number }).port;
    try {
      const result = spawnSync(process.execPath, [BIN, "serve", "--port", String(port), "--db", join(dir, "state.db"), "--no-sync"], { encoding: "utf8" });
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(`port ${port} is already in use on 127.0.0.1`);
      expect(result.stderr).toContain("--port");
      expect(result.stderr).not.toMatch(/\n\s+at /);
    } finally {
      occupant.close();
    }
  });

  it("npm start hands SIGTERM to the server, which shuts down gracefully; nothing is left running", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-npm-start-"));
    const databasePath = join(dir, "state.db");
    const npm = spawn("npm", ["start", "--", "--port", "0", "--db", databasePath, "--no-sync"], { stdio: ["ignore", "pipe", "pipe"] });
    const exitedNpm = exited(npm);
    const lines: LogLine[] = [];
    // npm prints its own banner before the server's JSON lines.
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: npm.stdout! }).on("line", (text) => {
        if (!text.startsWith("{")) return;
        const line = JSON.parse(text) as LogLine;
        lines.push(line);
        if (line.url && line.msg.includes("listening")) resolve(line.url);
      });
      void exitedNpm.then((code) => reject(new Error(`npm start exited early with ${code}`)));
    });
    npm.kill("SIGTERM");
    expect(await exitedNpm).toBe(0);
    expect(lines.map((line) => line.msg)).toContain("stopped; database closed");
    expect(existsSync(`${databasePath}-wal`)).toBe(false);
    // The server was npm's child: with it gone, nobody listens on its port any more.
    const { port } = new URL(url);
    await waitFor("the port to close", () =>
      new Promise<boolean>((resolve) => {
        const socket = connect(Number(port), "127.0.0.1");
        socket.once("connect", () => (socket.destroy(), resolve(false)));
        socket.once("error", () => resolve(true));
      }),
    );
  }, 60_000);
});
