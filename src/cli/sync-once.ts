import { statSync } from "node:fs";
import type { ServeFlags } from "../server/config.js";
import { createLogger } from "../server/logging.js";
import { openStores } from "../store/stores.js";
import { isPostgresUrl } from "../store/location.js";
import { SyncLoop } from "../sync/sync-loop.js";
import { configOrRefuse } from "./serve.js";

interface SyncOnceFlags extends ServeFlags {
  full?: boolean;
}

/** `clusterplane sync --once`: one pass over every enabled cluster, a line per cluster, exit 1 on any failure. */
export async function syncOnce(flags: SyncOnceFlags): Promise<void> {
  const config = configOrRefuse(flags);
  if (!config) return;
  const problem = databaseProblem(config.databasePath);
  if (problem) {
    process.stderr.write(`clusterplane: ${problem}\n`);
    process.exitCode = 2;
    return;
  }
  // One pass by hand, beside whichever server leads the loop (it does not take the sync lease):
  // its outcome reaches every server through the change log.
  const stores = await openStores({ path: config.databasePath, ...config.databasePool, domains: config.domains, lockTimeoutMs: config.lockTimeoutMs });
  const loop = new SyncLoop(stores, { ...config.sync!, enabled: true }, createLogger("warn"));
  try {
    const reports = await loop.runOnce(flags.full ?? false);
    for (const report of reports) {
      const outcome = report.ok ? "ok" : `FAILED  ${report.error}`;
      process.stdout.write(
        `${report.cluster}\tapplied ${report.applied}\tunchanged ${report.unchanged}\tfailed ${report.failed}\t${report.durationMs} ms\t${outcome}\n`,
      );
    }
    if (reports.length === 0) process.stdout.write("no enabled clusters to sync\n");
    if (reports.some((report) => !report.ok)) process.exitCode = 1;
  } finally {
    await loop.stop();
    await stores.engine.close();
  }
}

/**
 * Opening a path that does not exist would create an empty database and sync nothing, exit 0: a
 * mistyped --db would look like success. Only the server creates databases.
 */
function databaseProblem(path: string): string | undefined {
  // A PostgreSQL database is never created by opening it; a wrong URL fails to connect.
  if (isPostgresUrl(path)) return undefined;
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    isFile = false;
  }
  if (isFile) return undefined;
  return (
    `no database at ${path}: sync --once works on the database of a server that has run. ` +
    "Point at it with --db PATH (or CLUSTERPLANE_DB); the server names its file in its start-up line (\"database\")."
  );
}
