/**
 * The server speaks API: its messages name request fields (`cluster.auth`) and RPCs
 * (`UpdateClusterPool`), because any client may be reading them. An operator at this CLI set
 * those fields through flags or manifest keys and calls RPCs through commands, so the CLI says
 * those instead. This file is the one place where API words become CLI words; where the CLI has
 * no equivalent, the server's word stays.
 */

/** What the operator is running: decides whether a field is a flag or a manifest key to them. */
export interface CommandContext {
  /** e.g. "create cluster", "select-cluster", "import flyteadmin". */
  command: string;
  /** The request came from a manifest (`--file`, `--attrFile`, `--edit`), not from flags. */
  manifest: boolean;
}

let current: CommandContext = { command: "", manifest: false };

/** Called once the command line is parsed, before the command runs. */
export function setCommandContext(context: CommandContext): void {
  current = context;
}

/** Every RPC of the services the CLI calls, as the command that makes it. */
export const RPC_COMMANDS: Readonly<Record<string, string>> = {
  CreateClusterPool: "clusterplane create cluster-pool",
  GetClusterPool: "clusterplane get cluster-pool NAME",
  ListClusterPools: "clusterplane get cluster-pool",
  UpdateClusterPool: "clusterplane update cluster-pool",
  DeleteClusterPool: "clusterplane delete cluster-pool",
  CreateCluster: "clusterplane create cluster",
  GetCluster: "clusterplane get cluster NAME",
  ListClusters: "clusterplane get cluster",
  UpdateCluster: "clusterplane update cluster",
  DrainCluster: "clusterplane drain cluster",
  ActivateCluster: "clusterplane activate cluster",
  DeleteCluster: "clusterplane delete cluster",
  CreateJoinToken: "clusterplane create join-token --cluster NAME",
  RevokeAgentAccess: "clusterplane delete join-token --cluster NAME",
  CreateQueue: "clusterplane create queue",
  GetQueue: "clusterplane get queue NAME",
  ListQueues: "clusterplane get queue",
  UpdateQueue: "clusterplane update queue",
  DrainQueue: "clusterplane drain queue",
  ActivateQueue: "clusterplane activate queue",
  DeleteQueue: "clusterplane delete queue",
  CreateClusterLabel: "clusterplane create label",
  GetClusterLabel: "clusterplane get label NAME",
  ListClusterLabels: "clusterplane get label",
  UpdateClusterLabel: "clusterplane update label",
  DeleteClusterLabel: "clusterplane delete label",
  GetDefaultClusterLabel: "clusterplane get default-label",
  SetDefaultClusterLabel: "clusterplane update default-label",
  UpdateExecutionClusterLabel: "clusterplane update execution-cluster-label",
  GetExecutionClusterLabel: "clusterplane get execution-cluster-label -p P -d D",
  ListExecutionClusterLabels: "clusterplane get execution-cluster-label",
  DeleteExecutionClusterLabel: "clusterplane delete execution-cluster-label",
  SelectCluster: "clusterplane select-cluster",
  CreateProject: "clusterplane create project",
  GetProject: "clusterplane get project ID",
  ListProjects: "clusterplane get project",
  UpdateProject: "clusterplane update project",
  ArchiveProject: "clusterplane archive project",
  ActivateProject: "clusterplane activate project",
};

/**
 * A request field, as the server's violations name it (`[]` stands for any list index), and how
 * the operator sets it: on the command line (`flag`) and in a manifest (`key`, `[]` filled in
 * with the index). `rewrite` replaces a whole line whose description spells out API structure.
 */
interface FieldTerm {
  flag?: string;
  key?: string;
  /** Only for these commands, when one field name means different things to different commands. */
  commands?: readonly string[];
  rewrite?: { pattern: RegExp; flags: string; manifest: string };
}

const SCOPE = {
  project: { flag: "-p/--project", key: "project" },
  domain: { flag: "-d/--domain", key: "domain" },
  workflow: { flag: "the WORKFLOW argument", key: "workflow" },
  launch_plan: { flag: "--launch-plan", key: "launch_plan" },
};

export const FIELD_TERMS: Readonly<Record<string, readonly FieldTerm[]>> = {
  org: [{ flag: "--org (before the command)", key: "org" }],
  name: [{ flag: "the NAME argument" }],
  id: [{ flag: "the ID argument" }],
  pool: [{ flag: "--pool" }],
  page_size: [{ flag: "--limit" }],
  project: [SCOPE.project],
  domain: [SCOPE.domain],
  workflow: [SCOPE.workflow],
  launch_plan: [SCOPE.launch_plan],
  execution_id: [{ flag: "--execution-id" }],
  label: [
    { flag: "the LABEL argument", commands: ["update default-label"] },
    { flag: "--label", commands: ["select-cluster"] },
  ],
  cluster: [{ flag: "--cluster", commands: ["select-cluster"] }],
  queue: [{ flag: "--queue", commands: ["select-cluster"] }],

  "cluster_pool.name": [{ flag: "the NAME argument", key: "name" }],
  "cluster_pool.config": [
    {
      flag: "--object-store-uri and --secret-store-type",
      key: "config",
      rewrite: {
        pattern: /^is required: object_store_ref and secret_store$/,
        flags: "--object-store-uri and --secret-store-type (with --secret-store-locator) are required",
        manifest: "config: is required: object_store_ref (uri) and secret_store (type, locator)",
      },
    },
  ],
  "cluster_pool.config.object_store_ref": [{ flag: "--object-store-uri", key: "config.object_store_ref" }],
  "cluster_pool.config.object_store_ref.uri": [{ flag: "--object-store-uri", key: "config.object_store_ref.uri" }],
  "cluster_pool.config.object_store_ref.endpoint": [{ flag: "--object-store-endpoint", key: "config.object_store_ref.endpoint" }],
  "cluster_pool.config.secret_store": [{ flag: "--secret-store-type and --secret-store-locator", key: "config.secret_store" }],
  "cluster_pool.config.secret_store.type": [{ flag: "--secret-store-type", key: "config.secret_store.type" }],
  "cluster_pool.config.secret_store.locator": [{ flag: "--secret-store-locator", key: "config.secret_store.locator" }],
  "cluster_pool.config.image_registry": [{ flag: "--image-registry", key: "config.image_registry" }],
  "cluster_pool.config.image_registry.locator": [{ flag: "--image-registry", key: "config.image_registry.locator" }],

  "cluster.name": [{ flag: "the NAME argument", key: "name" }],
  "cluster.pool": [{ flag: "--pool", key: "pool" }],
  "cluster.endpoint": [{ flag: "--endpoint", key: "endpoint" }],
  "cluster.enabled": [{ flag: "--enabled", key: "enabled" }],
  "cluster.auth": [
    {
      flag: "--token-path/--ca-cert-path or --in-cluster",
      key: "auth",
      rewrite: {
        pattern: /^is required: bearer_token_file .* or in_cluster .*$/,
        flags:
          "credentials are required: --token-path PATH and --ca-cert-path PATH (files mounted from a Secret), or --in-cluster; " +
          "or leave out --endpoint too, to register a pull-mode cluster whose agent connects out",
        manifest:
          "auth: is required: {type: file_path, tokenPath: PATH, certPath: PATH} or {type: in_cluster}; " +
          "or leave out both endpoint and auth to register a pull-mode cluster, whose agent connects out",
      },
    },
  ],
  "cluster.auth.bearer_token_file": [{ flag: "--token-path and --ca-cert-path", key: "auth" }],
  "cluster.auth.bearer_token_file.token_path": [{ flag: "--token-path", key: "auth.tokenPath" }],
  "cluster.auth.bearer_token_file.ca_cert_path": [{ flag: "--ca-cert-path", key: "auth.certPath" }],
  "cluster.auth.in_cluster": [{ flag: "--in-cluster", key: "auth.type" }],

  "queue.name": [{ flag: "the NAME argument", key: "name" }],
  "queue.pool": [{ flag: "--pool", key: "pool" }],
  "queue.clusters": [{ flag: "--clusters", key: "clusters" }],
  "queue.clusters[]": [{ flag: "--clusters", key: "clusters[]" }],

  "label.name": [{ flag: "the NAME argument", key: "name" }],
  "label.clusters": [{ flag: "--cluster NAME=WEIGHT", key: "clusters" }],
  "label.clusters[]": [{ flag: "--cluster NAME=WEIGHT", key: "clusters[]" }],
  "label.clusters[].cluster": [{ flag: "--cluster NAME=WEIGHT (the NAME)", key: "clusters[].cluster" }],
  "label.clusters[].weight": [{ flag: "--cluster NAME=WEIGHT (the WEIGHT)", key: "clusters[].weight" }],

  "project.id": [{ flag: "the ID argument", key: "id" }],
  "project.name": [{ flag: "--name", key: "name" }],
  "project.description": [{ flag: "--description", key: "description" }],

  "execution_cluster_label.project": [SCOPE.project],
  "execution_cluster_label.domain": [SCOPE.domain],
  "execution_cluster_label.workflow": [SCOPE.workflow],
  "execution_cluster_label.launch_plan": [SCOPE.launch_plan],
  "execution_cluster_label.value": [{ flag: "--value", key: "value" }],
};

/** Phrases of server descriptions that name API structure, in the words of flags and of manifests. */
const PHRASES: readonly { pattern: RegExp; flags: string; manifest: string }[] = [
  { pattern: /\bwith in_cluster auth\b/g, flags: "with --in-cluster", manifest: "with auth type in_cluster" },
  { pattern: /\bunless auth is in_cluster\b/g, flags: "unless --in-cluster is given", manifest: "unless auth type is in_cluster" },
];

const RPC_PATTERN = new RegExp(`\\b(${Object.keys(RPC_COMMANDS).sort((a, b) => b.length - a.length).join("|")})\\b`, "g");

/** RPC names in a server message as the commands that make those calls. */
export function translateRpcNames(text: string): string {
  return text.replace(RPC_PATTERN, (name) => RPC_COMMANDS[name]!);
}

/** A server text (message or description) in CLI words. */
export function translateText(text: string, context: CommandContext = current): string {
  let translated = translateRpcNames(text);
  for (const phrase of PHRASES) translated = translated.replace(phrase.pattern, context.manifest ? phrase.manifest : phrase.flags);
  return translated;
}

function termFor(field: string, context: CommandContext): FieldTerm | undefined {
  const terms = FIELD_TERMS[field.replace(/\[\d+\]/g, "[]")];
  return terms?.find((term) => !term.commands || term.commands.includes(context.command));
}

/**
 * How the operator names a field: its manifest key when they wrote a manifest, else its flag or
 * argument. A field without either (an etag, a page token) keeps the API's name.
 */
export function fieldName(field: string, context: CommandContext = current): string {
  const term = termFor(field, context);
  if (!term) return field;
  if (context.manifest && term.key) {
    const indexes = [...field.matchAll(/\[(\d+)\]/g)].map((match) => match[1]);
    return term.key.replace(/\[\]/g, () => `[${indexes.shift() ?? ""}]`);
  }
  return term.flag ?? term.key ?? field;
}

/** One field violation as a line an operator can act on. */
export function describeViolation(field: string, description: string, context: CommandContext = current): string {
  const rewrite = termFor(field, context)?.rewrite;
  if (rewrite?.pattern.test(description)) return context.manifest ? rewrite.manifest : rewrite.flags;
  return `${fieldName(field, context)}: ${translateText(description, context)}`;
}
