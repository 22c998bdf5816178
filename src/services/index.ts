import type { ConnectRouter } from "@connectrpc/connect";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import type { Stores } from "../store/stores.js";
import { clusterPoolService } from "./cluster-pool-service.js";
import { clusterService } from "./cluster-service.js";
import { queueService } from "./queue-service.js";

/** The clusterplane.v1 services, in the order reflection lists them. */
export const CLUSTERPLANE_SERVICES = [
  ClusterPoolService,
  ClusterService,
  QueueService,
  ExecutionClusterLabelService,
  ProjectService,
] as const;

/**
 * Registers every clusterplane.v1 service on `router`. Services whose issue has not landed yet are
 * registered without methods, so every RPC of the contract exists and answers UNIMPLEMENTED.
 */
export function registerServices(router: ConnectRouter, stores: Stores): void {
  router.service(ClusterPoolService, clusterPoolService(stores.pools));
  router.service(ClusterService, clusterService(stores.clusters));
  router.service(QueueService, queueService(stores.queues));
  router.service(ExecutionClusterLabelService, {});
  router.service(ProjectService, {});
}
