import { connectNodeAdapter } from "@connectrpc/connect-node";
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
import type { ClusterPoolConfig } from "../core/cluster-pool.js";
import { HealthStatus, registerHealth } from "./health.js";
import { loggingInterceptor, type Logger } from "./logging.js";
import { OnePortServer } from "./one-port.js";
import { registerReflection } from "./reflection.js";

export interface ServerConfig {
  /** Address to bind, for example 127.0.0.1 or 0.0.0.0. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** SQLite database file, or ":memory:". */
  databasePath: string;
  /** How long in-flight calls may take to finish after shutdown begins. */
  shutdownGraceMs: number;
  /** Contract given to each organization's default pool when it is provisioned. */
  defaultPoolConfig?: ClusterPoolConfig;
  /** The domains every project is provisioned for; development, staging, production by default. */
  domains?: readonly string[];
  /** The cluster-sync loop; it runs in the server process unless disabled. */
  sync?: SyncSettings;
}

export interface RunningServer {
  host: string;
  port: number;
  /** Base URL for HTTP clients, e.g. http://127.0.0.1:8080. */
  url: string;
  stores: Stores;
  health: HealthStatus;
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

export async function startServer(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  const stores = openStores({
    path: config.databasePath,
    defaultPoolConfig: config.defaultPoolConfig,
    domains: config.domains,
  });
  const routing = new RoutingIndex(stores);
  const sync = config.sync?.enabled ? new SyncLoop(stores, config.sync, logger) : null;
  const health = new HealthStatus();
  const routes = (router: ConnectRouter) => {
    registerServices(router, stores, routing);
    registerReflection(router, REFLECTED_FILES);
    registerHealth(router, health);
  };
  const handler = connectNodeAdapter({
    routes,
    interceptors: [loggingInterceptor(logger), domainErrors],
  });
  const transport = new OnePortServer(handler);
  let address;
  try {
    address = await transport.listen(config.port, config.host);
  } catch (error) {
    routing.close();
    stores.db.close();
    throw error;
  }
  sync?.start();
  const host = address.address.includes(":") ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    url: `http://${host}:${address.port}`,
    stores,
    health,
    sync,
    close() {
      closing ??= (async () => {
        health.shutdown();
        await transport.close(config.shutdownGraceMs);
        await sync?.stop();
        routing.close();
        stores.db.close();
      })();
      return closing;
    },
  };
}
