import type { ServeFlags } from "../server/config.js";
import type { CopySummary } from "../store/copy-database.js";
import { MIGRATIONS } from "../store/migrations.js";
import { openDatabase, schemaVersion } from "../store/database.js";
import { redactUrl } from "../store/location.js";
import { CliError, EXIT } from "./exit.js";
import { configOrRefuse } from "./serve.js";

export interface MigrateFlags extends ServeFlags {
  /** `--from FILE`: the SQLite file to copy. */
  from?: string;
  /** `--to URL`: the empty database to copy it into. */
  to?: string;
}

/**
 * `clusterplane migrate --db PATH|URL`: applies every pending migration and exits, so that an init
 * container (or an operator before a rolling update) migrates once, before any replica starts.
 * Servers migrate on start as well; replicas starting together wait for each other (see
 * `Engine.whileMigrating`), so this is an option, never a requirement.
 *
 * `clusterplane migrate --from FILE --to URL` copies a SQLite database into an empty PostgreSQL one
 * (see `copyDatabase`).
 */
export async function migrate(flags: MigrateFlags): Promise<void> {
  if (flags.from !== undefined || flags.to !== undefined) return copy(flags);
  const config = configOrRefuse(flags);
  if (!config) return;
  const before = Date.now();
  const engine = await openDatabase(config.databasePath, MIGRATIONS, config.lockTimeoutMs, config.databasePool);
  try {
    const version = await schemaVersion(engine);
    process.stdout.write(`${redactUrl(config.databasePath)}: schema at version ${version} (${engine.name}, ${Date.now() - before} ms)\n`);
  } finally {
    await engine.close();
  }
}

/** The copy: both locations come from the flags alone, never from the server's settings. */
async function copy(flags: MigrateFlags): Promise<void> {
  const { from, to } = copyLocations(flags);
  // Loaded only for a copy: `migrate --db` in an init container stays as lean as it was.
  const { copyDatabase, CopyRefused } = await import("../store/copy-database.js");
  const before = Date.now();
  let summary: CopySummary;
  try {
    summary = await copyDatabase({ from, to });
  } catch (error) {
    // A refused source is the operator's file to fix (as a bad local file is, exit 2); a refused
    // target or a failed copy is exit 1. Either way the target was rolled back to what it was.
    if (error instanceof CopyRefused) throw new CliError(error.message, error.side === "source" ? EXIT.USAGE : EXIT.REJECTED);
    throw new CliError(`the copy failed and was rolled back (${redactUrl(to)} is as it was): ${(error as Error).message}`, EXIT.REJECTED);
  }
  process.stdout.write(describeCopy(summary, from, to, Date.now() - before));
}

/** `--from` and `--to`, or a usage error saying how the flags combine. */
function copyLocations(flags: MigrateFlags): { from: string; to: string } {
  if (flags.db !== undefined || flags.config !== undefined) {
    throw new CliError(
      `${flags.db !== undefined ? "--db" : "--config"} does not go with --from/--to: ` +
        "`migrate --db PATH|URL` migrates one database, `migrate --from FILE --to URL` copies a SQLite file into an empty database",
    );
  }
  if (!flags.from || !flags.to) {
    throw new CliError(`${flags.from ? "--to" : "--from"} is missing: a copy needs both, as in clusterplane migrate --from clusterplane.db --to postgres://user@host:5432/name`);
  }
  return { from: flags.from, to: flags.to };
}

/** What was copied, table by table, for the operator to compare with what they expected. */
function describeCopy(summary: CopySummary, from: string, to: string, ms: number): string {
  const width = Math.max(...summary.copied.map(({ table }) => table.length)) + 1;
  return [
    `copied ${from} into ${redactUrl(to)} (${summary.targetEngine}, schema version ${summary.schemaVersion}, ${ms} ms); rows per table:`,
    ...summary.copied.map(({ table, rows }) => `  ${`${table}:`.padEnd(width)} ${rows}`),
    // Why each is left out is in docs/cli.md; the names are enough to tell the rows are not lost.
    `not copied: ${summary.skipped.map(({ table }) => table).join(", ")}`,
    `change log at revision ${summary.revision}`,
    "",
  ].join("\n");
}
