import { describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { seedProdPool } from "../support/fixtures.js";

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
});
