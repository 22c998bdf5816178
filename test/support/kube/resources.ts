import { type Json, type JsonObject, childObject, clone, isObject } from "./json.js";
import { badRequest, type KubeStatusError } from "./status.js";
import { dns1123LabelErrors, dns1123SubdomainErrors } from "./validation.js";

/**
 * The two resource types the stand-in serves, described the way the real
 * registry strategies behave: which fields a client may set, which the
 * server owns, defaults on create, and name rules.
 */

export type ResourceName = "namespaces" | "serviceaccounts";

export interface ResourceDef {
  resource: ResourceName;
  singularName: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  /** Top-level fields (besides metadata) a client sets; unknown fields are dropped, as with fieldValidation=Warn/Ignore. */
  userFields: string[];
  /** Top-level fields only the server sets: ignored in requests, kept from the live object on update. */
  serverFields: string[];
  nameErrors(name: string): string[];
  /** Server-side defaults for a new object; `input` is the request body. */
  defaultOnCreate(object: JsonObject, input: JsonObject): void;
  /** Invariants re-established after every write. */
  normalize(object: JsonObject): void;
  /** Type problems that make the body undecodable (400), or undefined. */
  decodeError(body: JsonObject): KubeStatusError | undefined;
}

/** The label kube-apiserver puts on every namespace (GA since 1.22). */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

export const NAMESPACES: ResourceDef = {
  resource: "namespaces",
  singularName: "namespace",
  kind: "Namespace",
  listKind: "NamespaceList",
  namespaced: false,
  shortNames: ["ns"],
  userFields: [],
  // The namespace strategy resets spec and status on update through the main resource.
  serverFields: ["spec", "status"],
  nameErrors: dns1123LabelErrors,
  defaultOnCreate(object, input) {
    const requested = isObject(input.spec) && Array.isArray(input.spec.finalizers) ? input.spec.finalizers : [];
    const finalizers = requested.filter((f): f is string => typeof f === "string");
    if (!finalizers.includes("kubernetes")) finalizers.push("kubernetes");
    object.spec = { finalizers };
    object.status = { phase: "Active" };
  },
  normalize(object) {
    const metadata = childObject(object, "metadata");
    childObject(metadata, "labels")[NAMESPACE_NAME_LABEL] = metadata.name ?? null;
  },
  decodeError(body) {
    return metadataDecodeError("Namespace", body) ?? fieldTypeError("Namespace", body, ["spec", "finalizers"], "array", "[]v1.FinalizerName");
  },
};

export const SERVICE_ACCOUNTS: ResourceDef = {
  resource: "serviceaccounts",
  singularName: "serviceaccount",
  kind: "ServiceAccount",
  listKind: "ServiceAccountList",
  namespaced: true,
  shortNames: ["sa"],
  userFields: ["secrets", "imagePullSecrets", "automountServiceAccountToken"],
  serverFields: [],
  nameErrors: dns1123SubdomainErrors,
  defaultOnCreate() {},
  normalize() {},
  decodeError(body) {
    return (
      metadataDecodeError("ServiceAccount", body) ??
      fieldTypeError("ServiceAccount", body, ["secrets"], "array", "[]v1.ObjectReference") ??
      fieldTypeError("ServiceAccount", body, ["imagePullSecrets"], "array", "[]v1.LocalObjectReference") ??
      fieldTypeError("ServiceAccount", body, ["automountServiceAccountToken"], "boolean", "bool")
    );
  },
};

export const RESOURCES: readonly ResourceDef[] = [NAMESPACES, SERVICE_ACCOUNTS];

/** The verbs the stand-in implements (no watch, no deletecollection). */
export const VERBS = ["create", "delete", "get", "list", "patch", "update"];

export function discoveryEntry(def: ResourceDef): JsonObject {
  return {
    name: def.resource,
    singularName: def.singularName,
    namespaced: def.namespaced,
    kind: def.kind,
    verbs: VERBS,
    shortNames: def.shortNames,
  };
}

// ---- splitting objects into the client's part and the server's part ----

/** Metadata a client sets; everything else in metadata is the server's. */
const USER_METADATA = ["labels", "annotations", "finalizers", "ownerReferences"];
/** Server metadata, in the order kube-apiserver serialises it. */
const SYSTEM_METADATA = [
  "name",
  "generateName",
  "namespace",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
];

export function metadataOf(object: JsonObject): JsonObject {
  return isObject(object.metadata) ? object.metadata : {};
}

/** The client-settable part of `object`: what field ownership and apply work on. */
export function userView(def: ResourceDef, object: JsonObject): JsonObject {
  const view: JsonObject = {};
  const metadata = pick(metadataOf(object), USER_METADATA);
  if (Object.keys(metadata).length > 0) view.metadata = metadata;
  Object.assign(view, pick(object, def.userFields));
  return withoutNulls(view);
}

/**
 * A stored object from the server's part of `base` (system metadata and
 * server fields) and the client's part `view`, in kube-apiserver's key order.
 */
export function compose(def: ResourceDef, base: JsonObject, view: JsonObject, managedFields: Json[]): JsonObject {
  const metadata: JsonObject = { ...pick(metadataOf(base), SYSTEM_METADATA), ...pick(metadataOf(view), USER_METADATA) };
  if (managedFields.length > 0) metadata.managedFields = managedFields;
  const object: JsonObject = { kind: def.kind, apiVersion: "v1", metadata };
  Object.assign(object, pick(view, def.userFields), pick(base, def.serverFields));
  def.normalize(object);
  return clone(object);
}

function pick(source: JsonObject, keys: readonly string[]): JsonObject {
  const out: JsonObject = {};
  for (const key of keys) {
    const value = source[key];
    if (value !== undefined && value !== null) out[key] = value;
  }
  return out;
}

/** JSON null means "unset" in these objects; dropping it keeps ownership and equality simple. */
function withoutNulls(object: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(object)) {
    if (value === null) continue;
    out[key] = isObject(value) ? withoutNulls(value) : value;
  }
  return out;
}

// ---- decode errors: the 400s Go's JSON decoder produces for wrongly typed fields ----

function metadataDecodeError(kind: string, body: JsonObject): KubeStatusError | undefined {
  if (body.metadata !== undefined && body.metadata !== null && !isObject(body.metadata)) {
    return undecodable(kind, `cannot unmarshal ${jsonType(body.metadata)} into Go struct field ${kind}.metadata of type v1.ObjectMeta`);
  }
  const metadata = metadataOf(body);
  for (const field of ["labels", "annotations"]) {
    const map = metadata[field];
    if (map === undefined || map === null) continue;
    if (!isObject(map)) {
      return undecodable(kind, `cannot unmarshal ${jsonType(map)} into Go struct field ObjectMeta.metadata.${field} of type map[string]string`);
    }
    const bad = Object.values(map).find((value) => value !== null && typeof value !== "string");
    if (bad !== undefined) {
      return undecodable(kind, `cannot unmarshal ${jsonType(bad)} into Go struct field ObjectMeta.metadata.${field} of type string`);
    }
  }
  for (const field of ["name", "namespace", "resourceVersion", "generateName"]) {
    const value = metadata[field];
    if (value !== undefined && value !== null && typeof value !== "string") {
      return undecodable(kind, `cannot unmarshal ${jsonType(value)} into Go struct field ObjectMeta.metadata.${field} of type string`);
    }
  }
  return undefined;
}

function fieldTypeError(
  kind: string,
  body: JsonObject,
  path: string[],
  expected: "array" | "boolean",
  goType: string,
): KubeStatusError | undefined {
  let value: Json | undefined = body;
  for (const key of path) value = isObject(value) ? value[key] : undefined;
  if (value === undefined || value === null || jsonType(value) === expected) return undefined;
  return undecodable(kind, `cannot unmarshal ${jsonType(value)} into Go struct field ${kind}.${path.join(".")} of type ${goType}`);
}

function undecodable(kind: string, detail: string): KubeStatusError {
  return badRequest(`${kind} in version "v1" cannot be handled as a ${kind}: json: ${detail}`);
}

function jsonType(value: Json): string {
  if (Array.isArray(value)) return "array";
  if (isObject(value)) return "object";
  return typeof value;
}
