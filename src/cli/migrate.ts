import type { ServeFlags } from "../server/config.js";
import { MIGRATIONS } from "../store/migrations.js";
import { openDatabase, schemaVersion } from "../store/database.js";
import { redactUrl } from "../store/location.js";
import { configOrRefuse } from "./serve.js";

/**
 * `clusterplane migrate --db PATH|URL`: applies every pending migration and exits, so that an init
 * container (or an operator before a rolling update) migrates once, before any replica starts.
 * Servers migrate on start as well; replicas starting together wait for each other (see
 * `Engine.whileMigrating`), so this is an option, never a requirement.
 */
export async function migrate(flags: ServeFlags): Promise<void> {
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
