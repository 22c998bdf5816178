import { DomainError } from "../core/errors.js";
import { redactUrl } from "../store/location.js";
import { resolveServerConfig, type ServeFlags } from "../server/config.js";
import { createLogger, type Logger } from "../server/logging.js";
import { shutDown, startServer, type ServerConfig } from "../server/server.js";
import { isWorker, serveWithWorkers } from "../server/workers.js";

/** `clusterplane serve`: runs the server until SIGTERM or SIGINT, then shuts down gracefully. */
export async function serve(flags: ServeFlags): Promise<void> {
  const config = configOrRefuse(flags);
  if (!config) return;
  const logger = createLogger(config.logLevel);
  // A worker serves as its primary decided, even should its own reading of the settings differ.
  if ((config.workers ?? 1) > 1 || isWorker) {
    return serveWithWorkers(config, logger, {
      explainStartFailure: (error) => explainStartFailure(error, config),
      announce: (url, fields) => announce(logger, config, url, fields),
    });
  }
  let server;
  try {
    server = await startServer(config, logger);
  } catch (error) {
    const problem = explainStartFailure(error, config);
    if (problem === undefined) throw error;
    process.stderr.write(`clusterplane: ${problem}\n`);
    process.exitCode = 2;
    return;
  }
  if (!config.sync?.enabled) logger.info({}, "cluster sync is off in this process");
  announce(logger, config, server.url, {});
  const stop = (signal: string) => void shutDown(server, logger, { signal });
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

/** The start-up line: where the server listens and how callers reach it. */
function announce(logger: Logger, config: ServerConfig, url: string, fields: Record<string, unknown>): void {
  logger.info(
    { url, database: redactUrl(config.databasePath), auth: describeAuth(config), cors: config.cors?.allowedOrigins ?? [], ...fields },
    `clusterplane listening on ${url} (gRPC, gRPC-Web and Connect)`,
  );
}

/**
 * Why the server could not start, for the operator (exit 2): the port cannot be opened, or a
 * setting cannot be served (the open-bind rule, unusable tokens or TLS files). Undefined for
 * anything else, which is a bug.
 */
function explainStartFailure(error: unknown, config: ServerConfig): string | undefined {
  const listenProblem = explainListenFailure(error, config);
  if (listenProblem) return listenProblem;
  return error instanceof DomainError ? `bad configuration: ${error.message}` : undefined;
}

/**
 * Why the port could not be opened, in terms of the settings that choose it; undefined for any
 * other failure. These are the operator's to fix (exit 2), not crashes to show a stack for.
 */
function explainListenFailure(error: unknown, config: Pick<ServerConfig, "host" | "port">): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `${config.host.includes(":") ? `[${config.host}]` : config.host}:${config.port}`;
  const choosePort = "choose another with --port N (CLUSTERPLANE_PORT, server.port; --port 0 picks a free one)";
  switch (code) {
    case "EADDRINUSE":
      return `port ${config.port} is already in use on ${config.host} (another clusterplane, or another program, listens on ${where}): stop it, or ${choosePort}`;
    case "EACCES":
      return `not allowed to listen on port ${config.port} (${where}): ports below 1024 need privileges; ${choosePort}`;
    case "EADDRNOTAVAIL":
      return `cannot listen on ${config.host}: it is not an address of this machine; choose another with --host ADDRESS (CLUSTERPLANE_HOST, server.host)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot listen on ${config.host}: the name does not resolve; choose another with --host ADDRESS (CLUSTERPLANE_HOST, server.host)`;
    default:
      return undefined;
  }
}

/** A configuration error ends the command with its message and exit code 2; anything else is a bug. */
function refuse(error: unknown): void {
  if (!(error instanceof DomainError)) throw error;
  process.stderr.write(`clusterplane: bad configuration: ${error.message}\n`);
  process.exitCode = 2;
}

/** The server configuration, or undefined after refusing a bad one. */
export function configOrRefuse(flags: ServeFlags): ServerConfig | undefined {
  try {
    return resolveServerConfig(flags);
  } catch (error) {
    refuse(error);
    return undefined;
  }
}

/** For the start-up line: how callers authenticate (never the credentials). */
function describeAuth(config: ServerConfig): string {
  const ways = [];
  if (config.auth?.tokensFile) ways.push(`bearer tokens from ${config.auth.tokensFile}`);
  if (config.tls?.clientCaFile) ways.push(`client certificates${config.tls.requireClientCertificate ? " (required)" : ""}`);
  return ways.length ? ways.join(" and ") : "off";
}
