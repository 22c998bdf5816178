import {
  type FieldPath,
  type Json,
  type JsonObject,
  deepEqual,
  deleteAt,
  getAt,
  isObject,
  keyPath,
  leafPaths,
  pathKey,
  setAt,
} from "./json.js";
import { type FieldConflict, applyConflict } from "./status.js";

/**
 * Field ownership, a small model of server-side apply (structured-merge-diff).
 *
 * Ownership is tracked per leaf field of the object's user-settable part
 * (labels, annotations, and the type's own fields; see resources.ts). Lists
 * are atomic leaves. Each manager entry is keyed by (manager, operation) like
 * the real `metadata.managedFields`, and serialised in the real FieldsV1 form:
 * `{"f:metadata":{"f:labels":{"f:team":{}}}}`.
 */

export type Operation = "Apply" | "Update";

export interface ManagerEntry {
  manager: string;
  operation: Operation;
  time: string;
  /** Owned leaf paths, as pathKey() strings. */
  fields: Set<string>;
}

// ---- metadata.managedFields <-> entries ----

export function readManagedFields(managedFields: Json | undefined): ManagerEntry[] {
  if (!Array.isArray(managedFields)) return [];
  return managedFields.filter(isObject).map((entry) => ({
    manager: String(entry.manager ?? ""),
    operation: entry.operation === "Apply" ? "Apply" : "Update",
    time: String(entry.time ?? ""),
    fields: fromFieldsV1(entry.fieldsV1),
  }));
}

export function writeManagedFields(entries: ManagerEntry[]): Json[] {
  return entries.map((entry) => ({
    manager: entry.manager,
    operation: entry.operation,
    apiVersion: "v1",
    time: entry.time,
    fieldsType: "FieldsV1",
    fieldsV1: toFieldsV1(entry.fields),
  }));
}

function toFieldsV1(fields: Set<string>): JsonObject {
  const root: JsonObject = {};
  for (const key of [...fields].sort()) setAt(root, keyPath(key).map((segment) => `f:${segment}`), {});
  return root;
}

function fromFieldsV1(fieldsV1: Json | undefined, prefix: string[] = []): Set<string> {
  const fields = new Set<string>();
  if (!isObject(fieldsV1)) return fields;
  for (const [key, child] of Object.entries(fieldsV1)) {
    if (!key.startsWith("f:")) continue; // "." and "k:" entries are not produced by this model
    const path = [...prefix, key.slice(2)];
    const nested = fromFieldsV1(child, path);
    if (nested.size === 0) fields.add(pathKey(path));
    else nested.forEach((field) => fields.add(field));
  }
  return fields;
}

// ---- apply ----

export interface ApplyInput {
  /** User-settable part of the live object ({} when it does not exist yet). */
  live: JsonObject;
  entries: ManagerEntry[];
  /** User-settable part of the applied configuration. */
  applied: JsonObject;
  manager: string;
  force: boolean;
  now: string;
}

/**
 * Server-side apply of `applied` by `manager`:
 * - a field another manager owns with a different value is a conflict (409)
 *   unless `force`, which takes it over;
 * - fields this manager applied before but left out now are removed, unless
 *   another manager still owns them;
 * - every applied field is set, and the manager's Apply entry becomes exactly
 *   the applied fields.
 */
export function applyFields(input: ApplyInput): { view: JsonObject; entries: ManagerEntry[] } {
  const view = structuredClone(input.live);
  const entries = input.entries.map((e) => ({ ...e, fields: new Set(e.fields) }));
  const appliedPaths = leafPaths(input.applied);
  const appliedKeys = new Set(appliedPaths.map(pathKey));
  const isSelf = (e: ManagerEntry) => e.manager === input.manager && e.operation === "Apply";
  const others = entries.filter((e) => !isSelf(e));

  const conflicts = findConflicts(appliedPaths, others, view, input.applied, input.manager);
  if (conflicts.length > 0 && !input.force) throw applyConflict(conflicts);
  for (const path of appliedPaths) {
    // Forced: the losers give the field up. Same value: it stays shared.
    if (input.force) others.forEach((e) => e.fields.delete(pathKey(path)));
  }

  const self = entries.find(isSelf);
  for (const key of self?.fields ?? []) {
    const stillOwned = appliedKeys.has(key) || others.some((e) => e.fields.has(key));
    if (!stillOwned) deleteAt(view, keyPath(key));
  }
  for (const path of appliedPaths) setAt(view, path, getAt(input.applied, path) ?? null);

  const selfEntry: ManagerEntry = { manager: input.manager, operation: "Apply", time: input.now, fields: appliedKeys };
  return { view, entries: replaceEntry(entries, isSelf, selfEntry) };
}

function findConflicts(
  paths: FieldPath[],
  others: ManagerEntry[],
  live: JsonObject,
  applied: JsonObject,
  manager: string,
): FieldConflict[] {
  const conflicts: FieldConflict[] = [];
  for (const path of paths) {
    if (deepEqual(getAt(live, path), getAt(applied, path))) continue;
    for (const other of others) {
      // The same manager's Update entry is not a rival for its own apply.
      if (other.manager !== manager && other.fields.has(pathKey(path))) {
        conflicts.push({ manager: other.manager, field: "." + path.join(".") });
      }
    }
  }
  return conflicts;
}

// ---- update (create, replace, merge patch) ----

export interface UpdateInput {
  before: JsonObject;
  after: JsonObject;
  entries: ManagerEntry[];
  manager: string;
  now: string;
}

/**
 * Ownership after a non-apply write: the writer takes every field it added or
 * changed (others lose them, no conflicts for updates), and removed fields
 * are dropped from every entry.
 */
export function updateFields(input: UpdateInput): ManagerEntry[] {
  const beforeKeys = new Set(leafPaths(input.before).map(pathKey));
  const afterPaths = leafPaths(input.after);
  const afterKeys = new Set(afterPaths.map(pathKey));
  const changed = afterPaths
    .filter((path) => !beforeKeys.has(pathKey(path)) || !deepEqual(getAt(input.before, path), getAt(input.after, path)))
    .map(pathKey);

  const isSelf = (e: ManagerEntry) => e.manager === input.manager && e.operation === "Update";
  const entries = input.entries.map((e) => {
    const fields = new Set([...e.fields].filter((key) => afterKeys.has(key)));
    if (!isSelf(e)) changed.forEach((key) => fields.delete(key));
    return { ...e, fields };
  });
  const self = entries.find(isSelf);
  if (changed.length === 0) return dropEmpty(entries);
  const selfEntry: ManagerEntry = {
    manager: input.manager,
    operation: "Update",
    time: input.now,
    fields: new Set([...(self?.fields ?? []), ...changed]),
  };
  return replaceEntry(entries, isSelf, selfEntry);
}

/** Puts `entry` where the matching one was (or at the end), and drops entries that own nothing. */
function replaceEntry(entries: ManagerEntry[], matches: (e: ManagerEntry) => boolean, entry: ManagerEntry): ManagerEntry[] {
  const index = entries.findIndex(matches);
  const next = index >= 0 ? entries.map((e, i) => (i === index ? entry : e)) : [...entries, entry];
  return dropEmpty(next);
}

function dropEmpty(entries: ManagerEntry[]): ManagerEntry[] {
  return entries.filter((e) => e.fields.size > 0);
}

/** Entries compared without their timestamps: did ownership really change? */
export function sameOwnership(a: ManagerEntry[], b: ManagerEntry[]): boolean {
  const flat = (entries: ManagerEntry[]) =>
    entries.map((e) => `${e.operation}\u0000${e.manager}\u0000${[...e.fields].sort().join("\u0000")}`).sort();
  return deepEqual(flat(a), flat(b));
}
