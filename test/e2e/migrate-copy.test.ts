import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { openStores } from "../../src/store/stores.js";
import { postgresEngines, SQLITE, type TestDatabase } from "../support/engines.js";
import { seedCluster } from "../support/fixtures.js";
import { inMemoryClient } from "../support/stores.js";

/** `clusterplane migrate --from FILE --to URL` as an operator runs it, then a server on the copy. */

let databases: TestDatabase[] = [];
let server: ChildProcess | undefined;
afterEach(async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((resolve) => server!.once("exit", resolve));
    server.kill("SIGKILL");
    await exited;
  }
  server = undefined;
  for (const database of databases) await database.drop();
  databases = [];
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI from the sources, as its own process. */
function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `clusterplane serve` on `db`; resolves with its URL once it listens. */
function serve(db: string): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--port", "0", "--no-sync", "--db", db], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  server = child;
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      if (typeof line.url === "string" && String(line.msg).includes("listening")) resolve(line.url);
    });
    child.once("exit", (code) => reject(new Error(`serve exited early with ${code}`)));
  });
}

async function fresh(engine = SQLITE): Promise<string> {
  const database = await engine.fresh();
  databases.push(database);
  return database.location;
}

/** A SQLite file with one cluster in it, written as a server would, then closed. */
async function sqliteWithCluster(): Promise<string> {
  const from = await fresh();
  const stores = await openStores({ path: from });
  try {
    await inMemoryClient(ClusterService, stores).createCluster({ cluster: seedCluster("dataplane_1") });
  } finally {
    await stores.engine.close();
  }
  return from;
}

describe.each(postgresEngines())("clusterplane migrate --from FILE --to URL ($name)", (postgres) => {
  it("copies, prints rows per table and the revision with the password starred; a server then answers from PostgreSQL", async () => {
    const from = await sqliteWithCluster();
    const url = new URL(await fresh(postgres));
    // Trust authentication never asks for it: the password is only there to be starred.
    url.password = "s3cret";
    const to = url.toString();

    const copy = await cli("migrate", "--from", from, "--to", to);
    expect(copy.stderr).toBe("");
    expect(copy.code).toBe(0);
    expect(copy.stdout).toContain(`copied ${from} into postgres://root:***@`);
    expect(copy.stdout).not.toContain("s3cret");
    expect(copy.stdout).toMatch(/^ {2}clusters: +1$/m);
    expect(copy.stdout).toMatch(/^ {2}cluster_pools: +1$/m);
    expect(copy.stdout).toMatch(/^not copied: schema_migrations, leases$/m);
    expect(copy.stdout).toMatch(/^change log at revision 4$/m);

    const again = await cli("migrate", "--from", from, "--to", to);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("is not empty (cluster_pools has 1 row, clusters has 1 row");

    const clusters = createClient(ClusterService, createGrpcTransport({ baseUrl: await serve(to) }));
    const { cluster } = await clusters.getCluster({ name: "dataplane_1" });
    expect(cluster).toMatchObject({ name: "dataplane_1", pool: "default", endpoint: "https://dataplane-1.example.com:443" });
  });

  it("refuses a missing source file with exit code 2", async () => {
    const result = await cli("migrate", "--from", "/nonexistent/clusterplane.db", "--to", await fresh(postgres));
    expect(result).toMatchObject({ code: 2, stdout: "" });
    expect(result.stderr).toContain("/nonexistent/clusterplane.db: no such file");
  });
});

describe("clusterplane migrate: flags", () => {
  it.each([
    [["--from", "a.db"], "--to is missing"],
    [["--to", "postgres://x@h/db"], "--from is missing"],
    [["--db", "a.db", "--from", "b.db", "--to", "postgres://x@h/db"], "--db does not go with --from/--to"],
  ])("%j is a usage error (exit code 2)", async (args, message) => {
    const result = await cli("migrate", ...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });
});
