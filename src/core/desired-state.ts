import { createHash } from "node:crypto";
import { checkResourceName } from "./names.js";
import { renderObjects, renderText, TemplateError, type KubeObject } from "./template.js";

/** How every project-domain is provisioned on every cluster. */
export interface ProvisioningSpec {
  /** Namespace name template; `{{ project }}-{{ domain }}` by default. */
  namespaceTemplate: string;
  serviceAccount: {
    name: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  /** Variables for every project-domain. */
  templateData: Record<string, string>;
  /** Per-domain variables, overriding templateData. */
  domainData: Record<string, Record<string, string>>;
  /** Extra objects per project-domain: file name → multi-document YAML template. */
  templates: { source: string; text: string }[];
}

export const DEFAULT_PROVISIONING: ProvisioningSpec = {
  namespaceTemplate: "{{ project }}-{{ domain }}",
  serviceAccount: { name: "default", labels: {}, annotations: {} },
  templateData: {},
  domainData: {},
  templates: [],
};

/** One object a cluster should have, with a hash of exactly what would be applied. */
export interface DesiredObject {
  /** Stable identity: apiVersion/kind/namespace/name. */
  key: string;
  namespace: string;
  object: KubeObject;
  hash: string;
}

export interface ProjectDomain {
  project: string;
  domain: string;
}

/**
 * Kinds that live outside namespaces; every other kind a template yields is placed in the
 * project-domain's namespace (whatever namespace the template names, so a template cannot write
 * into another project's namespace).
 */
const CLUSTER_SCOPED_KINDS = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "PriorityClass",
  "StorageClass",
  "PersistentVolume",
  "CustomResourceDefinition",
  "MutatingWebhookConfiguration",
  "ValidatingWebhookConfiguration",
  "IngressClass",
  "RuntimeClass",
  "APIService",
]);

/**
 * The objects one project-domain needs on every cluster: its namespace, its service account, then
 * every templated object, namespaced ones placed in the project-domain's namespace. Throws a
 * TemplateError saying which template and variable are wrong.
 */
export function desiredObjects(spec: ProvisioningSpec, target: ProjectDomain): DesiredObject[] {
  const namespace = namespaceOf(spec, target);
  const variables = { ...variablesOf(spec, target), namespace };
  const label = `${target.project}/${target.domain}`;

  const objects: KubeObject[] = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels: { "clusterplane.io/project": target.project, "clusterplane.io/domain": target.domain } } },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: {
        name: spec.serviceAccount.name,
        namespace,
        labels: renderMap(spec.serviceAccount.labels, variables, `service account labels for ${label}`),
        annotations: renderMap(spec.serviceAccount.annotations, variables, `service account annotations for ${label}`),
      },
    },
  ];
  for (const template of spec.templates) {
    for (const object of renderObjects(template.text, variables, template.source)) {
      if (!CLUSTER_SCOPED_KINDS.has(object.kind)) object.metadata = { ...object.metadata, namespace };
      objects.push(object);
    }
  }
  return objects.map((object) => toDesired(object));
}

/** What the namespacing part of the provisioning spec needs; projects are checked against it. */
export type NamespaceSpec = Pick<ProvisioningSpec, "namespaceTemplate" | "templateData" | "domainData">;

/** The namespace of a project-domain; a TemplateError when the template cannot give a valid name. */
export function namespaceOf(spec: NamespaceSpec, target: ProjectDomain): string {
  const namespace = renderText(spec.namespaceTemplate, variablesOf(spec, target), "namespace template");
  const problem = checkResourceName(namespace);
  if (problem) throw new TemplateError(`namespace template gives "${namespace}" for ${target.project}/${target.domain}: ${problem}`);
  return namespace;
}

/** Why `project` cannot be given a namespace in one of `domains`, or null when it can in all. */
export function namespaceProblem(spec: NamespaceSpec, project: string, domains: readonly string[]): string | null {
  for (const domain of domains) {
    try {
      namespaceOf(spec, { project, domain });
    } catch (error) {
      return (error as Error).message;
    }
  }
  return null;
}

function variablesOf(spec: NamespaceSpec, target: ProjectDomain): Record<string, string> {
  return { ...spec.templateData, ...spec.domainData[target.domain], project: target.project, domain: target.domain };
}

function renderMap(map: Record<string, string>, variables: Record<string, string>, source: string): Record<string, string> {
  return Object.fromEntries(Object.entries(map).map(([key, value]) => [key, renderText(value, variables, source)]));
}

function toDesired(object: KubeObject): DesiredObject {
  const namespace = object.metadata.namespace ?? "";
  return {
    key: `${object.apiVersion}/${object.kind}/${namespace}/${object.metadata.name}`,
    namespace,
    object,
    hash: createHash("sha256").update(canonicalJson(object)).digest("base64url"),
  };
}

/** JSON with object keys sorted, so equal objects always hash alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
