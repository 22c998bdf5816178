import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
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
  /** The URL pull-mode agents are told to connect to; the server's own by default. */
  controlPlaneUrl?: () => string;
}

/** A service and its implementation, for any transport to serve. */
export interface ServiceImplementation<S extends DescService = DescService> {
  service: S;
  impl: ServiceImpl<S>;
}

function implementation<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceImplementation {
  return { service, impl } as unknown as ServiceImplementation;
}

/** Every clusterplane.v1 service, implemented over `stores` and `routing`. */
export function serviceImplementations(stores: Stores, routing: RoutingIndex, options: ServiceOptions = {}): ServiceImplementation[] {
  const namespaces = options.namespaces ?? DEFAULT_PROVISIONING;
  const credentialDirectories = options.credentialDirectories ?? DEFAULT_CREDENTIAL_DIRECTORIES;
  return [
    implementation(ClusterPoolService, clusterPoolService(stores.pools)),
    implementation(ClusterService, clusterService(stores.clusters, credentialDirectories, {
      agents: stores.agents,
      controlPlaneUrl: options.controlPlaneUrl ?? (() => "http://127.0.0.1:8080"),
      inOneWrite: (work) => stores.changes.write(work),
    })),
    implementation(QueueService, queueService(stores.queues)),
    implementation(ExecutionClusterLabelService, executionClusterLabelService(stores, routing)),
    implementation(ProjectService, projectService(stores.projects, stores.domains, namespaces)),
  ];
}

/** Registers every clusterplane.v1 service on `router`. */
export function registerServices(router: ConnectRouter, stores: Stores, routing: RoutingIndex, options: ServiceOptions = {}): void {
  for (const { service, impl } of serviceImplementations(stores, routing, options)) router.service(service, impl);
}
