import { existsSync, realpathSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { Kysely } from "kysely";
import { applyMigrationsIn, DEFAULT_LOCK_TIMEOUT_MS, latestSchemaVersion, openEngine, schemaVersionIn } from "./database.js";
import type { Engine } from "./engine.js";
import { isPostgresUrl, redactUrl, sqlitePath } from "./location.js";
import type { Executor, Tables } from "./schema.js";
import { SqliteEngine } from "./sqlite-engine.js";

/**
 * Copies a whole clusterplane database into an empty one — a SQLite file into PostgreSQL, for a
 * team that outgrew one file — keeping every column value as it is: names, etags (the `version`
 * columns), create and update times, the change log with its revisions, so Watch clients resume
 * and every row's `revision` still names its log entry.
 *
 * The source is read in one read transaction (one snapshot, while a server may go on writing it)
 * and never written; the target is migrated, checked to be empty and filled in one write
 * transaction, so a failure anywhere leaves it as it was.
 *
 * No table has a sequence or identity column on PostgreSQL (the change log's revision is "newest
 * plus one", written explicitly, and `scriptFor` turns SQLite's INTEGER PRIMARY KEY into a plain
 * BIGINT key), so nothing has to be moved past the copied maximum; a test fails should a migration
 * ever add one.
 */

/** How a table's rows reach the target. */
type CopyMode =
  /** Every source row is inserted; the target must have none (that is what "empty" means). */
  | "rows"
  /** The migrations seed the target's rows; the source's replace them. */
  | "replace"
  /** Not copied. */
  | "skip";

interface TablePlan {
  readonly mode: CopyMode;
  /** Why the table is copied (or not), for the reader of this list and of the summary. */
  readonly why: string;
}

/**
 * Every table, in foreign-key order: each comes after the tables it references (objects keep
 * their keys in the order written here). `satisfies Record<keyof Tables, …>` makes a table added
 * to schema.ts without a decision here a compile error.
 */
export const TABLE_PLAN = {
  schema_migrations: { mode: "skip", why: "the target records its own migrations as they are applied to it" },
  cluster_pools: { mode: "rows", why: "the pools operators registered" },
  clusters: { mode: "rows", why: "registered clusters (each names its pool)" },
  queues: { mode: "rows", why: "queues (each names its pool, a managed one its cluster)" },
  projects: { mode: "rows", why: "projects and whether they are archived" },
  cluster_labels: { mode: "rows", why: "labels" },
  cluster_label_members: { mode: "rows", why: "each label's weighted clusters" },
  execution_cluster_labels: { mode: "rows", why: "assignments (each names its project and label)" },
  default_cluster_labels: { mode: "rows", why: "each organization's default label" },
  sync_applied: { mode: "rows", why: "what each cluster has already: without it the first pass re-applies every object" },
  cluster_sync_status: { mode: "rows", why: "each cluster's last pass and conditions, which routing and GetCluster show" },
  cluster_provisioning: { mode: "rows", why: "provisioning truth: routing sends a project-domain only where its row is" },
  change_log: { mode: "rows", why: "the log with its revisions, so followers and Watch clients resume where they were" },
  change_log_meta: { mode: "replace", why: "how far the log was compacted (the migration seeds a row saying: not at all)" },
  leases: { mode: "skip", why: "a lease belongs to a live process on the source; servers on the target elect their own" },
  join_tokens: { mode: "rows", why: "pull-mode clusters' unused join tokens (digests) stay usable after the move" },
  agent_credentials: { mode: "rows", why: "agents keep their credentials (digests) and need not join again" },
} as const satisfies Record<keyof Tables, TablePlan>;

type TableName = keyof typeof TABLE_PLAN;

/** The tables with `mode`, in copy order. */
function tablesIn(...modes: CopyMode[]): TableName[] {
  return (Object.keys(TABLE_PLAN) as TableName[]).filter((table) => modes.includes(TABLE_PLAN[table].mode));
}

export interface CopyOptions {
  /** The SQLite file to copy (a path or `sqlite:PATH`); it is only read, never created. */
  from: string;
  /** The database to copy into: a `postgres://` URL, or another SQLite file. */
  to: string;
  /** How long to wait for another writer's lock on the target. */
  lockTimeoutMs?: number;
}

export interface CopySummary {
  /** Rows copied, per copied table in copy order. */
  copied: { table: string; rows: number }[];
  /** The tables left out, and why. */
  skipped: { table: string; why: string }[];
  /** The change log's newest revision (0 when nothing was ever written), the same on both sides. */
  revision: number;
  schemaVersion: number;
  /** The target's engine: "postgres" or "sqlite". */
  targetEngine: string;
}

/** Side of a refusal: the database the user has to do something about. Nothing was written. */
export type CopySide = "source" | "target";

/** A copy refused before anything was written, with a sentence saying what to do. */
export class CopyRefused extends Error {
  constructor(
    readonly side: CopySide,
    message: string,
  ) {
    super(message);
    this.name = "CopyRefused";
  }
}

/** Copies the SQLite file `from` into the empty database `to` (see the top of this file). */
export async function copyDatabase(options: CopyOptions): Promise<CopySummary> {
  const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const sourcePath = existingSqliteFile(options.from);
  refuseSameFile(sourcePath, options.to);
  const source = await SqliteEngine.openReadOnly(sourcePath, lockTimeoutMs);
  try {
    const target = await openEngine(options.to, lockTimeoutMs);
    try {
      return await copyBetween(source, target, { source: sourcePath, target: redactUrl(options.to) });
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/**
 * Copies everything `source` holds into `target`, which gets its migrations first; `names` say
 * which databases they are in messages (the target's with its password starred). The source is a
 * SQLite engine: its rows are streamed, which PostgreSQL's driver would do only with pg-cursor.
 */
export async function copyBetween(source: Engine, target: Engine, names: { source: string; target: string }): Promise<CopySummary> {
  const latest = latestSchemaVersion();
  return source.readTransaction(async (from) => {
    await requireSourceVersion(from, names.source, latest);
    // Replicas starting on the target meanwhile wait for the migration lock, then find it filled.
    return target.whileMigrating(() =>
      target.writeTransaction(async (to) => {
        await applyMigrationsIn(target, to);
        await requireTargetVersion(to, names.target, latest);
        await requireEmpty(to, names.target);
        const copied = [];
        for (const table of tablesIn("rows", "replace")) copied.push({ table, rows: await copyTable(from, to, table) });
        await verifyCounts(from, to, copied);
        return {
          copied,
          skipped: tablesIn("skip").map((table) => ({ table, why: TABLE_PLAN[table].why })),
          revision: await newestRevision(to),
          schemaVersion: latest,
          targetEngine: target.name,
        };
      }),
    );
  });
}

/** The path of the SQLite file `location` names, refused unless it exists: the source is never created. */
function existingSqliteFile(location: string): string {
  if (isPostgresUrl(location)) {
    throw new CopyRefused("source", `the source must be a SQLite file; ${redactUrl(location)} is a PostgreSQL URL`);
  }
  const path = sqlitePath(location);
  if (path === ":memory:" || !existsSync(path)) {
    throw new CopyRefused("source", `${path}: no such file (the source database must exist; check the path)`);
  }
  if (statSync(path).isDirectory()) throw new CopyRefused("source", `${path} is a directory, not a SQLite database file`);
  return path;
}

/** Copying a file into itself would only ever be refused as "not empty"; say what is wrong instead. */
function refuseSameFile(sourcePath: string, to: string): void {
  if (isPostgresUrl(to)) return;
  const targetPath = sqlitePath(to);
  if (existsSync(targetPath) && realpathSync(targetPath) === realpathSync(sourcePath)) {
    throw new CopyRefused("target", `the target ${resolve(targetPath)} is the source file itself; name another database to copy into`);
  }
}

/** The source must be at exactly this binary's schema: the copy writes the columns this version knows. */
async function requireSourceVersion(from: Executor, name: string, latest: number): Promise<void> {
  const version = await sourceSchemaVersion(from, name);
  if (version < latest) {
    throw new CopyRefused(
      "source",
      `${name} is at schema version ${version}, older than this clusterplane's ${latest}: ` +
        `run \`clusterplane migrate --db ${name}\` first (it upgrades the file in place), then copy it`,
    );
  }
  if (version > latest) {
    throw new CopyRefused(
      "source",
      `${name} is at schema version ${version}, newer than this clusterplane's ${latest}: ` +
        `upgrade clusterplane to the version that wrote it, then copy it`,
    );
  }
}

/** The source's schema version; refused when it is no clusterplane database at all. */
async function sourceSchemaVersion(from: Executor, name: string): Promise<number> {
  let tables: string[];
  try {
    tables = (await from.introspection.getTables()).map((table) => table.name);
  } catch (error) {
    throw new CopyRefused("source", `${name} cannot be read as a SQLite database: ${(error as Error).message}`);
  }
  if (!tables.includes("schema_migrations")) {
    throw new CopyRefused("source", `${name} is not a clusterplane database (it has no schema_migrations table)`);
  }
  return schemaVersionIn(from);
}

/** A target a newer clusterplane migrated has columns this one would leave empty. */
async function requireTargetVersion(to: Executor, name: string, latest: number): Promise<void> {
  const version = await schemaVersionIn(to);
  if (version > latest) {
    throw new CopyRefused("target", `${name} is at schema version ${version}, newer than this clusterplane's ${latest}: upgrade clusterplane`);
  }
}

/** Refuses a target that holds any row the copy would insert: merging two histories is not a copy. */
async function requireEmpty(to: Executor, name: string): Promise<void> {
  const occupied = [];
  for (const table of tablesIn("rows")) {
    const rows = await countRows(to, table);
    if (rows > 0) occupied.push(`${table} has ${rows} row${rows === 1 ? "" : "s"}`);
  }
  if (occupied.length > 0) {
    throw new CopyRefused("target", `${name} is not empty (${occupied.join(", ")}): copy only into an empty database; nothing was changed`);
  }
}

/** Keeps one INSERT well below both engines' limits on bound parameters (SQLite 32 766, PostgreSQL 65 535). */
const PARAMETERS_PER_INSERT = 10_000;

type Row = Record<string, unknown>;

/** Copies one table's rows as they are, a batch per INSERT; returns how many. */
async function copyTable(from: Executor, to: Executor, table: TableName): Promise<number> {
  try {
    // The seeded rows go first; in an empty target that is all a "replace" table holds.
    if (TABLE_PLAN[table].mode === "replace") await anyTable(to).deleteFrom(table).execute();
    let batch: Row[] = [];
    let copied = 0;
    // Streamed: the change log may hold far more rows than are worth holding in memory at once.
    for await (const row of anyTable(from).selectFrom(table).selectAll().stream()) {
      batch.push(row);
      if (batch.length >= rowsPerInsert(row)) {
        copied += await insertRows(to, table, batch);
        batch = [];
      }
    }
    return copied + (await insertRows(to, table, batch));
  } catch (error) {
    // The driver's message alone ("invalid input syntax for type bigint") does not say where.
    throw new Error(`copying ${table}: ${(error as Error).message}`, { cause: error });
  }
}

function rowsPerInsert(row: Row): number {
  return Math.max(1, Math.floor(PARAMETERS_PER_INSERT / Math.max(1, Object.keys(row).length)));
}

async function insertRows(to: Executor, table: TableName, rows: Row[]): Promise<number> {
  if (rows.length === 0) return 0;
  // Values are bound parameters: nothing read from the source ever becomes SQL text.
  await anyTable(to).insertInto(table).values(rows).execute();
  return rows.length;
}

/** Proves the target holds, table by table, as many rows as the source's snapshot: else nothing is committed. */
async function verifyCounts(from: Executor, to: Executor, copied: { table: string; rows: number }[]): Promise<void> {
  for (const { table, rows } of copied) {
    const inSource = await countRows(from, table);
    const inTarget = await countRows(to, table);
    if (inSource !== rows || inTarget !== rows) {
      throw new Error(`verifying ${table}: the source has ${inSource} rows, ${rows} were copied, the target has ${inTarget}; nothing was committed`);
    }
  }
}

async function countRows(db: Executor, table: string): Promise<number> {
  const row = await anyTable(db)
    .selectFrom(table)
    .select((eb) => eb.fn.countAll().as("rows"))
    .executeTakeFirstOrThrow();
  return Number(row.rows);
}

async function newestRevision(db: Executor): Promise<number> {
  const row = await db
    .selectFrom("change_log")
    .select((eb) => eb.fn.max("revision").as("revision"))
    .executeTakeFirst();
  return Number(row?.revision ?? 0);
}

/** The query layer over tables named at run time: the copy treats every row as a plain record. */
function anyTable(db: Executor): Kysely<Record<string, Row>> {
  return db as unknown as Kysely<Record<string, Row>>;
}
