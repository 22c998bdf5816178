import { readFileSync } from "node:fs";
import { fromJson, type DescEnum, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { parseAllDocuments, stringify as toYaml } from "yaml";
import { ClusterSchema, type Cluster } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolSchema, SecretStoreTypeSchema, type ClusterPool } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import {
  ClusterLabelSchema,
  ExecutionClusterLabelSchema,
  type ClusterLabel,
  type ExecutionClusterLabel,
} from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectSchema, type Project } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueSchema, type Queue } from "../../gen/clusterplane/v1/queue_pb.js";
import { suggestion } from "../core/did-you-mean.js";
import { CliError } from "./exit.js";
import { poolManifestOf, poolManifestTemplate } from "./pool-manifest.js";

/**
 * The YAML forms operators write (`--file`, `--edit`): the seed manifests as they are — the pool
 * manifest with snake_case keys and short secret-store types, flyteadmin's cluster entries and
 * `labelClusterMap` members, the flytectl attrFile. Every codec also reads the protobuf JSON
 * form that `-o yaml` prints, so `get … -o yaml > f.yaml` then `update … --file f.yaml` works.
 */
export interface ManifestCodec<S extends DescMessage> {
  schema: S;
  fromManifest(raw: unknown, source: string): MessageShape<S>;
  /** The manifest of a stored object: what `--edit` shows for update, without output-only fields. */
  toManifest(item: MessageShape<S>): Record<string, unknown>;
  /** The `--edit` starting point for create, with comments explaining each field. */
  template(key: string): string;
}

type Mapping = Record<string, unknown>;

/** Reads a manifest file (`-` is stdin) into plain YAML data. */
export function readManifestFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (error) {
    throw new CliError(`cannot read ${path}: ${(error as Error).message}`);
  }
  return parseManifestText(text, path === "-" ? "stdin" : path);
}

/** One YAML document; a syntax error names the line, as the editor loop shows it. */
export function parseManifestText(text: string, source: string): unknown {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) return null;
  const [first, ...rest] = documents;
  if (rest.length > 0) throw new CliError(`${source}: holds ${documents.length} YAML documents; a manifest is one`);
  const error = first?.errors[0];
  if (error) throw new CliError(`${source}: invalid YAML: ${error.message}`);
  return first?.toJS() ?? null;
}

/** Parses with the codec, naming the source in every problem. */
function decode<S extends DescMessage>(schema: S, json: unknown, source: string): MessageShape<S> {
  const unknownKeys = unknownKeyProblems(schema, json, "");
  if (unknownKeys.length === 1) throw new CliError(`${source}: ${unknownKeys[0]}`);
  if (unknownKeys.length > 1) throw new CliError(`${source}:\n  ${unknownKeys.join("\n  ")}`);
  try {
    return fromJson(schema, json as JsonValue);
  } catch (error) {
    throw new CliError(`${source}: ${(error as Error).message}`);
  }
}

/**
 * Every key of `json` that is no field of `schema`, at any depth, as `config.secret_stor: unknown
 * key; did you mean secret_store?`. The protobuf decoder would name only the first, without the
 * path or a suggestion. A key may be the field's proto name or its JSON name, as the decoder takes.
 */
function unknownKeyProblems(schema: DescMessage, json: unknown, at: string): string[] {
  // The well-known types have their own JSON forms (a timestamp is a string, a mask a list).
  if (typeof json !== "object" || json === null || Array.isArray(json) || schema.typeName.startsWith("google.protobuf.")) return [];
  const problems: string[] = [];
  for (const [key, value] of Object.entries(json)) {
    const path = at ? `${at}.${key}` : key;
    const field = schema.fields.find((f) => f.name === key || f.jsonName === key);
    if (!field) {
      // Offer names in the style the manifest uses: camelCase keys get JSON names, others proto names.
      const camel = /[A-Z]/.test(key);
      problems.push(`${path}: unknown key${suggestion(key, schema.fields.map((f) => (camel ? f.jsonName : f.name)))}`);
      continue;
    }
    if (field.fieldKind === "message") problems.push(...unknownKeyProblems(field.message, value, path));
    else if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(value)) {
      value.forEach((item, index) => problems.push(...unknownKeyProblems(field.message, item, `${path}[${index}]`)));
    } else if (field.fieldKind === "map" && field.mapKind === "message" && typeof value === "object" && value !== null) {
      for (const [mapKey, item] of Object.entries(value)) problems.push(...unknownKeyProblems(field.message, item, `${path}.${mapKey}`));
    }
  }
  return problems;
}

function mapping(raw: unknown, source: string, what: string): Mapping {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CliError(`${source}: ${what} must be a YAML mapping`);
  }
  return { ...(raw as Mapping) };
}

/**
 * Accepts the short enum names of the manifests (`AWS_SECRETS_MANAGER`) as well as the full
 * protobuf names, and lists the valid ones when neither matches.
 */
function enumName(value: unknown, schema: DescEnum, field: string, source: string): unknown {
  if (typeof value !== "string") return value;
  const match = schema.values.find((v) => v.number !== 0 && (v.name === value || v.localName === value));
  if (match) return match.name;
  const names = schema.values.filter((v) => v.number !== 0).map((v) => v.localName);
  throw new CliError(`${source}: ${field} "${value}" is not one of ${names.join(", ")}`);
}

/** Leaves out empty values, so a manifest shows only what was set. */
function compact(entries: Mapping): Mapping {
  return Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== "" && value !== undefined));
}

export const poolManifest: ManifestCodec<typeof ClusterPoolSchema> = {
  schema: ClusterPoolSchema,
  fromManifest(raw, source) {
    const pool = mapping(raw, source, "a cluster-pool manifest");
    if (pool.config !== undefined) {
      const config = mapping(pool.config, source, "config");
      for (const key of ["secret_store", "secretStore"]) {
        if (config[key] === undefined) continue;
        const store = mapping(config[key], source, `config.${key}`);
        store.type = enumName(store.type, SecretStoreTypeSchema, `config.${key}.type`, source);
        config[key] = store;
      }
      pool.config = config;
    }
    return decode(ClusterPoolSchema, pool, source);
  },
  toManifest: (pool: ClusterPool) => compact({ org: pool.org, ...poolManifestOf(pool) }),
  template: poolManifestTemplate,
};

const FLYTEADMIN_AUTH_KEYS = new Set(["type", "tokenPath", "certPath", "caCertPath"]);
const PROTOBUF_AUTH_KEYS = new Set(["bearerTokenFile", "bearer_token_file", "inCluster", "in_cluster"]);

/**
 * flyteadmin's `auth: {type: file_path, tokenPath, certPath}` (and `{type: in_cluster}`) as the
 * protobuf oneof; an auth already in protobuf form passes through.
 */
function clusterAuthJson(raw: unknown, source: string): unknown {
  const auth = mapping(raw, source, "auth");
  const protobufForm = auth.type === undefined && Object.keys(auth).every((key) => PROTOBUF_AUTH_KEYS.has(key));
  return protobufForm ? auth : flyteadminAuth(auth, source);
}

/** flyteadmin's auth mapping (`type: file_path | in_cluster`) as the protobuf JSON of ClusterAuth. */
export function flyteadminAuth(
  auth: Mapping,
  source: string,
): { bearerTokenFile: { tokenPath: string; caCertPath: string } } | { inCluster: Record<string, never> } {
  for (const key of Object.keys(auth)) {
    if (!FLYTEADMIN_AUTH_KEYS.has(key)) throw new CliError(`${source}: auth.${key}: unknown key${suggestion(key, ["type", "tokenPath", "certPath"])}`);
  }
  if (auth.type === "file_path") {
    const caCertPath = auth.certPath ?? auth.caCertPath;
    if (typeof auth.tokenPath !== "string" || typeof caCertPath !== "string") {
      throw new CliError(`${source}: auth type file_path needs tokenPath and certPath`);
    }
    return { bearerTokenFile: { tokenPath: auth.tokenPath, caCertPath } };
  }
  if (auth.type === "in_cluster") {
    if (auth.tokenPath !== undefined || auth.certPath !== undefined) {
      throw new CliError(`${source}: auth type in_cluster uses the pod's own credentials; remove tokenPath and certPath`);
    }
    return { inCluster: {} };
  }
  const given = auth.type === undefined ? "is missing" : `${JSON.stringify(auth.type)} is not one`;
  throw new CliError(`${source}: auth.type ${given}: file_path (tokenPath + certPath) or in_cluster`);
}

export const clusterManifest: ManifestCodec<typeof ClusterSchema> = {
  schema: ClusterSchema,
  fromManifest(raw, source) {
    const cluster = mapping(raw, source, "a cluster manifest");
    if (cluster.auth !== undefined) cluster.auth = clusterAuthJson(cluster.auth, source);
    return decode(ClusterSchema, cluster, source);
  },
  toManifest(cluster: Cluster) {
    const method = cluster.auth?.method;
    let auth: Mapping | undefined;
    if (method?.case === "bearerTokenFile") auth = { type: "file_path", tokenPath: method.value.tokenPath, certPath: method.value.caCertPath };
    else if (method?.case === "inCluster") auth = { type: "in_cluster" };
    return compact({ org: cluster.org, name: cluster.name, pool: cluster.pool, endpoint: cluster.endpoint, enabled: cluster.enabled ?? true, auth });
  },
  template: (name) => `# A Kubernetes data-plane cluster (the fields of a flyteadmin clusterConfigs entry).
name: ${name || "dataplane_1"}
# Pool to register into; "default" when empty. Fixed once registered.
pool: default
# HTTPS URL of the cluster's Kubernetes API server (kubectl cluster-info).
endpoint: https://dataplane1.example.com:443
# false keeps the cluster out of routing and sync.
enabled: true
auth:
  # file_path: a bearer token and CA certificate mounted from a Secret (absolute paths; read when
  # used, so rotation is picked up). in_cluster: the control plane's own service account.
  type: file_path
  tokenPath: /var/run/credentials/dataplane_1_token
  certPath: /var/run/credentials/dataplane_1_cacert
`,
};

export const queueManifest: ManifestCodec<typeof QueueSchema> = {
  schema: QueueSchema,
  fromManifest: (raw, source) => decode(QueueSchema, mapping(raw, source, "a queue manifest"), source),
  toManifest: (queue: Queue) => compact({ org: queue.org, name: queue.name, pool: queue.pool, clusters: [...queue.clusters] }),
  template: (name) => `# A queue: a routing target for workloads inside one pool.
name: ${name || "prod-gpu"}
# Pool of the queue; "default" when empty. Fixed once created.
pool: default
# "*" for every cluster of the pool, or names of clusters of that pool.
clusters:
  - "*"
`,
};

export const labelManifest: ManifestCodec<typeof ClusterLabelSchema> = {
  schema: ClusterLabelSchema,
  fromManifest(raw, source) {
    const label = mapping(raw, source, "a label manifest");
    if (Array.isArray(label.clusters)) {
      // flyteadmin's labelClusterMap names the cluster `id`.
      label.clusters = label.clusters.map((entry: unknown, index) => {
        const member = mapping(entry, source, `clusters[${index}]`);
        if (member.id !== undefined) {
          if (member.cluster !== undefined) throw new CliError(`${source}: clusters[${index}] has both id and cluster; use one`);
          member.cluster = member.id;
          delete member.id;
        }
        return member;
      });
    }
    return decode(ClusterLabelSchema, label, source);
  },
  toManifest: (label: ClusterLabel) =>
    compact({ org: label.org, name: label.name, clusters: label.clusters.map(({ cluster, weight }) => ({ cluster, weight })) }),
  template: (name) => `# A label (an entry of flyteadmin's labelClusterMap): clusters with relative weights.
name: ${name || "label1"}
clusters:
  # A registered cluster (flyteadmin's "id" works too) and its weight in (0, 1];
  # a cluster's share is its weight over the sum of the label's weights.
  - cluster: dataplane_1
    weight: 1
`,
};

export const projectManifest: ManifestCodec<typeof ProjectSchema> = {
  schema: ProjectSchema,
  fromManifest: (raw, source) => decode(ProjectSchema, mapping(raw, source, "a project manifest"), source),
  toManifest: (project: Project) => compact({ org: project.org, id: project.id, name: project.name, description: project.description }),
  template: (id) => `# A project: one namespace {project}-{domain} per configured domain on every enabled cluster.
id: ${id || "project1"}
# Display name; the id when empty.
name: ""
description: ""
`,
};

export const executionClusterLabelManifest: ManifestCodec<typeof ExecutionClusterLabelSchema> = {
  schema: ExecutionClusterLabelSchema,
  fromManifest: (raw, source) => decode(ExecutionClusterLabelSchema, mapping(raw, source, "an execution cluster label (attrFile)"), source),
  toManifest: (assignment: ExecutionClusterLabel) =>
    compact({
      org: assignment.org,
      domain: assignment.domain,
      project: assignment.project,
      workflow: assignment.workflow,
      launch_plan: assignment.launchPlan,
      value: assignment.value,
    }),
  template: () => `# An execution cluster label (flytectl's attrFile): which label executions of a scope use.
# Scope: project; project + domain; + workflow; or + launch_plan (not both).
domain: development
project: project1
# workflow: example.training_workflow
# launch_plan: example.training_lp
# An existing label.
value: label1
`,
};

/** The manifest as YAML text: what --edit shows and what its change summary compares. */
export function manifestText<S extends DescMessage>(codec: ManifestCodec<S>, item: MessageShape<S>): string {
  return toYaml(codec.toManifest(item));
}
