import { afterEach, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import type { PassOutcome } from "../../src/core/pass-outcome.js";
import { RoutingIndex } from "../../src/routing/routing-index.js";
import { selectCluster } from "../../src/routing/select-cluster.js";
import { copyDatabase, CopyRefused, TABLE_PLAN } from "../../src/store/copy-database.js";
import { openDatabase } from "../../src/store/database.js";
import { LeaseStore } from "../../src/store/leader-lease.js";
import { MIGRATIONS } from "../../src/store/migrations.js";

/** The schema version this clusterplane writes. */
const LATEST = MIGRATIONS.at(-1)!.version;
import { openStores, type Stores } from "../../src/store/stores.js";
import { postgresEngines, SQLITE, type TestDatabase } from "../support/engines.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { inMemoryClient, snapshot } from "../support/stores.js";

/**
 * `copyDatabase`: a SQLite file, filled through the real services and stores, copied into a fresh
 * PostgreSQL schema (and, since the code is generic, into another SQLite file), then read back the
 * way a user would see it.
 */

const opened: Stores[] = [];
const databases: TestDatabase[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const stores of opened.splice(0)) await stores.engine.close();
  for (const database of databases.splice(0)) await database.drop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function fresh(engine = SQLITE): Promise<string> {
  const database = await engine.fresh();
  databases.push(database);
  return database.location;
}

async function open(location: string): Promise<Stores> {
  const stores = await openStores({ path: location });
  opened.push(stores);
  return stores;
}

async function close(stores: Stores): Promise<void> {
  opened.splice(opened.indexOf(stores), 1);
  await stores.engine.close();
}

const clients = (stores: Stores) => ({
  pools: inMemoryClient(ClusterPoolService, stores),
  clusters: inMemoryClient(ClusterService, stores),
  queues: inMemoryClient(QueueService, stores),
  projects: inMemoryClient(ProjectService, stores),
  ecl: inMemoryClient(ExecutionClusterLabelService, stores),
});

const ORGS = ["", "acme"];
const ALL_PAIRS = ["development", "staging", "production"].map((domain) => ({ project: "project1", domain }));

function pass(overrides: Partial<PassOutcome> = {}): PassOutcome {
  return {
    startedAt: new Date(), finishedAt: new Date(), full: false, applied: 6, unchanged: 0, failure: null,
    objectsFailed: 0, objectFailures: [], templateErrors: [], desired: ALL_PAIRS, provisioned: ALL_PAIRS, ...overrides,
  };
}

/** Every noun in two organizations, with updates, drains, deletions, sync results, a lease and a compacted log. */
async function populate(stores: Stores): Promise<void> {
  const { pools, clusters, queues, projects, ecl } = clients(stores);
  await pools.createClusterPool({ clusterPool: seedProdPool() });
  await pools.createClusterPool({ clusterPool: seedProdPool({ org: "acme", name: "edge" }) });
  for (const name of ["dataplane_1", "dataplane_2"]) await clusters.createCluster({ cluster: seedCluster(name, "prod") });
  await clusters.createCluster({ cluster: seedCluster("dataplane_3") });
  await clusters.createCluster({ cluster: seedCluster("edge_1", "edge", { org: "acme" }) });
  await clusters.createCluster({ cluster: seedCluster("short_lived", "prod") });
  await clusters.drainCluster({ name: "short_lived" });
  await clusters.deleteCluster({ name: "short_lived" });
  await clusters.drainCluster({ name: "dataplane_2" });
  await queues.createQueue({ queue: { name: "gpu", pool: "prod", clusters: ["dataplane_1", "dataplane_2"] } });
  await queues.createQueue({ queue: { name: "batch", pool: "prod", clusters: ["*"] } });
  await queues.drainQueue({ name: "batch" });
  await projects.createProject({ project: { id: "project1", name: "Project One", description: "the first — ünïcode" } });
  await projects.createProject({ project: { id: "project2" } });
  await projects.archiveProject({ id: "project2" });
  await projects.createProject({ project: { org: "acme", id: "web" } });
  await ecl.createClusterLabel({ label: { name: "label1", clusters: [{ cluster: "dataplane_1", weight: 0.7 }, { cluster: "dataplane_3", weight: 0.3 }] } });
  await ecl.createClusterLabel({ label: { name: "label2", clusters: [{ cluster: "dataplane_3", weight: 1 }] } });
  await ecl.createClusterLabel({ label: { name: "gone", clusters: [{ cluster: "dataplane_3", weight: 1 }] } });
  await ecl.deleteClusterLabel({ name: "gone" });
  await ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "project1", domain: "development", value: "label1" } });
  await ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "project1", domain: "staging", workflow: "wf", value: "label2" } });
  await ecl.setDefaultClusterLabel({ label: "label2" });
  await stores.sync.recordOutcome("", "dataplane_1", pass());
  await stores.sync.recordOutcome("", "dataplane_3", pass({ provisioned: ALL_PAIRS.slice(0, 1) }));
  await stores.sync.recordOutcome("", "dataplane_2", pass({ failure: { kind: "unreachable", message: "connection refused" }, provisioned: [] }));
  await stores.sync.recordApplied("", "dataplane_1", [{ key: "v1/Namespace/project1-development", hash: "abc" }]);
  await new LeaseStore(stores.changes).acquire("cluster-sync", "source-process", 60_000);
  // Entries older than now and more than 10 behind the newest go: the log starts past revision 1.
  await stores.changes.compact({ maxEntries: 10, maxAgeMs: -1 });
}

/** What a user sees, through the services: every noun of every organization, and routing answers. */
async function whatUsersSee(stores: Stores) {
  const { pools, clusters, queues, projects, ecl } = clients(stores);
  const seen: Record<string, unknown> = {};
  for (const org of ORGS) {
    const listed = {
      pools: (await pools.listClusterPools({ org })).clusterPools,
      clusters: (await clusters.listClusters({ org })).clusters,
      queues: (await queues.listQueues({ org })).queues,
      projects: (await projects.listProjects({ org })).projects,
      labels: (await ecl.listClusterLabels({ org })).labels,
      assignments: (await ecl.listExecutionClusterLabels({ org })).executionClusterLabels,
      defaultLabel: (await ecl.getDefaultClusterLabel({ org })).label,
    };
    const got = {
      clusters: await Promise.all(listed.clusters.map((c) => clusters.getCluster({ org, name: c.name }))),
      pools: await Promise.all(listed.pools.map((p) => pools.getClusterPool({ org, name: p.name }))),
      queues: await Promise.all(listed.queues.map((q) => queues.getQueue({ org, name: q.name }))),
      projects: await Promise.all(listed.projects.map((p) => projects.getProject({ org, id: p.id }))),
      labels: await Promise.all(listed.labels.map((l) => ecl.getClusterLabel({ org, name: l.name }))),
    };
    seen[org || "(default org)"] = { listed, got };
  }
  seen.selections = await routingAnswers(stores);
  return seen;
}

/** SelectCluster answers as a server with sync on gives them (provisioning truth, sync health). */
async function routingAnswers(stores: Stores) {
  const routing = await RoutingIndex.open(stores, true);
  try {
    const answers = [];
    for (const domain of ["development", "staging", "production"]) {
      for (const workflow of ["", "wf"]) {
        for (let i = 0; i < 20; i++) {
          try {
            const selection = selectCluster(routing, { org: "", project: "project1", domain, workflow, launchPlan: "", executionId: `exec-${i}`, target: null });
            answers.push(selection);
          } catch (error) {
            answers.push({ refused: (error as Error).message });
          }
        }
      }
    }
    return answers;
  } finally {
    routing.close();
  }
}

/** The change log as followers and Watch clients read it. */
async function changeLog(stores: Stores) {
  const entries = await stores.changes.readAfter(0, 100_000);
  return {
    revision: await stores.changes.currentRevision(),
    oldestResumable: await stores.changes.oldestResumable(),
    entries: entries.map((entry) => ({ revision: entry.revision, change: entry.change, op: entry.op, state: entry.state, commitTime: entry.commitTime })),
  };
}

/** The rows of every copied table, in a canonical order (engines list rows in their own). */
async function copiedRows(stores: Stores): Promise<Record<string, unknown[]>> {
  const all = await snapshot(stores);
  const copied = Object.entries(TABLE_PLAN).filter(([, plan]) => plan.mode !== "skip").map(([table]) => table);
  return Object.fromEntries(copied.map((table) => [table, (all[table] ?? []).map((row) => JSON.stringify(row)).sort()]));
}

async function tablesIn(location: string): Promise<string[]> {
  const engine = await openDatabase(location, []);
  try {
    return (await snapshotTables(engine.db)).filter((table) => table !== "schema_migrations");
  } finally {
    await engine.close();
  }
}

async function snapshotTables(db: Stores["engine"]["db"]): Promise<string[]> {
  return (await db.introspection.getTables()).map((table) => table.name);
}

const fileHash = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describe.each(postgresEngines())("copying SQLite into $name", (postgres) => {
  it("keeps everything a user sees: every noun, etags and times, the change log and its revisions, routing", async () => {
    const from = await fresh();
    const source = await open(from);
    await populate(source);
    const to = await fresh(postgres);

    // The source stays open, as under a running server: the copy reads it alongside.
    const summary = await copyDatabase({ from, to });
    const target = await open(to);

    expect(await whatUsersSee(target)).toEqual(await whatUsersSee(source));
    const log = await changeLog(source);
    expect(log.oldestResumable).toBeGreaterThan(0);
    expect(await changeLog(target)).toEqual(log);
    expect(await copiedRows(target)).toEqual(await copiedRows(source));
    // Leases belong to the source's processes: the target's servers elect their own.
    expect((await snapshot(target)).leases).toEqual([]);
    expect(summary.revision).toBe(log.revision);
    expect(summary.copied).toContainEqual({ table: "clusters", rows: 4 });
    expect(summary.skipped.map((s) => s.table)).toEqual(["schema_migrations", "leases"]);

    // The copy is a working database: a write goes on from the copied revision.
    await clients(target).projects.createProject({ project: { id: "after-copy" } });
    expect(await target.changes.currentRevision()).toBe(log.revision + 1);
  });

  it("reads one snapshot while another connection keeps writing the source", async () => {
    const from = await fresh();
    const source = await open(from);
    const { projects } = clients(source);
    for (let i = 0; i < 300; i++) await projects.createProject({ project: { id: `p${i}` } });
    const to = await fresh(postgres);
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await projects.createProject({ project: { id: `during-${written++}` } });
        // SQLite answers without I/O: without a turn of the event loop the copy's PostgreSQL calls would starve.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const writtenBefore = written;
    const copied = await copyDatabase({ from, to }).finally(() => (writing = false));
    await writer;
    // The copy awaits PostgreSQL many times: the writer committed in between (else this proves nothing).
    expect(written).toBeGreaterThan(writtenBefore);

    // A row and its log entry commit together: a torn read would have one without the other.
    const target = await open(to);
    const ids = (await target.engine.db.selectFrom("projects").select("id").execute()).map((row) => row.id).sort();
    const logged = (await target.changes.readAfter(0, 100_000)).map((entry) => (entry.change as { id: string }).id).sort();
    expect(ids).toEqual(logged);
    expect(copied.revision).toBe(ids.length);
    expect(await source.changes.currentRevision()).toBeGreaterThan(copied.revision);
  });

  it("refuses a target that holds data, naming the table and count, and changes nothing", async () => {
    const from = await fresh();
    await populate(await open(from));
    const to = await fresh(postgres);
    const target = await open(to);
    await clients(target).pools.createClusterPool({ clusterPool: seedProdPool() });
    const before = await snapshot(target);

    const refusal = await copyDatabase({ from, to }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(CopyRefused);
    expect(refusal).toMatchObject({ side: "target" });
    // Two pools: the first write of an organization stores its default pool too.
    expect((refusal as Error).message).toMatch(/is not empty \(cluster_pools has 2 rows, change_log has 2 rows\): copy only into an empty database; nothing was changed/);
    expect(await snapshot(target)).toEqual(before);
  });

  it("refuses a source at an older schema version, saying to migrate it first, and creates nothing", async () => {
    const from = await fresh();
    await (await openDatabase(from, MIGRATIONS.slice(0, 3))).close();
    const to = await fresh(postgres);

    await expect(copyDatabase({ from, to })).rejects.toThrow(
      new RegExp(`is at schema version 3, older than this clusterplane's ${LATEST}: run \`clusterplane migrate --db ${from}\` first`),
    );
    await expect(copyDatabase({ from, to })).rejects.toMatchObject({ side: "source" });
    expect(await tablesIn(to)).toEqual([]);
  });

  it("refuses a source a newer clusterplane wrote", async () => {
    const from = await fresh();
    const future = { version: LATEST + 1, description: "a later release", sql: "CREATE TABLE later (x INTEGER) STRICT;" };
    await (await openDatabase(from, [...MIGRATIONS, future])).close();
    const to = await fresh(postgres);

    await expect(copyDatabase({ from, to })).rejects.toThrow(new RegExp(`is at schema version ${LATEST + 1}, newer than this clusterplane's ${LATEST}: upgrade clusterplane`));
    expect(await tablesIn(to)).toEqual([]);
  });

  it("refuses a missing source file, and does not create it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clusterplane-copy-"));
    dirs.push(dir);
    const from = join(dir, "missing.db");
    const to = await fresh(postgres);

    await expect(copyDatabase({ from, to })).rejects.toThrow(`${from}: no such file`);
    expect(existsSync(from)).toBe(false);
    expect(await tablesIn(to)).toEqual([]);
  });

  it("rolls the whole copy back when a row fails late in it: the target is as empty as before", async () => {
    const from = await fresh();
    const source = await open(from);
    await populate(source);
    // change_log is not STRICT on SQLite, so it can hold what PostgreSQL's BIGINT refuses; it is
    // copied after every resource table, so the failure comes with most of the copy done.
    await sql`UPDATE change_log SET commit_time = 'yesterday' WHERE revision = (SELECT max(revision) FROM change_log)`.execute(source.engine.db);
    const to = await fresh(postgres);

    await expect(copyDatabase({ from, to })).rejects.toThrow(/copying change_log: invalid input syntax for type bigint/);
    // Even the migrations went back with it: the schema has no tables at all.
    expect(await tablesIn(to)).toEqual([]);
  });

  it("never changes the source file", async () => {
    const from = await fresh();
    await populate(await open(from));
    await close(opened[0]!);
    const before = fileHash(from);

    await copyDatabase({ from, to: await fresh(postgres) });
    expect(fileHash(from)).toBe(before);
  });

  it("leaves no table with a sequence or identity column on PostgreSQL (so none needs moving past the copy)", async () => {
    const target = await open(await fresh(postgres));
    const { rows: sequences } = await sql`SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema()`.execute(target.engine.db);
    const { rows: generated } = await sql`
      SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND (is_identity = 'YES' OR column_default LIKE 'nextval%')`.execute(target.engine.db);
    expect({ sequences, generated }).toEqual({ sequences: [], generated: [] });
  });
});

describe("copying SQLite into SQLite (the same generic code)", () => {
  it("copies every table the plan copies, row for row", async () => {
    const from = await fresh();
    const source = await open(from);
    await populate(source);
    const to = await fresh();

    await copyDatabase({ from, to: `sqlite:${to}` });
    const target = await open(to);
    expect(await copiedRows(target)).toEqual(await copiedRows(source));
    expect(await whatUsersSee(target)).toEqual(await whatUsersSee(source));
  });

  it("refuses to copy a file into itself", async () => {
    const from = await fresh();
    await (await openDatabase(from)).close();
    await expect(copyDatabase({ from, to: from })).rejects.toThrow(/is the source file itself/);
  });

  it("has a plan for exactly the tables the migrations make", async () => {
    const engine = await openDatabase(await fresh());
    try {
      expect((await snapshotTables(engine.db)).sort()).toEqual(Object.keys(TABLE_PLAN).sort());
    } finally {
      await engine.close();
    }
  });
});
