import { randomBytes, randomUUID } from "node:crypto";
import { type Json, type JsonObject, deepEqual, isObject } from "./json.js";
import {
  type ManagerEntry,
  applyFields,
  readManagedFields,
  sameOwnership,
  updateFields,
  writeManagedFields,
} from "./managed-fields.js";
import {
  NAMESPACES,
  type ResourceDef,
  type ResourceName,
  SERVICE_ACCOUNTS,
  compose,
  metadataOf,
  userView,
} from "./resources.js";
import {
  MODIFIED_SINCE_READ,
  alreadyExists,
  badRequest,
  conflict,
  fieldInvalid,
  fieldRequired,
  forbidden,
  invalid,
  namespaceTerminating,
  notFound,
} from "./status.js";
import { metadataMapErrors } from "./validation.js";

/**
 * The stand-in's registry: objects keyed by resource/namespace/name, one
 * global resourceVersion counter (like etcd's revision), and the write
 * operations with kube-apiserver's checks in kube-apiserver's order:
 * decode (400) → validation (422) → admission (404/403) → storage (409).
 *
 * Every write computes a candidate object and commits it only when it
 * differs from the live one (managedFields timestamps aside), so a no-op
 * apply/update/patch neither moves the resourceVersion nor counts as a change.
 */

export interface WriteOptions {
  /** Field manager recorded in managedFields. */
  manager: string;
  /** dryRun=All: run every check, persist nothing. */
  dryRun?: boolean;
}

export interface ApplyOptions extends WriteOptions {
  force?: boolean;
}

export interface DeletePreconditions {
  uid?: string;
  resourceVersion?: string;
}

export interface WriteResult {
  object: JsonObject;
  /** False when the write left stored state as it was. */
  changed: boolean;
  created: boolean;
}

export interface ObjectStoreOptions {
  /** Create a "default" ServiceAccount in every new namespace, as kube-controller-manager does. */
  defaultServiceAccounts: boolean;
  /** Called when a namespace starts terminating; the owner finalizes it later. */
  onNamespaceTerminating(name: string): void;
}

/** Namespaces kube-apiserver refuses to delete. */
const UNDELETABLE_NAMESPACES = new Set(["default", "kube-system", "kube-public"]);

export class ObjectStore {
  private revision = 0;
  private readonly objects = new Map<string, JsonObject>();

  constructor(private readonly options: ObjectStoreOptions) {}

  /** The current global resourceVersion, as LIST responses report it. */
  get resourceVersion(): string {
    return String(this.revision);
  }

  get(def: ResourceDef, namespace: string, name: string): JsonObject | undefined {
    const object = this.objects.get(storageKey(def.resource, namespace, name));
    return object ? structuredClone(object) : undefined;
  }

  /** Objects of one type, sorted by namespace then name; all namespaces when `namespace` is undefined. */
  list(def: ResourceDef, namespace?: string): JsonObject[] {
    const prefix = namespace === undefined ? `${def.resource}/` : `${def.resource}/${namespace}/`;
    return [...this.objects.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => structuredClone(object));
  }

  // ---- create ----

  create(def: ResourceDef, namespace: string, body: JsonObject, options: WriteOptions): WriteResult {
    checkBody(def, body, namespace);
    const name = nameForCreate(def, body);
    const view = userView(def, body);
    validate(def, name, view, true);
    this.admitCreate(def, namespace, name);
    const entries = updateFields({ before: {}, after: view, entries: [], manager: options.manager, now: now() });
    return this.insert(def, namespace, name, body, view, entries, options);
  }

  // ---- replace (PUT) ----

  replace(def: ResourceDef, namespace: string, name: string, body: JsonObject, options: WriteOptions): WriteResult {
    checkBody(def, body, namespace);
    checkNameMatches(body, name);
    const live = this.require(def, namespace, name);
    checkResourceVersion(def, name, live, metadataOf(body).resourceVersion);
    return this.update(def, live, userView(def, body), options);
  }

  // ---- patch (merge, strategic-merge and JSON patch; the caller supplies the patch function) ----

  /**
   * `applyPatch` turns the live object into the patched one (and throws a
   * KubeStatusError for a patch that cannot apply). The result must still be
   * the same object: kind, name and namespace unchanged, and a stated
   * resourceVersion must be the live one.
   */
  patch(def: ResourceDef, namespace: string, name: string, applyPatch: (live: JsonObject) => Json, options: WriteOptions): WriteResult {
    const live = this.require(def, namespace, name);
    const patched = applyPatch(live);
    if (!isObject(patched)) throw badRequest("the object provided is unrecognized (must be of type Patch)");
    checkBody(def, patched, namespace);
    checkNameMatches(patched, name);
    checkResourceVersion(def, name, live, metadataOf(patched).resourceVersion);
    return this.update(def, live, userView(def, patched), options);
  }

  // ---- server-side apply ----

  apply(def: ResourceDef, namespace: string, name: string, body: JsonObject, options: ApplyOptions): WriteResult {
    checkApplyBody(def, body, namespace, name);
    const applied = userView(def, body);
    const live = this.get(def, namespace, name);
    const force = options.force ?? false;
    if (!live) {
      validate(def, name, applied, true);
      this.admitCreate(def, namespace, name);
      const { view, entries } = applyFields({ live: {}, entries: [], applied, manager: options.manager, force, now: now() });
      return this.insert(def, namespace, name, body, view, entries, options);
    }
    checkResourceVersion(def, name, live, metadataOf(body).resourceVersion);
    const liveView = userView(def, live);
    const entries = readManagedFields(metadataOf(live).managedFields);
    const result = applyFields({ live: liveView, entries, applied, manager: options.manager, force, now: now() });
    validate(def, name, result.view, false);
    return this.commitUpdate(def, live, result.view, result.entries, options);
  }

  // ---- delete ----

  delete(def: ResourceDef, namespace: string, name: string, preconditions: DeletePreconditions, options: { dryRun?: boolean }): WriteResult {
    const live = this.require(def, namespace, name);
    checkPreconditions(def, name, live, preconditions);
    if (def === NAMESPACES) return this.startNamespaceTermination(live, options);
    if (options.dryRun) return { object: live, changed: false, created: false };
    this.objects.delete(storageKey(def.resource, namespace, name));
    metadataOf(live).resourceVersion = this.nextRevision();
    return { object: live, changed: true, created: false };
  }

  /**
   * Finishes deleting a terminating namespace: its service accounts, then the
   * namespace itself (what the namespace controller does once content is gone).
   * Returns false when there was nothing to finalize.
   */
  finalizeNamespace(name: string): boolean {
    const live = this.get(NAMESPACES, "", name);
    if (!live || !metadataOf(live).deletionTimestamp) return false;
    for (const account of this.list(SERVICE_ACCOUNTS, name)) {
      this.objects.delete(storageKey("serviceaccounts", name, String(metadataOf(account).name)));
      this.nextRevision();
    }
    this.objects.delete(storageKey("namespaces", "", name));
    this.nextRevision();
    return true;
  }

  /** Stores an object as-is (seeding system namespaces); bypasses every check. */
  seed(def: ResourceDef, namespace: string, name: string, view: JsonObject = {}): void {
    this.commitNew(def, namespace, name, {}, view, []);
  }

  // ---- internals ----

  private require(def: ResourceDef, namespace: string, name: string): JsonObject {
    const live = this.get(def, namespace, name);
    if (!live) throw notFound(def.resource, name);
    return live;
  }

  /** NamespaceLifecycle admission, then the storage-level existence check. */
  private admitCreate(def: ResourceDef, namespace: string, name: string): void {
    if (def.namespaced) {
      const parent = this.get(NAMESPACES, "", namespace);
      if (!parent) throw notFound("namespaces", namespace);
      if (metadataOf(parent).deletionTimestamp) throw namespaceTerminating(def.resource, name, namespace);
    }
    const existing = this.get(def, namespace, name);
    if (existing) throw alreadyExists(def.resource, name, Boolean(metadataOf(existing).deletionTimestamp));
  }

  private insert(
    def: ResourceDef,
    namespace: string,
    name: string,
    body: JsonObject,
    view: JsonObject,
    entries: ManagerEntry[],
    options: WriteOptions,
  ): WriteResult {
    if (options.dryRun) {
      const object = this.buildNew(def, namespace, name, body, view, entries, "");
      return { object, changed: false, created: true };
    }
    const object = this.commitNew(def, namespace, name, body, view, entries);
    if (def === NAMESPACES && this.options.defaultServiceAccounts) this.seed(SERVICE_ACCOUNTS, name, "default");
    return { object, changed: true, created: true };
  }

  private commitNew(def: ResourceDef, namespace: string, name: string, body: JsonObject, view: JsonObject, entries: ManagerEntry[]): JsonObject {
    const object = this.buildNew(def, namespace, name, body, view, entries, this.nextRevision());
    this.objects.set(storageKey(def.resource, namespace, name), object);
    return structuredClone(object);
  }

  private buildNew(
    def: ResourceDef,
    namespace: string,
    name: string,
    body: JsonObject,
    view: JsonObject,
    entries: ManagerEntry[],
    resourceVersion: string,
  ): JsonObject {
    const metadata: JsonObject = { name, uid: randomUUID(), creationTimestamp: now() };
    // A dry-run create has no resourceVersion: nothing was stored.
    if (resourceVersion !== "") metadata.resourceVersion = resourceVersion;
    const generateName = metadataOf(body).generateName;
    if (typeof generateName === "string" && generateName !== "") metadata.generateName = generateName;
    if (def.namespaced) metadata.namespace = namespace;
    const system: JsonObject = { metadata };
    def.defaultOnCreate(system, body);
    return compose(def, system, view, writeManagedFields(entries));
  }

  /** A non-apply update: ownership follows what changed. */
  private update(def: ResourceDef, live: JsonObject, view: JsonObject, options: WriteOptions): WriteResult {
    validate(def, String(metadataOf(live).name), view, false);
    const entries = updateFields({
      before: userView(def, live),
      after: view,
      entries: readManagedFields(metadataOf(live).managedFields),
      manager: options.manager,
      now: now(),
    });
    return this.commitUpdate(def, live, view, entries, options);
  }

  /** Stores the candidate only if it really differs from `live`. */
  private commitUpdate(def: ResourceDef, live: JsonObject, view: JsonObject, entries: ManagerEntry[], options: WriteOptions): WriteResult {
    const candidate = compose(def, live, view, writeManagedFields(entries));
    if (isSameState(live, candidate)) return { object: live, changed: false, created: false };
    if (options.dryRun) return { object: candidate, changed: false, created: false };
    const metadata = metadataOf(candidate);
    metadata.resourceVersion = this.nextRevision();
    this.objects.set(storageKey(def.resource, String(metadata.namespace ?? ""), String(metadata.name)), candidate);
    return { object: structuredClone(candidate), changed: true, created: false };
  }

  private startNamespaceTermination(live: JsonObject, options: { dryRun?: boolean }): WriteResult {
    const name = String(metadataOf(live).name);
    if (UNDELETABLE_NAMESPACES.has(name)) throw forbidden("namespaces", name, "this namespace may not be deleted");
    // Deleting a namespace that is already terminating answers with it again, unchanged.
    if (metadataOf(live).deletionTimestamp || options.dryRun) return { object: live, changed: false, created: false };
    const base = structuredClone(live);
    metadataOf(base).deletionTimestamp = now();
    metadataOf(base).resourceVersion = this.nextRevision();
    base.status = { phase: "Terminating" };
    const terminating = compose(NAMESPACES, base, userView(NAMESPACES, live), asArray(metadataOf(live).managedFields));
    this.objects.set(storageKey("namespaces", "", name), terminating);
    this.options.onNamespaceTerminating(name);
    return { object: structuredClone(terminating), changed: true, created: false };
  }

  private nextRevision(): string {
    this.revision += 1;
    return String(this.revision);
  }
}

// ---- checks ----

function storageKey(resource: ResourceName, namespace: string, name: string): string {
  return `${resource}/${namespace}/${name}`;
}

function now(): string {
  // metav1.Time has second precision.
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

function asArray(value: Json | undefined): Json[] {
  return Array.isArray(value) ? value : [];
}

/** Same object and same ownership, ignoring managedFields timestamps. */
function isSameState(live: JsonObject, candidate: JsonObject): boolean {
  const strip = (object: JsonObject): JsonObject => {
    const copy = structuredClone(object);
    delete metadataOf(copy).managedFields;
    return copy;
  };
  return (
    deepEqual(strip(live), strip(candidate)) &&
    sameOwnership(readManagedFields(metadataOf(live).managedFields), readManagedFields(metadataOf(candidate).managedFields))
  );
}

/** Decodability, apiVersion/kind, and the namespace matching the URL's (POST, PUT, patch result). */
function checkBody(def: ResourceDef, body: JsonObject, namespace: string): void {
  const decodeError = def.decodeError(body);
  if (decodeError) throw decodeError;
  const { apiVersion, kind } = body;
  // A body may leave out apiVersion/kind (the URL supplies them) but may not contradict them.
  if (apiVersion !== undefined && apiVersion !== null && apiVersion !== "v1") {
    throw badRequest(`the API version in the data (${String(apiVersion)}) does not match the expected API version (v1)`);
  }
  if (kind !== undefined && kind !== null && kind !== def.kind) {
    throw badRequest(`${String(kind)} in version "v1" cannot be handled as a ${def.kind}: the kind in the data (${String(kind)}) does not match the expected kind (${def.kind})`);
  }
  const bodyNamespace = metadataOf(body).namespace;
  if (def.namespaced && typeof bodyNamespace === "string" && bodyNamespace !== "" && bodyNamespace !== namespace) {
    throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
  }
}

/** An apply body must say what it is: apiVersion and kind are required, managedFields forbidden. */
function checkApplyBody(def: ResourceDef, body: JsonObject, namespace: string, name: string): void {
  const decodeError = def.decodeError(body);
  if (decodeError) throw decodeError;
  if (metadataOf(body).managedFields !== undefined && metadataOf(body).managedFields !== null) {
    throw badRequest("metadata.managedFields must be nil");
  }
  if (body.apiVersion !== "v1") {
    throw badRequest(`Incorrect version specified in apply patch. Specified patch version: ${String(body.apiVersion ?? "")}, expected: v1`);
  }
  if (body.kind !== def.kind) {
    throw badRequest(`Incorrect kind specified in apply patch. Specified patch kind: ${String(body.kind ?? "")}, expected: ${def.kind}`);
  }
  checkBody(def, body, namespace);
  checkNameMatches(body, name);
}

function checkNameMatches(body: JsonObject, name: string): void {
  const bodyName = metadataOf(body).name;
  if (bodyName !== name) {
    throw badRequest(`the name of the object (${String(bodyName ?? "")}) does not match the name on the URL (${name})`);
  }
}

function nameForCreate(def: ResourceDef, body: JsonObject): string {
  const metadata = metadataOf(body);
  if (typeof metadata.name === "string" && metadata.name !== "") return metadata.name;
  if (typeof metadata.generateName === "string" && metadata.generateName !== "") {
    // Like the registry's name generator: five characters from a consonant-and-digit alphabet.
    const alphabet = "bcdfghjklmnpqrstvwxz2456789";
    const suffix = [...randomBytes(5)].map((byte) => alphabet[byte % alphabet.length]).join("");
    return metadata.generateName + suffix;
  }
  throw invalid(def.kind, "", [fieldRequired("metadata.name", "name or generateName is required")]);
}

function validate(def: ResourceDef, name: string, view: JsonObject, checkName: boolean): void {
  const errors = checkName ? def.nameErrors(name).map((message) => fieldInvalid("metadata.name", name, message)) : [];
  errors.push(...metadataMapErrors(metadataOf(view)));
  if (errors.length > 0) throw invalid(def.kind, name, errors);
}

/** Optimistic concurrency: a stated resourceVersion must be the live one. */
function checkResourceVersion(def: ResourceDef, name: string, live: JsonObject, stated: Json | undefined): void {
  if (typeof stated === "string" && stated !== "" && stated !== metadataOf(live).resourceVersion) {
    throw conflict(def.resource, name, MODIFIED_SINCE_READ);
  }
}

function checkPreconditions(def: ResourceDef, name: string, live: JsonObject, preconditions: DeletePreconditions): void {
  const metadata = metadataOf(live);
  if (preconditions.uid && preconditions.uid !== metadata.uid) {
    throw conflict(def.resource, name, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${String(metadata.uid)}`);
  }
  if (preconditions.resourceVersion && preconditions.resourceVersion !== metadata.resourceVersion) {
    throw conflict(
      def.resource,
      name,
      `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${String(metadata.resourceVersion)}`,
    );
  }
}
