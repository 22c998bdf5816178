import type { ConnectRouter } from "@connectrpc/connect";
import type { DescFile } from "@bufbuild/protobuf";
import { file_clusterplane_v1_cluster_pool } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { file_clusterplane_v1_cluster } from "../../gen/clusterplane/v1/cluster_pb.js";
import { file_clusterplane_v1_queue } from "../../gen/clusterplane/v1/queue_pb.js";
import { file_clusterplane_v1_project } from "../../gen/clusterplane/v1/project_pb.js";
import { file_clusterplane_v1_execution_cluster_label } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { file_health_v1_health, Health } from "../../gen/health/v1/health_pb.js";
import { file_clusterplane_v1_watch, WatchService } from "../../gen/clusterplane/v1/watch_pb.js";
import { AgentService, file_clusterplane_v1_agent } from "../../gen/clusterplane/v1/agent_pb.js";
import { DEFAULT_PROVISIONING } from "../core/desired-state.js";
import { AgentHub, DEFAULT_AGENT_LEASE_GRACE_MS } from "../services/agent-service.js";
import { DesiredStateCache } from "../sync/desired-cache.js";
import { serviceImplementations } from "../services/index.js";
import { RoutingIndex } from "../routing/routing-index.js";
import { openStores, type Stores } from "../store/stores.js";
import type { PoolSettings } from "../store/database.js";
import type { SyncLoop } from "../sync/sync-loop.js";
import { DEFAULT_LEASE_TIMINGS, type LeaseTimings } from "../store/leader-lease.js";
import { DEFAULT_WATCH_OPTIONS, WatchHub, type WatchOptions } from "../services/watch-service.js";
import { loadProvisioning, type SyncSettings } from "../sync/sync-settings.js";
import type { Role } from "../core/roles.js";
import { isSchemaCurrent, schemaVersion } from "../store/database.js";
import { Authenticator, checkExposure, identityKey, isLoopback, requestContext } from "./auth.js";
import { HealthStatus, healthService, ServingStatus } from "./health.js";
import { ConsoleAssets } from "./console-assets.js";
import { httpRoutes, type Readiness } from "./http-routes.js";
import { DEFAULT_RPC_LOG, type Logger, type RpcLogSettings } from "./logging.js";
import { ServerMetrics } from "./metrics.js";
import { LeanGrpc } from "./lean-grpc.js";
import { RpcCalls, rpcInterceptor } from "./rpc-calls.js";
import { InFlightBytes, IN_FLIGHT_REQUESTS_OF_MAX_SIZE } from "./uploads.js";
import { connectHandler } from "./connect-handler.js";
import { guarded } from "./edge.js";
import { DEFAULT_LIMITS, type EdgeLimits } from "./limits.js";
import { OnePortServer } from "./one-port.js";
import { registerReflection } from "./reflection.js";
import { SyncLeadership } from "./sync-leadership.js";
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

/** How this process follows the change log, and how much of it is kept. */
export interface ChangeLogConfig {
  /** How often to look for commits by other processes (one cheap pragma when there are none). */
  followIntervalMs: number;
  /** Entries kept behind the newest; older ones are compacted away. */
  retainEntries: number;
  /** Entries younger than this are kept whatever their number. */
  retainMs: number;
  /** How often to compact. */
  compactIntervalMs: number;
}

export const DEFAULT_CHANGE_LOG_CONFIG: ChangeLogConfig = {
  followIntervalMs: 100,
  retainEntries: 100_000,
  retainMs: 24 * 3_600_000,
  compactIntervalMs: 60_000,
};

export interface ServerConfig {
  /** Address to bind, for example 127.0.0.1 or 0.0.0.0. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** SQLite database file (or ":memory:"), or a `postgres://` URL. */
  databasePath: string;
  /** PostgreSQL only: connections in the pool, and the longest a statement may run. */
  databasePool?: PoolSettings;
  /** How long in-flight calls may take to finish after shutdown begins. */
  shutdownGraceMs: number;
  /** The domains every project is provisioned for; development, staging, production by default. */
  domains?: readonly string[];
  /** The cluster-sync loop; it runs in the one server process that holds the database's sync lease. */
  sync?: SyncSettings;
  /** Timings of the sync lease (which process runs the loop). */
  leaderLease?: LeaseTimings;
  /** Pull-mode agents: the URL they are told to use, and how long one may stay silent. */
  agents?: { controlPlaneUrl?: string; leaseGraceMs?: number };
  /** How long a write waits for another process's write lock before failing with UNAVAILABLE. */
  lockTimeoutMs?: number;
  changeLog?: Partial<ChangeLogConfig>;
  /** Watch stream limits and progress markers. */
  watch?: Partial<Omit<WatchOptions, "callerOf">>;
  auth?: AuthConfig;
  /** Serve TLS (HTTP/2 via ALPN and HTTP/1.1) instead of cleartext. */
  tls?: TlsConfig;
  cors?: CorsConfig;
  metrics?: MetricsConfig;
  /** What one caller may cost before it is authenticated (server.limits); defaults for what is unset. */
  limits?: Partial<EdgeLimits>;
  /** pino level for the server's logger (used by `clusterplane serve`). */
  logLevel?: string;
  /** Which RPCs get a log line (log.rpcCalls, log.slowRpc). */
  rpcLog?: RpcLogSettings;
  /** Server processes sharing the port (server.workers); `clusterplane serve` forks them. */
  workers?: number;
  /** Unary gRPC over HTTP/2 on the lean path (server.leanGrpc, default true); false sends every call through connect-node. */
  leanGrpc?: boolean;
  /** The web console at `/` (on by default); `directory` is the built console (dist/console of the package). */
  console?: { enabled?: boolean; directory?: string };
}

export interface RunningServer {
  host: string;
  port: number;
  /** Base URL for HTTP clients, e.g. http://127.0.0.1:8080 (https:// with TLS). */
  url: string;
  stores: Stores;
  health: HealthStatus;
  metrics: ServerMetrics;
  /** The running sync loop, or null when sync is off or another process leads it. */
  readonly sync: SyncLoop | null;
  /** Who runs the sync loop for this database; null when sync is off. */
  leadership: SyncLeadership | null;
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
  file_clusterplane_v1_watch,
  file_clusterplane_v1_agent,
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
  const stores = await openStores({ path: config.databasePath, ...config.databasePool, domains: config.domains, lockTimeoutMs: config.lockTimeoutMs });
  stores.changes.onListenerError = (error, change) => logger.error({ err: error, change }, "a listener of store changes failed");
  const changeLog = { ...DEFAULT_CHANGE_LOG_CONFIG, ...config.changeLog };
  let routing: RoutingIndex;
  try {
    routing = await RoutingIndex.open(stores, config.sync?.enabled ?? false);
  } catch (error) {
    await stores.engine.close();
    throw error;
  }
  // Every in-memory view follows the log, so writes by other processes reach them here.
  stores.changes.follow(changeLog.followIntervalMs);
  const compaction = setInterval(() => void compactChangeLog(stores, changeLog, logger), changeLog.compactIntervalMs);
  compaction.unref();
  const leadership = config.sync?.enabled
    ? new SyncLeadership(stores, config.sync, config.leaderLease ?? DEFAULT_LEASE_TIMINGS, logger, undefined, config.agents?.leaseGraceMs)
    : null;
  const health = new HealthStatus();
  const watch = new WatchHub(stores, {
    ...DEFAULT_WATCH_OPTIONS,
    ...config.watch,
    callerOf: (context) => context.values.get(identityKey)?.name ?? "anonymous",
  });
  const agentHub = new AgentHub(stores, desiredStateForAgents(stores, config.sync), {
    leaseGraceMs: config.agents?.leaseGraceMs ?? DEFAULT_AGENT_LEASE_GRACE_MS,
  });
  let listeningUrl = "";
  // One implementation of each service, served by connect-node and by the lean gRPC path.
  const services = [
    ...serviceImplementations(stores, routing, {
      namespaces: config.sync?.provisioning,
      credentialDirectories: config.sync?.credentialDirectories,
      controlPlaneUrl: () => config.agents?.controlPlaneUrl ?? listeningUrl,
    }),
    { service: AgentService, impl: agentHub.service() },
    { service: Health, impl: healthService(health) },
  ];
  const routes = (router: ConnectRouter) => {
    for (const { service, impl } of services) router.service(service, impl);
    router.service(WatchService, watch.service());
    registerReflection(router, REFLECTED_FILES);
  };
  const metrics = new ServerMetrics(stores);
  const unsubscribeMetrics = leadership?.onPass((report) => metrics.recordPass(report));

  const limits = { ...DEFAULT_LIMITS, ...config.limits };
  const calls = new RpcCalls(auth, metrics, logger, config.rpcLog ?? DEFAULT_RPC_LOG);
  const inFlight = new InFlightBytes(IN_FLIGHT_REQUESTS_OF_MAX_SIZE * limits.maxRequestBytes);
  const connect = connectHandler({ routes, interceptors: [rpcInterceptor(calls)], contextValues: requestContext, limits, logger, inFlight });
  const loopbackHostsOnly = !auth.enabled && !config.auth?.allowUnauthenticated;
  const lean = config.leanGrpc === false ? undefined : new LeanGrpc({ services, connectPaths: connect.paths, calls, limits, inFlight, loopbackHostsOnly, logger });
  const handler = httpRoutes({
    connect,
    allowedOrigins: config.cors?.allowedOrigins ?? [],
    metrics,
    metricsPublic: config.metrics?.public ?? true,
    auth,
    readiness: () => readiness(stores, health, leadership),
    loopbackHostsOnly,
    console: config.console?.enabled === false ? undefined : new ConsoleAssets(config.console?.directory),
  });
  const transport = new OnePortServer(guarded(handler, logger), limits, tls, lean);
  let address;
  try {
    address = await transport.listen(config.port, config.host);
  } catch (error) {
    tokens?.close();
    stores.changes.unfollow();
    clearInterval(compaction);
    routing.close();
    await stores.engine.close();
    throw error;
  }
  if (!auth.enabled && !isLoopback(config.host)) {
    logger.warn({ host: config.host }, "serving WITHOUT authentication beyond loopback (auth.allowUnauthenticated): anyone who reaches the port is an admin");
  }
  await leadership?.start();
  metrics.leadsSync = () => leadership?.isLeader ?? false;
  logger.info(
    { revision: stores.changes.appliedRevision, syncLeader: leadership ? leadership.leader || null : null, thisProcess: leadership?.identity ?? null },
    leadership
      ? leadership.isLeader ? "this process leads the cluster-sync loop" : `the cluster-sync loop is led by ${leadership.leader || "nobody yet"}; this process serves the API and follows`
      : "the cluster-sync loop is off in this process",
  );
  const host = address.address.includes(":") ? `[${address.address}]` : address.address;
  listeningUrl = `${tls ? "https" : "http"}://${host}:${address.port}`;
  let closing: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    url: `${tls ? "https" : "http"}://${host}:${address.port}`,
    stores,
    health,
    metrics,
    get sync() {
      return leadership?.sync ?? null;
    },
    leadership,
    close() {
      closing ??= (async () => {
        health.shutdown();
        watch.close();
        agentHub.close();
        await transport.close(config.shutdownGraceMs);
        await leadership?.stop();
        unsubscribeMetrics?.();
        tokens?.close();
        stores.changes.unfollow();
        clearInterval(compaction);
        routing.close();
        await stores.engine.close();
      })();
      return closing;
    },
  };
}

/**
 * Graceful shutdown with its log lines, for `serve` and each of its workers: what began and why,
 * then that the database is closed, or why shutdown failed (exit code 1).
 */
export function shutDown(server: RunningServer, logger: Logger, why: Record<string, unknown>): Promise<void> {
  logger.info(why, "shutting down: finishing in-flight calls");
  return server.close().then(
    () => logger.info("stopped; database closed"),
    (error: unknown) => {
      logger.error({ err: error }, "shutdown failed");
      process.exitCode = 1;
    },
  );
}

/**
 * What pull-mode agents are given: the same provisioning spec the push loop applies (read once at
 * start; the push loop also follows the templates directory), recomputed when projects change.
 */
function desiredStateForAgents(stores: Stores, sync: SyncSettings | undefined): DesiredStateCache {
  const desired = new DesiredStateCache(stores.projects, stores.domains);
  desired.useSpec(sync ? loadProvisioning(sync) : DEFAULT_PROVISIONING);
  stores.changes.subscribe((change) => {
    if (change.kind === "project") desired.invalidate();
  });
  return desired;
}

/** Compaction is housekeeping: a failure (the lock was busy) is retried at the next interval. */
async function compactChangeLog(stores: Stores, config: ChangeLogConfig, logger: Logger): Promise<void> {
  try {
    const removed = await stores.changes.compact({ maxEntries: config.retainEntries, maxAgeMs: config.retainMs });
    if (removed > 0) logger.debug({ removed, oldestResumable: await stores.changes.oldestResumable() }, "change log compacted");
  } catch (error) {
    logger.warn({ err: error }, "cannot compact the change log now; retrying at the next interval");
  }
}

/**
 * `/readyz`: the database answers, every migration is applied, and shutdown has not begun. It
 * also says who runs the sync loop (informational: a follower is as ready as the leader).
 */
async function readiness(stores: Stores, health: HealthStatus, leadership: SyncLeadership | null): Promise<Readiness> {
  const checks: Record<string, string> = {};
  let ready = true;
  try {
    // Reading the schema version is the database answering.
    const version = await schemaVersion(stores.engine);
    checks.database = "open";
    const current = await isSchemaCurrent(stores.engine);
    checks.migrations = `${current ? "applied" : "pending"} (schema version ${version})`;
    ready &&= current;
  } catch (error) {
    checks.database = `unavailable: ${(error as Error).message}`;
    checks.migrations = "unknown";
    ready = false;
  }
  checks.syncLeader = !leadership
    ? "sync is off"
    : leadership.isLeader
      ? `this process (${leadership.identity})`
      : `${leadership.leader || "nobody yet"} (this process is ${leadership.identity})`;
  checks.changeLog = `revision ${stores.changes.appliedRevision}`;
  const serving = health.get("") === ServingStatus.SERVING;
  checks.serving = serving ? "serving" : "shutting down";
  return { ready: ready && serving, checks };
}
