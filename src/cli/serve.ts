import { DomainError } from "../core/errors.js";
import { resolveServerConfig, type ServeFlags } from "../server/config.js";
import { createLogger } from "../server/logging.js";
import { startServer } from "../server/server.js";

/** `clusterplane serve`: runs the server until SIGTERM or SIGINT, then shuts down gracefully. */
export async function serve(flags: ServeFlags): Promise<void> {
  const logger = createLogger();
  let config;
  try {
    config = resolveServerConfig(flags);
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    process.stderr.write(`clusterplane: bad configuration: ${error.message}\n`);
    process.exitCode = 2;
    return;
  }
  const server = await startServer(config, logger);
  if (!config.sync?.enabled) logger.info({}, "cluster sync is off in this process");
  logger.info(
    { url: server.url, database: config.databasePath },
    `clusterplane listening on ${server.url} (gRPC, gRPC-Web and Connect)`,
  );
  const stop = (signal: string) => {
    logger.info({ signal }, "shutting down: finishing in-flight calls");
    server.close().then(
      () => logger.info("stopped; database closed"),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exitCode = 1;
      },
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
