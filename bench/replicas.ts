/**
 * `npm run bench -- replicas`: clusterplane on PostgreSQL against clusterplane on SQLite, as
 * separate `serve` processes, each figure a ratio of the same run (the cases take turns):
 *
 * 1. write throughput over gRPC (CreateProject, WRITERS_IN_FLIGHT in flight from a worker
 *    thread), one server on each engine; server CPU per call from /proc, and on PostgreSQL the CPU
 *    of this database's backends too (the work SQLite does inside the server);
 * 2. SelectCluster from h2load against replica B of two servers on one PostgreSQL database, the
 *    fixture written through replica A's API, against one server on a SQLite file: routing is
 *    answered from memory, so the ratio should be about 1;
 * 3. a write through replica A reaching replica B's Watch stream: PostgreSQL's LISTEN/NOTIFY
 *    wake-up against two servers on one SQLite file, which poll `data_version`.
 *
 * It needs a PostgreSQL server (BENCH_POSTGRES, else CLUSTERPLANE_TEST_POSTGRES, else the local
 * one as the tests use it) and makes a database of its own there, dropped at the end.
 * It prints; it never fails on a ratio.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { ExecutionClusterLabelService, SelectClusterRequestSchema } from "../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { CreateProjectRequestSchema } from "../gen/clusterplane/v1/project_pb.js";
import { openStores } from "../src/store/stores.js";
import { populate, populateThrough } from "./fixture.js";
import { findH2load, machineBusySeconds, processCpuSeconds, runH2load, treeCpuSeconds } from "./h2load.js";
import {
  buildCli,
  deliveryTimes,
  fixed,
  grpcFrame,
  listeningPort,
  medianOf,
  percentileOf,
  readNewLog,
  serveArgs,
  sleep,
  startServer,
  stop,
  threadLoad,
  watcher,
  type Server,
  type Watcher,
} from "./processes.js";

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS) || 3);
const WRITERS_IN_FLIGHT = 16;
const WRITE_ROUND_MS = 3_000;
/** h2load as the gRPC bench loads SelectCluster: 8 connections x 16 streams, 1 s warm-up, 4 s measured. */
const SELECT_LOAD = { connections: 8, streams: 16, warmUpSeconds: 1, seconds: 4 };
/** Writes timed from replica to replica, per engine, in batches taken in turns. */
const PROPAGATION_WRITES = 300;
const PROPAGATION_BATCH = 50;
const SELECT_PATH = "/clusterplane.v1.ExecutionClusterLabelService/SelectCluster";
const CREATE_PROJECT_PATH = "/clusterplane.v1.ProjectService/CreateProject";
const ADMIN_URL = process.env.BENCH_POSTGRES || process.env.CLUSTERPLANE_TEST_POSTGRES || "postgres://root@127.0.0.1:5432/test";

export async function replicasBench(): Promise<void> {
  buildCli();
  const database = await scratchDatabase();
  if (typeof database === "string") {
    console.log(`\nReplicas: not measured, ${database}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-bench-replicas-"));
  const servers: Server[] = [];
  const watchers: Watcher[] = [];
  const start = async (name: string, db: string) => {
    const server = await startServer(name, serveArgs(db), dir, listeningPort);
    servers.push(server);
    return server;
  };
  const stopAll = async () => {
    for (const each of watchers.splice(0)) each.close();
    for (const server of servers.splice(0)) await stop(server);
  };
  console.log(`\nReplicas: PostgreSQL (database ${database.name}) against SQLite; ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(2)} at the start`);
  try {
    await writeThroughput(start, database, dir);
    await stopAll();

    const routing = await selectThroughput(start, database, dir);
    await propagation(start, routing, watchers);
  } finally {
    await stopAll();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

type Start = (name: string, db: string) => Promise<Server>;

// --- 1. Writes -----------------------------------------------------------------------------

let nextProject = 0;

async function writeThroughput(start: Start, database: ScratchDatabase, dir: string): Promise<void> {
  const onPostgres = await start("writes on postgres", await database.schema("writes"));
  const onSqlite = await start("writes on sqlite", join(dir, "writes.db"));
  const cases = [
    { name: "PostgreSQL", server: onPostgres, backends: true },
    { name: "SQLite", server: onSqlite, backends: false },
  ];
  const round = async (server: Server, backends: boolean) => {
    // A request per call (CreateProject of a new id), a few more than the round can make.
    const requests = Array.from({ length: 12_000 }, () =>
      toBinary(CreateProjectRequestSchema, create(CreateProjectRequestSchema, { project: { id: `bench-${nextProject++}` } })),
    );
    // This database's backends (the server's pool, its LISTEN connection) do the SQL work
    // SQLite does inside the server: their CPU is sampled with the server's.
    const pids = backends ? await database.backendPids() : [];
    const backendCpu = () => pids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
    const result = await threadLoad(server, { path: CREATE_PROJECT_PATH, requests, concurrency: WRITERS_IN_FLIGHT, durationMs: WRITE_ROUND_MS, alsoSample: backendCpu });
    const { failedCalls } = readNewLog(server);
    return { ...result, failedCalls };
  };
  for (const each of cases) await round(each.server, each.backends); // warm-up, unmeasured
  const samples = new Map(cases.map((each) => [each, [] as Awaited<ReturnType<typeof round>>[]]));
  for (let turn = 0; turn < ROUNDS; turn++) {
    for (const each of cases) samples.get(each)!.push(await round(each.server, each.backends));
  }
  const median = (each: (typeof cases)[number], field: "callsPerSecond" | "cpuUsPerCall" | "alsoUsPerCall" | "otherCores") =>
    medianOf(samples.get(each)!.map((sample) => sample[field]));

  console.log(
    `\n1. CreateProject over gRPC, one server per engine, @grpc/grpc-js client in a worker thread, ${WRITERS_IN_FLIGHT} in flight, ` +
      `median of ${ROUNDS} x ${WRITE_ROUND_MS / 1000} s rounds taken in turns`,
  );
  console.log(`  ${"".padEnd(12)}  calls/s (min-max)      server µs/call  + PG backends µs/call  other cores`);
  for (const each of cases) {
    const rates = samples.get(each)!.map((sample) => sample.callsPerSecond);
    const failed = samples.get(each)!.reduce((sum, sample) => sum + sample.failedCalls, 0);
    console.log(
      `  ${each.name.padEnd(12)} ${fixed(median(each, "callsPerSecond"), 0, 7)} (${fixed(Math.min(...rates), 0)}-${fixed(Math.max(...rates), 0)})`.padEnd(38) +
        `${fixed(median(each, "cpuUsPerCall"), 0, 14)}  ${each.backends ? fixed(median(each, "alsoUsPerCall"), 0, 21) : "-".padStart(21)}  ${fixed(median(each, "otherCores"), 2, 11)}` +
        (failed ? `  ${failed} FAILED calls` : ""),
    );
  }
  const [postgres, sqlite] = cases as [(typeof cases)[number], (typeof cases)[number]];
  const total = (each: typeof postgres) => median(each, "cpuUsPerCall") + (each.backends ? median(each, "alsoUsPerCall") : 0);
  console.log(
    `  PostgreSQL/SQLite: calls/s ${ratio(median(postgres, "callsPerSecond"), median(sqlite, "callsPerSecond"))}, ` +
      `server CPU per call ${ratio(median(postgres, "cpuUsPerCall"), median(sqlite, "cpuUsPerCall"))}, ` +
      `server + backends CPU per call ${ratio(total(postgres), total(sqlite))}`,
  );
}

// --- 2. SelectCluster on a replica -----------------------------------------------------------

async function selectThroughput(start: Start, database: ScratchDatabase, dir: string) {
  // PostgreSQL: two replicas on an empty schema; the fixture goes in through A's API, B follows.
  const replicas = await database.schema("replicas");
  const a = await start("replica A on postgres", replicas);
  const b = await start("replica B on postgres", replicas);
  const began = performance.now();
  const fixture = await populateThrough(serverUrl(a), WRITERS_IN_FLIGHT);
  const fixtureSeconds = (performance.now() - began) / 1000;
  const caughtUp = await waitForSentinel(a, b);

  // SQLite: the same fixture written in process, then one server on the file.
  const file = join(dir, "routing.db");
  const stores = await openStores({ path: file });
  await populate(stores);
  await stores.engine.close();
  const single = await start("single server on sqlite", file);

  // Both must route the bench's request, and to the same place.
  const request = create(SelectClusterRequestSchema, fixture.selectRequest());
  const [onB, onSingle] = await Promise.all([b, single].map((server) => selectClient(server).selectCluster(request)));
  if (onB!.cluster !== onSingle!.cluster || onB!.label !== onSingle!.label) {
    throw new Error(`replica B routes to ${onB!.cluster} (${onB!.label}), the SQLite server to ${onSingle!.cluster} (${onSingle!.label})`);
  }

  const bodyFile = join(dir, "select.grpc");
  const body = toBinary(SelectClusterRequestSchema, request);
  writeFileSync(bodyFile, grpcFrame(body));
  const h2load = process.env.BENCH_LOAD === "grpc-js" ? undefined : findH2load();
  const measure = async (server: Server) => {
    const pid = server.child.pid!;
    const sample = () => ({ server: treeCpuSeconds(pid), machine: machineBusySeconds(), at: performance.now() });
    if (!h2load) {
      // No h2load: the same closed loop from the worker-thread client.
      const result = await threadLoad(server, { path: SELECT_PATH, requests: [body], concurrency: SELECT_LOAD.connections * SELECT_LOAD.streams, durationMs: SELECT_LOAD.seconds * 1000 });
      return { callsPerSecond: result.callsPerSecond, cpuUsPerCall: result.cpuUsPerCall, p50Ms: NaN, otherCores: result.otherCores, failures: readNewLog(server).failedCalls };
    }
    let [first, last] = [sample(), sample()];
    const result = await runH2load(
      h2load,
      {
        url: `http://127.0.0.1:${server.port}${SELECT_PATH}`,
        http1: false,
        headers: { "content-type": "application/grpc", te: "trailers" },
        bodyFile,
        ...SELECT_LOAD,
        logFile: join(dir, "h2load.log"),
      },
      { started: () => (first = sample()), ended: () => (last = sample()) },
    );
    const serverCpu = last.server - first.server;
    const seconds = (last.at - first.at) / 1000;
    return {
      callsPerSecond: result.callsPerSecond,
      cpuUsPerCall: (serverCpu * 1e6) / result.calls,
      p50Ms: result.p50Ms,
      otherCores: (last.machine - first.machine - serverCpu) / seconds - result.clientCores,
      // h2load cannot see grpc-status; the server logs every failed call.
      failures: result.failures + readNewLog(server).failedCalls,
    };
  };
  const cases = [
    { name: "replica B, PostgreSQL", server: b },
    { name: "one server, SQLite", server: single },
  ];
  for (const each of cases) await measure(each.server); // warm-up, unmeasured
  const samples = new Map(cases.map((each) => [each, [] as Awaited<ReturnType<typeof measure>>[]]));
  for (let turn = 0; turn < ROUNDS; turn++) {
    for (const each of cases) samples.get(each)!.push(await measure(each.server));
  }
  const median = (each: (typeof cases)[number], field: "callsPerSecond" | "cpuUsPerCall" | "p50Ms" | "otherCores") =>
    medianOf(samples.get(each)!.map((sample) => sample[field]));

  console.log(
    `\n2. SelectCluster over gRPC on a replica: fixture (20 clusters, 1 000 labels, 1 000 projects, 10 000 assignments) written through replica A's API ` +
      `in ${fixtureSeconds.toFixed(1)} s, on replica B ${caughtUp.toFixed(0)} ms after the last write; both answer ${onB!.cluster} (${onB!.label})`,
  );
  console.log(
    `  ${h2load ? `h2load -c ${SELECT_LOAD.connections} -m ${SELECT_LOAD.streams}` : `grpc-js worker thread, ${SELECT_LOAD.connections * SELECT_LOAD.streams} in flight`}, ` +
      `${SELECT_LOAD.seconds} s measured, median of ${ROUNDS} rounds taken in turns`,
  );
  console.log(`  ${"".padEnd(22)}  calls/s (min-max)      p50 ms  server µs/call  other cores`);
  for (const each of cases) {
    const rates = samples.get(each)!.map((sample) => sample.callsPerSecond);
    const failed = samples.get(each)!.reduce((sum, sample) => sum + sample.failures, 0);
    console.log(
      `  ${each.name.padEnd(22)} ${fixed(median(each, "callsPerSecond"), 0, 7)} (${fixed(Math.min(...rates), 0)}-${fixed(Math.max(...rates), 0)})`.padEnd(48) +
        `${fixed(median(each, "p50Ms"), 2, 6)}  ${fixed(median(each, "cpuUsPerCall"), 1, 14)}  ${fixed(median(each, "otherCores"), 2, 11)}` +
        (failed ? `  ${failed} FAILED calls` : ""),
    );
  }
  const [replica, sqlite] = cases as [(typeof cases)[number], (typeof cases)[number]];
  console.log(
    `  replica B on PostgreSQL / one server on SQLite: calls/s ${ratio(median(replica, "callsPerSecond"), median(sqlite, "callsPerSecond"))}, ` +
      `server CPU per call ${ratio(median(replica, "cpuUsPerCall"), median(sqlite, "cpuUsPerCall"))} (routing is answered from memory: ≈ 1 expected)`,
  );
  return { a, b, single, sqliteFile: file };
}

/** The servers part 2 leaves running for part 3. */
type Routing = Awaited<ReturnType<typeof selectThroughput>>;

/**
 * One more assignment through A, to a scope nothing else routes: once B routes it, B has applied
 * every fixture write before it. Milliseconds from A's answer until B routed it.
 */
async function waitForSentinel(a: Server, b: Server): Promise<number> {
  const scope = { project: "project-999", domain: "production", workflow: "fixture_complete" };
  await selectClient(a).updateExecutionClusterLabel({ executionClusterLabel: { ...scope, value: "label-7" } });
  const written = performance.now();
  const onB = selectClient(b);
  while (performance.now() - written < 10_000) {
    if ((await onB.selectCluster({ ...scope, executionId: "sentinel" })).label === "label-7") return performance.now() - written;
    await sleep(5);
  }
  throw new Error("replica B did not route the fixture's last write within 10 s");
}

// --- 3. Replica to replica -------------------------------------------------------------------

async function propagation(start: Start, routing: Routing, watchers: Watcher[]): Promise<void> {
  const second = await start("second server on sqlite", routing.sqliteFile);
  const pairs = [
    { name: "PostgreSQL, A -> B", from: routing.a, to: routing.b, delays: [] as number[], writes: [] as number[], afterAnswer: [] as number[], missing: 0 },
    { name: "SQLite file, 2nd -> 1st", from: second, to: routing.single, delays: [] as number[], writes: [] as number[], afterAnswer: [] as number[], missing: 0 },
  ];
  const watching = new Map<(typeof pairs)[number], Watcher>();
  for (const pair of pairs) {
    const watch = await watcher(serverUrl(pair.to), 1);
    watchers.push(watch);
    watching.set(pair, watch);
  }
  // Pauses of 20-80 ms, so writes do not fall into step with SQLite's 100 ms poll.
  const pauseMs = () => 20 + Math.random() * 60;
  for (let done = 0; done < PROPAGATION_WRITES; done += PROPAGATION_BATCH) {
    for (const pair of pairs) {
      const batch = await deliveryTimes(serverUrl(pair.from), watching.get(pair)!, { count: Math.min(PROPAGATION_BATCH, PROPAGATION_WRITES - done), pauseMs });
      pair.delays.push(...batch.delays);
      pair.writes.push(...batch.writes);
      pair.afterAnswer.push(...batch.afterAnswer);
      pair.missing += batch.missing;
    }
  }

  console.log(
    `\n3. A write (CreateProject) through one server reaching the other's Watch stream, ${PROPAGATION_WRITES} writes per engine ` +
      `one at a time, in batches of ${PROPAGATION_BATCH} taken in turns; ms from the start of the call`,
  );
  console.log(`  ${"".padEnd(24)}     p50      p99      max   write call p50   after its answer: p50    p99`);
  for (const pair of pairs) {
    console.log(
      `  ${pair.name.padEnd(24)} ${fixed(percentileOf(pair.delays, 50), 1, 7)}  ${fixed(percentileOf(pair.delays, 99), 1, 7)}  ${fixed(Math.max(...pair.delays), 1, 7)}` +
        `  ${fixed(percentileOf(pair.writes, 50), 1, 15)}  ${fixed(percentileOf(pair.afterAnswer, 50), 1, 22)}  ${fixed(percentileOf(pair.afterAnswer, 99), 1, 6)}` +
        (pair.missing ? `  ${pair.missing} writes NEVER ARRIVED` : ""),
    );
  }
  const [postgres, sqlite] = pairs as [(typeof pairs)[number], (typeof pairs)[number]];
  console.log(
    `  PostgreSQL/SQLite: p50 ${ratio(percentileOf(postgres.delays, 50), percentileOf(sqlite.delays, 50))}, ` +
      `p99 ${ratio(percentileOf(postgres.delays, 99), percentileOf(sqlite.delays, 99))} (LISTEN/NOTIFY wakes B at A's commit; SQLite's follower polls data_version every 100 ms)`,
  );
}

// --- PostgreSQL ------------------------------------------------------------------------------

interface ScratchDatabase {
  name: string;
  /** A URL for the server that selects `schema` (created now) in this database. */
  schema(schema: string): Promise<string>;
  /** Process ids of this database's backends (every connection the servers hold to it). */
  backendPids(): Promise<number[]>;
  drop(): Promise<void>;
}

/** A database of this run's own on ADMIN_URL's server, or why there is none. */
async function scratchDatabase(): Promise<ScratchDatabase | string> {
  // The creation time in the name lets a later run drop what a killed run left behind.
  const name = `clusterplane_bench_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString("hex")}`;
  try {
    await dropAbandoned();
    await admin(ADMIN_URL, `CREATE DATABASE ${name}`);
  } catch (error) {
    return `PostgreSQL is not reachable at ${ADMIN_URL} (${(error as Error).message}); set BENCH_POSTGRES=postgres://user@host:5432/db`;
  }
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    async schema(schema) {
      await admin(url.toString(), `CREATE SCHEMA ${schema}`);
      const withSchema = new URL(url);
      withSchema.searchParams.set("options", `-c search_path=${schema}`);
      return withSchema.toString();
    },
    async backendPids() {
      const { rows } = await admin(ADMIN_URL, `SELECT pid FROM pg_stat_activity WHERE datname = '${name}'`);
      return rows.map((row: { pid: number }) => row.pid);
    },
    // FORCE: a server still shutting down must not keep the database.
    drop: async () => {
      await admin(ADMIN_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** Bench databases older than a day: their run was killed before it could drop them. */
async function dropAbandoned(): Promise<void> {
  const { rows } = await admin(ADMIN_URL, "SELECT datname FROM pg_database WHERE datname LIKE 'clusterplane\\_bench\\_%'");
  const dayAgo = Date.now() / 1000 - 86_400;
  for (const { datname } of rows as { datname: string }[]) {
    if (Number(/^clusterplane_bench_(\d+)_/.exec(datname)?.[1] ?? 0) < dayAgo) await admin(ADMIN_URL, `DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
  }
}

async function admin(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

// --- Helpers ---------------------------------------------------------------------------------

function serverUrl(server: Server): string {
  return `http://127.0.0.1:${server.port}`;
}

function selectClient(server: Server) {
  return createClient(ExecutionClusterLabelService, createGrpcTransport({ baseUrl: serverUrl(server) }));
}

function ratio(value: number, baseline: number): string {
  return `${(value / baseline).toFixed(2)}x`;
}
