import type { ConnectRouter } from "@connectrpc/connect";
import type { DescFile } from "@bufbuild/protobuf";
import { file_clusterplane_v1_cluster_pool } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { file_clusterplane_v1_cluster } from "../../gen/clusterplane/v1/cluster_pb.js";
import { file_clusterplane_v1_queue } from "../../gen/clusterplane/v1/queue_pb.js";
import { file_clusterplane_v1_project } from "../../gen/clusterplane/v1/project_pb.js";
import { file_clusterplane_v1_execution_cluster_label } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { file_health_v1_health } from "../../gen/health/v1/health_pb.js";
import { domainErrors } from "../services/errors.js";
import { registerServices } from "../services/index.js";
import { RoutingIndex } from "../routing/routing-index.js";
import { openStores, type Stores } from "../store/stores.js";
import { SyncLoop } from "../sync/sync-loop.js";
import type { SyncSettings } from "../sync/sync-settings.js";
import type { Role } from "../core/roles.js";
import { isSchemaCurrent, schemaVersion } from "../store/database.js";
import { authInterceptor, Authenticator, checkExposure, isLoopback, requestContext } from "./auth.js";
import { HealthStatus, registerHealth, ServingStatus } from "./health.js";
import { httpRoutes, type Readiness } from "./http-routes.js";
import { loggingInterceptor, type Logger } from "./logging.js";
import { metricsInterceptor, ServerMetrics } from "./metrics.js";
import { connectHandler } from "./connect-handler.js";
import { guarded } from "./edge.js";
import { DEFAULT_LIMITS, type EdgeLimits } from "./limits.js";
import { OnePortServer } from "./one-port.js";
import { registerReflection } from "./reflection.js";
import { readTlsFiles } from "./tls-files.js";
import { TokenFile } from "./tokens.js";

export interface AuthConfig {
  /** Bearer tokens: `<token> <role> <name>` per line; re-read when the file changes. */
  tokensFile?: string;
  /** Listen beyond loopback without any authentication (refused otherwise). */
  allowUnauthenticated?: boolean;
  /** Role of each client certificate, by subject common name (needs tls.clientCaFile). */
  clientCertificates?: Record<string, Role>;
}

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** Ask clients for certificates and accept those this CA signed (mTLS). */
  clientCaFile?: string;
  /** Only a client certificate authenticates; bearer tokens are not accepted. */
  requireClientCertificate?: boolean;
}

export interface CorsConfig {
  /** Browser origins allowed to call the API, e.g. https://console.example.com. */
  allowedOrigins: string[];
}

export interface MetricsConfig {
  /** `/metrics` without credentials (the default), or with the same credentials as the API. */
  public: boolean;
}


/** How often routing re-reads clusters, for sync status written by other processes. */
const ROUTING_REFRESH_MS = 5_000;
export interface ServerConfig {
  /** Address to bind, for example 127.0.0.1 or 0.0.0.0. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** SQLite database file, or ":memory:". */
  databasePath: string;
  /** How long in-flight calls may take to finish after shutdown begins. */
  shutdownGraceMs: number;
  /** The domains every project is provisioned for; development, staging, production by default. */
  domains?: readonly string[];
  /** The cluster-sync loop; it runs in the server process unless disabled. */
  sync?: SyncSettings;
  auth?: AuthConfig;
  /** Serve TLS (HTTP/2 via ALPN and HTTP/1.1) instead of cleartext. */
  tls?: TlsConfig;
  cors?: CorsConfig;
  metrics?: MetricsConfig;
  /** What one caller may cost before it is authenticated (server.limits); defaults for what is unset. */
  limits?: Partial<EdgeLimits>;
  /** pino level for the server's logger (used by `clusterplane serve`). */
  logLevel?: string;
}

export interface RunningServer {
  host: string;
  port: number;
  /** Base URL for HTTP clients, e.g. http://127.0.0.1:8080 (https:// with TLS). */
  url: string;
  stores: Stores;
  health: HealthStatus;
  metrics: ServerMetrics;
  /** The running sync loop, or null when sync is off. */
  sync: SyncLoop | null;
  /** Graceful shutdown: stop accepting, finish in-flight calls, close the database. */
  close(): Promise<void>;
}

/** Files whose services reflection lists (their dependencies come along). */
const REFLECTED_FILES: readonly DescFile[] = [
  file_clusterplane_v1_cluster_pool,
  file_clusterplane_v1_cluster,
  file_clusterplane_v1_queue,
  file_clusterplane_v1_execution_cluster_label,
  file_clusterplane_v1_project,
  file_health_v1_health,
];

/**
 * Starts the server. Throws a DomainError naming the setting when the configuration cannot be
 * served safely or its files cannot be used (exposure without auth, tokens file, TLS files).
 */
export async function startServer(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  checkExposure({
    host: config.host,
    tokensFile: config.auth?.tokensFile,
    clientCaFile: config.tls?.clientCaFile,
    allowUnauthenticated: config.auth?.allowUnauthenticated,
  });
  const tls = config.tls ? readTlsFiles(config.tls) : undefined;
  const tokens = config.auth?.tokensFile ? new TokenFile(config.auth.tokensFile, logger) : null;
  const auth = new Authenticator({
    tokens,
    clientCertificates: tls?.clientCa !== undefined,
    requireClientCertificate: config.tls?.requireClientCertificate ?? false,
    certificateRoles: config.auth?.clientCertificates ?? {},
  });
  const stores = openStores({ path: config.databasePath, domains: config.domains });
  stores.changes.onListenerError = (error, change) => logger.error({ err: error, change }, "a listener of store changes failed");
  const routing = new RoutingIndex(stores, config.sync?.enabled ?? false);
  // Sync status written by `clusterplane sync --once` from another process reaches routing here.
  const routingRefresh = setInterval(() => routing.reloadClusters(), ROUTING_REFRESH_MS);
  routingRefresh.unref();
  const sync = config.sync?.enabled ? new SyncLoop(stores, config.sync, logger) : null;
  const health = new HealthStatus();
  const routes = (router: ConnectRouter) => {
    registerServices(router, stores, routing, {
      namespaces: config.sync?.provisioning,
      credentialDirectories: config.sync?.credentialDirectories,
    });
    registerReflection(router, REFLECTED_FILES);
    registerHealth(router, health);
  };
  const metrics = new ServerMetrics(stores);
  const unsubscribeMetrics = sync?.onPass((report) => metrics.recordPass(report));
  const limits = { ...DEFAULT_LIMITS, ...config.limits };
  const connect = connectHandler({
    routes,
    // Outermost first: metrics and logs see every call, including those auth refuses.
    interceptors: [metricsInterceptor(metrics), loggingInterceptor(logger), authInterceptor(auth), domainErrors],
    contextValues: requestContext,
    limits,
    logger,
  });
  const handler = httpRoutes({
    connect,
    allowedOrigins: config.cors?.allowedOrigins ?? [],
    metrics,
    metricsPublic: config.metrics?.public ?? true,
    auth,
    readiness: () => readiness(stores, health),
    loopbackHostsOnly: !auth.enabled && !config.auth?.allowUnauthenticated,
  });
  const transport = new OnePortServer(guarded(handler, logger), limits, tls);
  let address;
  try {
    address = await transport.listen(config.port, config.host);
  } catch (error) {
    tokens?.close();
    clearInterval(routingRefresh);
    routing.close();
    stores.db.close();
    throw error;
  }
  if (!auth.enabled && !isLoopback(config.host)) {
    logger.warn({ host: config.host }, "serving WITHOUT authentication beyond loopback (auth.allowUnauthenticated): anyone who reaches the port is an admin");
  }
  sync?.start();
  const host = address.address.includes(":") ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    url: `${tls ? "https" : "http"}://${host}:${address.port}`,
    stores,
    health,
    metrics,
    sync,
    close() {
      closing ??= (async () => {
        health.shutdown();
        await transport.close(config.shutdownGraceMs);
        await sync?.stop();
        unsubscribeMetrics?.();
        tokens?.close();
        clearInterval(routingRefresh);
        routing.close();
        stores.db.close();
      })();
      return closing;
    },
  };
}

/** `/readyz`: the database answers, every migration is applied, and shutdown has not begun. */
function readiness(stores: Stores, health: HealthStatus): Readiness {
  const checks: Record<string, string> = {};
  let ready = true;
  try {
    stores.db.prepare("SELECT 1").get();
    checks.database = "open";
    const current = isSchemaCurrent(stores.db);
    checks.migrations = `${current ? "applied" : "pending"} (schema version ${schemaVersion(stores.db)})`;
    ready &&= current;
  } catch (error) {
    checks.database = `unavailable: ${(error as Error).message}`;
    checks.migrations = "unknown";
    ready = false;
  }
  const serving = health.get("") === ServingStatus.SERVING;
  checks.serving = serving ? "serving" : "shutting down";
  return { ready: ready && serving, checks };
}
