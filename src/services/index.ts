import type { ConnectRouter } from "@connectrpc/connect";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { DEFAULT_CREDENTIAL_DIRECTORIES } from "../core/cluster.js";
import { DEFAULT_PROVISIONING, type NamespaceSpec } from "../core/desired-state.js";
import type { RoutingIndex } from "../routing/routing-index.js";
import type { Stores } from "../store/stores.js";
import { clusterPoolService } from "./cluster-pool-service.js";
import { clusterService } from "./cluster-service.js";
import { executionClusterLabelService } from "./execution-cluster-label-service.js";
import { projectService } from "./project-service.js";
import { queueService } from "./queue-service.js";

/** The clusterplane.v1 services, in the order reflection lists them. */
export const CLUSTERPLANE_SERVICES = [
  ClusterPoolService,
  ClusterService,
  QueueService,
  ExecutionClusterLabelService,
  ProjectService,
] as const;

export interface ServiceOptions {
  /** How project-domains become namespaces; project ids are checked against it. */
  namespaces?: NamespaceSpec;
  /** The only directories cluster credential files may name. */
  credentialDirectories?: readonly string[];
}

/** Registers every clusterplane.v1 service on `router`. */
export function registerServices(router: ConnectRouter, stores: Stores, routing: RoutingIndex, options: ServiceOptions = {}): void {
  const namespaces = options.namespaces ?? DEFAULT_PROVISIONING;
  const credentialDirectories = options.credentialDirectories ?? DEFAULT_CREDENTIAL_DIRECTORIES;
  router.service(ClusterPoolService, clusterPoolService(stores.pools));
  router.service(ClusterService, clusterService(stores.clusters, credentialDirectories));
  router.service(QueueService, queueService(stores.queues));
  router.service(ExecutionClusterLabelService, executionClusterLabelService(stores, routing));
  router.service(ProjectService, projectService(stores.projects, stores.domains, namespaces));
}
