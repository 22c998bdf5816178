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

/** What an object is for: the namespace and service account make a project-domain routable. */
export type ObjectRole = "namespace" | "service-account" | "template";

/** One object a cluster should have, with a hash of exactly what would be applied. */
export interface DesiredObject {
  /** Stable identity: apiVersion/kind/namespace/name. */
  key: string;
  namespace: string;
  object: KubeObject;
  hash: string;
  /** The project-domain it is provisioned for. */
  project: string;
  domain: string;
  role: ObjectRole;
  /** Where it comes from, for messages: the template file, or the setting that makes it. */
  source: string;
}

export interface ProjectDomain {
  project: string;
  domain: string;
}

/** One string per project-domain, for sets and maps (NUL cannot occur in a validated id). */
export function projectDomainKey(pair: ProjectDomain): string {
  return `${pair.project}\0${pair.domain}`;
}

/** What one project-domain needs, and what of it could not be rendered. */
export interface RenderedProjectDomain {
  /** Empty when the namespace or service account cannot be rendered: then it cannot be provisioned. */
  objects: DesiredObject[];
  /** TemplateError messages; a broken extra template costs only its own objects. */
  errors: string[];
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
  const rendered = renderProjectDomain(spec, target);
  if (rendered.errors.length) throw new TemplateError(rendered.errors[0]!);
  return rendered.objects;
}

/**
 * Like desiredObjects, but a template that cannot be rendered is reported instead of thrown, and
 * costs only its own objects: the namespace and service account (what routing needs) still go out.
 */
export function renderProjectDomain(spec: ProvisioningSpec, target: ProjectDomain): RenderedProjectDomain {
  let core: DesiredObject[];
  let variables: Record<string, string>;
  try {
    const namespace = namespaceOf(spec, target);
    variables = { ...variablesOf(spec, target), namespace };
    core = coreObjects(spec, target, namespace, variables);
  } catch (error) {
    return { objects: [], errors: [messageOf(error)] };
  }
  const namespace = variables.namespace!;
  const objects = [...core];
  const errors: string[] = [];
  for (const template of spec.templates) {
    try {
      for (const object of renderObjects(template.text, variables, template.source)) {
        if (!CLUSTER_SCOPED_KINDS.has(object.kind)) object.metadata = { ...object.metadata, namespace };
        objects.push(toDesired(object, target, "template", template.source));
      }
    } catch (error) {
      errors.push(`${messageOf(error)} (for ${target.project}/${target.domain})`);
    }
  }
  return { objects, errors };
}

function coreObjects(spec: ProvisioningSpec, target: ProjectDomain, namespace: string, variables: Record<string, string>): DesiredObject[] {
  const label = `${target.project}/${target.domain}`;
  const namespaceObject: KubeObject = {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: namespace, labels: { "clusterplane.io/project": target.project, "clusterplane.io/domain": target.domain } },
  };
  const serviceAccount: KubeObject = {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: {
      name: spec.serviceAccount.name,
      namespace,
      labels: renderMap(spec.serviceAccount.labels, variables, `service account labels for ${label}`),
      annotations: renderMap(spec.serviceAccount.annotations, variables, `service account annotations for ${label}`),
    },
  };
  return [
    toDesired(namespaceObject, target, "namespace", "namespaceTemplate"),
    toDesired(serviceAccount, target, "service-account", "serviceAccount"),
  ];
}

function messageOf(error: unknown): string {
  if (error instanceof TemplateError) return error.message;
  throw error;
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

function toDesired(object: KubeObject, target: ProjectDomain, role: ObjectRole, source: string): DesiredObject {
  const namespace = object.metadata.namespace ?? "";
  return {
    key: `${object.apiVersion}/${object.kind}/${namespace}/${object.metadata.name}`,
    namespace,
    object,
    hash: createHash("sha256").update(canonicalJson(object)).digest("base64url"),
    project: target.project,
    domain: target.domain,
    role,
    source,
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
