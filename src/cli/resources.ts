import { create, type DescEnum } from "@bufbuild/protobuf";
import { Option } from "commander";
import {
  ClusterAuthSchema,
  ClusterMode,
  ClusterSchema,
  ClusterState,
  ClusterStateSchema,
  ConditionStatus,
  ConditionStatusSchema,
  SyncHealth,
  type Cluster,
  type ClusterCondition,
} from "../../gen/clusterplane/v1/cluster_pb.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  ClusterPoolConfigSchema,
  ClusterPoolSchema,
  ImageRegistrySchema,
  ObjectStoreRefSchema,
  SecretStoreSchema,
  SecretStoreTypeSchema,
  type ClusterPool,
} from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterLabelSchema, WeightedClusterSchema, type ClusterLabel, type WeightedCluster } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectSchema, ProjectState, ProjectStateSchema, type Project } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueSchema, QueueState, QueueStateSchema, type Queue } from "../../gen/clusterplane/v1/queue_pb.js";
import { CliError } from "./exit.js";
import { renderTable, type Column } from "./output.js";
import { clusterManifest, labelManifest, poolManifest, projectManifest, queueManifest } from "./manifests.js";
import { ResourceKind } from "../../gen/clusterplane/v1/watch_pb.js";
import { joinTokenText } from "./join-tokens.js";
import { registerNamedResource, repeatable, splitPair, type NamedResource, type Verbs } from "./verbs.js";

type Flags = Record<string, unknown>;

/** `ACTIVE` for `CLUSTER_STATE_ACTIVE`: what a person reads in a table. */
function shortName(schema: DescEnum, number: number): string {
  return schema.values.find((value) => value.number === number)?.localName ?? String(number);
}

/** `--state drained` → the enum number; the valid words are listed when it is not one. */
function enumFlag(schema: DescEnum, flag: string): (value: string) => number {
  return (value) => {
    const match = schema.values.find((v) => v.number !== 0 && v.localName === value.toUpperCase());
    if (!match) {
      const names = schema.values.filter((v) => v.number !== 0).map((v) => v.localName.toLowerCase());
      throw new CliError(`${flag} "${value}" must be one of ${names.join(", ")}`);
    }
    return match.number;
  };
}

function booleanFlag(flag: string): (value: string) => boolean {
  return (value) => {
    if (value === "true") return true;
    if (value === "false") return false;
    throw new CliError(`${flag} "${value}" must be true or false`);
  };
}

/** Names of the fields flags set, in the order given: the update mask. */
function setFields(flags: Flags, mapping: Record<string, string>): string[] {
  return [...new Set(Object.keys(mapping).filter((flag) => flags[flag] !== undefined).map((flag) => mapping[flag]!))];
}

const clusterPools: NamedResource<typeof ClusterPoolSchema> = {
  noun: "cluster-pool",
  kind: ResourceKind.CLUSTER_POOL,
  resourceOf: (change) => (change.resource.case === "clusterPool" ? change.resource.value : undefined),
  plural: "cluster pools",
  keyField: "name",
  schema: ClusterPoolSchema,
  codec: poolManifest,
  columns: [
    { header: "NAME", cell: (pool: ClusterPool) => pool.name },
    { header: "OBJECT STORE", cell: (pool) => pool.config?.objectStoreRef?.uri ?? "" },
    {
      header: "SECRET STORE",
      cell: (pool) => {
        const store = pool.config?.secretStore;
        return store?.type ? `${shortName(SecretStoreTypeSchema, store.type)} ${store.locator}`.trim() : "";
      },
    },
    { header: "IMAGE REGISTRY", cell: (pool) => pool.config?.imageRegistry?.locator ?? "" },
    { header: "MEMBER CLUSTERS", cell: (pool) => pool.memberClusters.join(", ") },
  ],
  flags: {
    options: () => [
      new Option("--object-store-uri <uri>", "bucket URI with a scheme, e.g. s3://my-prod-bucket/prefix"),
      new Option("--object-store-endpoint <url>", "custom endpoint of an S3-compatible store"),
      new Option("--secret-store-type <type>", `one of ${SecretStoreTypeSchema.values.slice(1).map((v) => v.localName).join(", ")}`).argParser(
        enumFlag(SecretStoreTypeSchema, "--secret-store-type"),
      ),
      new Option("--secret-store-locator <locator>", "region, project, vault address or namespace"),
      new Option("--image-registry <locator>", "registry and repository prefix"),
    ],
    apply(pool, flags) {
      const config = () => (pool.config ??= create(ClusterPoolConfigSchema));
      const objectStore = () => (config().objectStoreRef ??= create(ObjectStoreRefSchema));
      const secretStore = () => (config().secretStore ??= create(SecretStoreSchema));
      if (typeof flags.objectStoreUri === "string") objectStore().uri = flags.objectStoreUri;
      if (typeof flags.objectStoreEndpoint === "string") objectStore().endpoint = flags.objectStoreEndpoint;
      if (typeof flags.secretStoreType === "number") secretStore().type = flags.secretStoreType;
      if (typeof flags.secretStoreLocator === "string") secretStore().locator = flags.secretStoreLocator;
      if (typeof flags.imageRegistry === "string") config().imageRegistry = create(ImageRegistrySchema, { locator: flags.imageRegistry });
      return setFields(flags, {
        objectStoreUri: "config",
        objectStoreEndpoint: "config",
        secretStoreType: "config",
        secretStoreLocator: "config",
        imageRegistry: "config",
      });
    },
  },
  get: async ({ api, org }, name) => (await api.pools.getClusterPool({ org, name })).clusterPool!,
  list: async ({ api, org }, _filters, pageSize, pageToken) => {
    const page = await api.pools.listClusterPools({ org, pageSize, pageToken });
    return { items: page.clusterPools, nextPageToken: page.nextPageToken };
  },
  create: async ({ api }, clusterPool) => (await api.pools.createClusterPool({ clusterPool })).clusterPool!,
  update: async ({ api }, clusterPool) => (await api.pools.updateClusterPool({ clusterPool })).clusterPool!,
  remove: async ({ api, org }, name) => void (await api.pools.deleteClusterPool({ org, name })),
  lifecycle: {},
};

const SYNC_WORDS: Record<SyncHealth, string> = {
  [SyncHealth.UNSPECIFIED]: "PENDING",
  [SyncHealth.HEALTHY]: "HEALTHY",
  [SyncHealth.FAILING]: "FAILING",
  [SyncHealth.DISABLED]: "DISABLED",
  [SyncHealth.DEGRADED]: "DEGRADED",
};

/** READY as kubectl shows it: the API server answers and the credentials may provision. */
/** Push: where the control plane connects. Pull: the agent's version and last heartbeat. */
function endpointCell(cluster: Cluster): string {
  if (cluster.mode === ClusterMode.PULL) {
    const heartbeat = cluster.agent?.lastHeartbeatTime;
    if (!heartbeat) return "(agent not joined)";
    const ago = Math.max(0, Math.round((Date.now() - timestampDate(heartbeat).getTime()) / 1000));
    return `(agent ${cluster.agent!.version || "?"}, heartbeat ${ago}s ago)`;
  }
  return cluster.endpoint || (cluster.auth?.method.case === "inCluster" ? "(in-cluster)" : "");
}

function readiness(cluster: Cluster): string {
  if (cluster.conditions.length === 0) return "";
  const holds = (type: string) => cluster.conditions.find((condition) => condition.type === type)?.status === ConditionStatus.TRUE;
  return holds("Reachable") && holds("Authorized") ? "True" : "False";
}

const CONDITION_COLUMNS: Column<ClusterCondition>[] = [
  { header: "CONDITION", cell: (condition) => condition.type },
  { header: "STATUS", cell: (condition) => shortName(ConditionStatusSchema, condition.status) },
  { header: "REASON", cell: (condition) => condition.reason },
  { header: "SINCE", cell: (condition) => (condition.lastTransitionTime ? timestampDate(condition.lastTransitionTime).toISOString() : "") },
  { header: "MESSAGE", cell: (condition) => condition.message },
];

const clusters: NamedResource<typeof ClusterSchema> = {
  noun: "cluster",
  kind: ResourceKind.CLUSTER,
  resourceOf: (change) => (change.resource.case === "cluster" ? change.resource.value : undefined),
  related: {
    kind: ResourceKind.CLUSTER_SYNC_STATUS,
    refetch: (session, change) =>
      session.api.clusters.getCluster({ org: session.org, name: change.name }).then(
        (answer) => answer.cluster,
        () => undefined, // deleted meanwhile: its DELETE event says so
      ),
  },
  plural: "clusters",
  keyField: "name",
  schema: ClusterSchema,
  codec: clusterManifest,
  columns: [
    { header: "NAME", cell: (cluster: Cluster) => cluster.name },
    { header: "POOL", cell: (cluster) => cluster.pool },
    { header: "MODE", cell: (cluster) => (cluster.mode === ClusterMode.PULL ? "pull" : "push") },
    { header: "ENDPOINT", cell: (cluster) => endpointCell(cluster) },
    { header: "ENABLED", cell: (cluster) => String(cluster.enabled ?? true) },
    { header: "STATE", cell: (cluster) => shortName(ClusterStateSchema, cluster.state) },
    { header: "READY", cell: readiness },
    { header: "PROVISIONED", cell: (cluster) => (cluster.conditions.length ? `${cluster.syncStatus?.projectDomainsProvisioned ?? 0}/${cluster.syncStatus?.projectDomainsDesired ?? 0}` : "") },
    { header: "SYNC", cell: (cluster) => SYNC_WORDS[cluster.syncStatus?.health ?? SyncHealth.UNSPECIFIED] ?? "" },
    { header: "LAST ERROR", cell: (cluster) => cluster.syncStatus?.lastError ?? "" },
  ],
  details: (cluster) =>
    cluster.conditions.length === 0
      ? "\nNo conditions yet: the cluster has not been through a sync pass.\n"
      : `\n${renderTable(CONDITION_COLUMNS, cluster.conditions)}`,
  listOptions: [
    new Option("--pool <pool>", "only clusters of this pool"),
    new Option("--state <state>", "only active or drained clusters").argParser(enumFlag(ClusterStateSchema, "--state")),
  ],
  flags: {
    options: (verb) => [
      ...(verb === "create" ? [new Option("--pool <pool>", "pool to register into (default: the default pool); fixed once registered")] : []),
      new Option("--endpoint <url>", "HTTPS URL of the cluster's Kubernetes API, e.g. https://10.0.0.1:443"),
      new Option("--token-path <path>", "bearer token file, as mounted from a Secret"),
      new Option("--ca-cert-path <path>", "CA certificate file of the API server"),
      new Option("--in-cluster", "authenticate as the control plane's own service account"),
      new Option("--enabled <bool>", "false keeps it out of routing and sync").argParser(booleanFlag("--enabled")),
    ],
    apply(cluster, flags) {
      if (typeof flags.pool === "string") cluster.pool = flags.pool;
      if (typeof flags.endpoint === "string") cluster.endpoint = flags.endpoint;
      if (typeof flags.enabled === "boolean") cluster.enabled = flags.enabled;
      const paths = flags.tokenPath !== undefined || flags.caCertPath !== undefined;
      if (flags.inCluster && paths) throw new CliError("--in-cluster uses the pod's own credentials; drop --token-path and --ca-cert-path");
      if (flags.inCluster) cluster.auth = create(ClusterAuthSchema, { method: { case: "inCluster", value: {} } });
      if (paths) {
        // One path alone changes just that file of an existing token auth.
        const current = cluster.auth?.method.case === "bearerTokenFile" ? cluster.auth.method.value : { tokenPath: "", caCertPath: "" };
        const value = {
          tokenPath: (flags.tokenPath as string | undefined) ?? current.tokenPath,
          caCertPath: (flags.caCertPath as string | undefined) ?? current.caCertPath,
        };
        cluster.auth = create(ClusterAuthSchema, { method: { case: "bearerTokenFile", value } });
      }
      return setFields(flags, { endpoint: "endpoint", enabled: "enabled", inCluster: "auth", tokenPath: "auth", caCertPath: "auth" });
    },
  },
  get: async ({ api, org }, name) => (await api.clusters.getCluster({ org, name })).cluster!,
  list: async ({ api, org }, filters, pageSize, pageToken) => {
    const pool = (filters.pool as string | undefined) ?? "";
    const state = (filters.state as ClusterState | undefined) ?? ClusterState.UNSPECIFIED;
    const page = await api.clusters.listClusters({ org, pool, state, pageSize, pageToken });
    return { items: page.clusters, nextPageToken: page.nextPageToken };
  },
  create: async ({ api }, cluster) => {
    const created = await api.clusters.createCluster({ cluster });
    // Pull mode: the one-time join token goes to stderr, so `-o json` on stdout stays parseable.
    if (created.join) process.stderr.write(joinTokenText(created.cluster!.name, created.join));
    return created.cluster!;
  },
  update: async ({ api }, cluster, fields) =>
    (await api.clusters.updateCluster({ cluster, updateMask: fields === "all" ? undefined : { paths: fields } })).cluster!,
  remove: async ({ api, org }, name) => void (await api.clusters.deleteCluster({ org, name })),
  lifecycle: {
    drain: { past: "drained: no new executions are routed to it", call: async ({ api, org }, name) => (await api.clusters.drainCluster({ org, name })).cluster! },
    activate: { past: "activated", call: async ({ api, org }, name) => (await api.clusters.activateCluster({ org, name })).cluster! },
  },
};

const queues: NamedResource<typeof QueueSchema> = {
  noun: "queue",
  kind: ResourceKind.QUEUE,
  resourceOf: (change) => (change.resource.case === "queue" ? change.resource.value : undefined),
  plural: "queues",
  keyField: "name",
  schema: QueueSchema,
  codec: queueManifest,
  columns: [
    { header: "NAME", cell: (queue: Queue) => queue.name },
    { header: "POOL", cell: (queue) => queue.pool },
    { header: "CLUSTERS", cell: (queue) => queue.clusters.join(", ") },
    { header: "STATE", cell: (queue) => shortName(QueueStateSchema, queue.state) },
    { header: "IMPLICIT", cell: (queue) => (queue.clusterManaged ? "yes" : "no") },
  ],
  listOptions: [
    new Option("--pool <pool>", "only queues of this pool"),
    new Option("--state <state>", "only active or drained queues").argParser(enumFlag(QueueStateSchema, "--state")),
  ],
  flags: {
    options: (verb) => [
      ...(verb === "create" ? [new Option("--pool <pool>", "pool of the queue (default: the default pool); fixed once created")] : []),
      new Option("--clusters <list>", `comma-separated clusters of the pool, or "*" for all of them`),
    ],
    apply(queue, flags) {
      if (typeof flags.pool === "string") queue.pool = flags.pool;
      if (typeof flags.clusters === "string") queue.clusters = flags.clusters.split(",").map((name) => name.trim()).filter(Boolean);
      return setFields(flags, { clusters: "clusters" });
    },
  },
  get: async ({ api, org }, name) => (await api.queues.getQueue({ org, name })).queue!,
  list: async ({ api, org }, filters, pageSize, pageToken) => {
    const pool = (filters.pool as string | undefined) ?? "";
    const state = (filters.state as QueueState | undefined) ?? QueueState.UNSPECIFIED;
    const page = await api.queues.listQueues({ org, pool, state, pageSize, pageToken });
    return { items: page.queues, nextPageToken: page.nextPageToken };
  },
  create: async ({ api }, queue) => (await api.queues.createQueue({ queue })).queue!,
  update: async ({ api }, queue) => (await api.queues.updateQueue({ queue })).queue!,
  remove: async ({ api, org }, name) => void (await api.queues.deleteQueue({ org, name })),
  lifecycle: {
    drain: { past: "drained", call: async ({ api, org }, name) => (await api.queues.drainQueue({ org, name })).queue! },
    activate: { past: "activated", call: async ({ api, org }, name) => (await api.queues.activateQueue({ org, name })).queue! },
  },
};

/** `dataplane_1=1` (flyteadmin's labelClusterMap entry on one line). */
function parseMember(value: string): Omit<WeightedCluster, "$typeName"> {
  const [cluster, text] = splitPair(value, "--cluster", "dataplane_1=1");
  const weight = Number(text);
  if (!Number.isFinite(weight)) throw new CliError(`--cluster "${value}": the weight must be a number, for example dataplane_1=0.5`);
  return { cluster, weight };
}

export function formatMembers(label: { clusters: readonly { cluster: string; weight: number }[] }): string {
  return label.clusters.map((member) => `${member.cluster}=${member.weight}`).join(", ");
}

const labels: NamedResource<typeof ClusterLabelSchema> = {
  noun: "label",
  kind: ResourceKind.CLUSTER_LABEL,
  resourceOf: (change) => (change.resource.case === "clusterLabel" ? change.resource.value : undefined),
  plural: "labels",
  keyField: "name",
  schema: ClusterLabelSchema,
  codec: labelManifest,
  columns: [
    { header: "NAME", cell: (label: ClusterLabel) => label.name },
    { header: "CLUSTERS", cell: formatMembers },
  ],
  flags: {
    options: () => [
      new Option("--cluster <name=weight>", "a cluster and its weight in (0, 1]; repeat for each (replaces the list)").argParser(repeatable),
    ],
    apply(label, flags) {
      const members = flags.cluster as string[] | undefined;
      if (members) label.clusters = members.map((member) => create(WeightedClusterSchema, parseMember(member)));
      return setFields(flags, { cluster: "clusters" });
    },
  },
  get: async ({ api, org }, name) => (await api.labels.getClusterLabel({ org, name })).label!,
  list: async ({ api, org }, _filters, pageSize, pageToken) => {
    const page = await api.labels.listClusterLabels({ org, pageSize, pageToken });
    return { items: page.labels, nextPageToken: page.nextPageToken };
  },
  create: async ({ api }, label) => (await api.labels.createClusterLabel({ label })).label!,
  update: async ({ api }, label) => (await api.labels.updateClusterLabel({ label })).label!,
  remove: async ({ api, org }, name) => void (await api.labels.deleteClusterLabel({ org, name })),
  lifecycle: {},
};

const projects: NamedResource<typeof ProjectSchema> = {
  noun: "project",
  kind: ResourceKind.PROJECT,
  resourceOf: (change) => (change.resource.case === "project" ? change.resource.value : undefined),
  plural: "projects",
  keyField: "id",
  schema: ProjectSchema,
  codec: projectManifest,
  columns: [
    { header: "ID", cell: (project: Project) => project.id },
    { header: "NAME", cell: (project) => project.name },
    { header: "STATE", cell: (project) => shortName(ProjectStateSchema, project.state) },
    { header: "DESCRIPTION", cell: (project) => project.description },
  ],
  listOptions: [new Option("--state <state>", "only active or archived projects").argParser(enumFlag(ProjectStateSchema, "--state"))],
  flags: {
    options: () => [new Option("--name <name>", "display name (default: the id)"), new Option("--description <text>", "free-form description")],
    apply(project, flags) {
      if (typeof flags.name === "string") project.name = flags.name;
      if (typeof flags.description === "string") project.description = flags.description;
      return setFields(flags, { name: "name", description: "description" });
    },
  },
  get: async ({ api, org }, id) => (await api.projects.getProject({ org, id })).project!,
  list: async ({ api, org }, filters, pageSize, pageToken) => {
    const state = (filters.state as ProjectState | undefined) ?? ProjectState.UNSPECIFIED;
    const page = await api.projects.listProjects({ org, state, pageSize, pageToken });
    return { items: page.projects, nextPageToken: page.nextPageToken };
  },
  create: async ({ api }, project) => (await api.projects.createProject({ project })).project!,
  update: async ({ api }, project) => (await api.projects.updateProject({ project })).project!,
  lifecycle: {
    archive: { past: "archived: no longer synced or routable", call: async ({ api, org }, id) => (await api.projects.archiveProject({ org, id })).project! },
    activate: { past: "activated", call: async ({ api, org }, id) => (await api.projects.activateProject({ org, id })).project! },
  },
};

/** The named nouns, in the order `--help` lists them. */
export function registerResources(verbs: Verbs): void {
  registerNamedResource(verbs, clusterPools);
  registerNamedResource(verbs, clusters);
  registerNamedResource(verbs, queues);
  registerNamedResource(verbs, projects);
  registerNamedResource(verbs, labels);
}
