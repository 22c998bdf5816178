/** Plain JSON values, as they travel over the wire and sit in the store. */
export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function clone<T extends Json>(value: T): T {
  return structuredClone(value);
}

/** Structural equality; key order does not matter, array order does. */
export function deepEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => key in b && deepEqual(a[key], b[key]));
  }
  return false;
}

/** The object at `key`, created empty when absent (or replaced when not an object). */
export function childObject(parent: JsonObject, key: string): JsonObject {
  const existing = parent[key];
  if (isObject(existing)) return existing;
  const created: JsonObject = {};
  parent[key] = created;
  return created;
}

/** RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const result: JsonObject = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

// ---- addressing by path (a path is a list of object keys) ----

export type FieldPath = readonly string[];

export function getAt(root: JsonObject, path: FieldPath): Json | undefined {
  let node: Json | undefined = root;
  for (const key of path) {
    if (!isObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

export function setAt(root: JsonObject, path: FieldPath, value: Json): void {
  const parents = path.slice(0, -1);
  const last = path[path.length - 1];
  if (last === undefined) throw new Error("setAt needs a non-empty path");
  let node = root;
  for (const key of parents) node = childObject(node, key);
  node[last] = clone(value);
}

/**
 * Removes the value at `path`, then removes maps left empty on the way up —
 * Kubernetes serialises empty maps as absent (`omitempty`), so an object whose
 * last label was removed has no `labels` at all.
 */
export function deleteAt(root: JsonObject, path: FieldPath): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  if (rest.length === 0) {
    delete root[head];
    return;
  }
  const child = root[head];
  if (!isObject(child)) return;
  deleteAt(child, rest);
  if (Object.keys(child).length === 0) delete root[head];
}

/**
 * The leaf paths of an object: every non-object value (scalars, and lists,
 * which are treated as atomic), found by descending through nested objects.
 * Empty objects contribute nothing.
 */
export function leafPaths(root: JsonObject, prefix: FieldPath = []): string[][] {
  const paths: string[][] = [];
  for (const [key, value] of Object.entries(root)) {
    const path = [...prefix, key];
    if (isObject(value)) paths.push(...leafPaths(value, path));
    else paths.push(path);
  }
  return paths;
}

/** A stable string form of a path, for use as a Set/Map key. */
export function pathKey(path: FieldPath): string {
  return JSON.stringify(path);
}

export function keyPath(key: string): string[] {
  return JSON.parse(key) as string[];
}

// ---- RFC 6902 JSON patch ----

export class JsonPatchError extends Error {}

/** Applies RFC 6902 operations (add, remove, replace, move, copy, test) to a copy of `document`. */
export function jsonPatch(document: Json, operations: Json): Json {
  if (!Array.isArray(operations)) throw new JsonPatchError("a JSON patch must be an array of operations");
  let result = clone(document);
  for (const operation of operations) {
    if (!isObject(operation) || typeof operation.op !== "string" || typeof operation.path !== "string") {
      throw new JsonPatchError(`invalid operation ${JSON.stringify(operation)}`);
    }
    result = applyOperation(result, operation, operation.op, operation.path);
  }
  return result;
}

function applyOperation(document: Json, operation: JsonObject, op: string, path: string): Json {
  const from = typeof operation.from === "string" ? operation.from : undefined;
  switch (op) {
    case "add":
      return addAt(document, pointer(path), requireValue(operation));
    case "remove":
      return removeAt(document, pointer(path));
    case "replace":
      return addAt(removeAt(document, pointer(path)), pointer(path), requireValue(operation));
    case "move": {
      if (from === undefined) throw new JsonPatchError(`"from" is missing in ${op} operation`);
      const value = valueAt(document, pointer(from));
      return addAt(removeAt(document, pointer(from)), pointer(path), value);
    }
    case "copy":
      if (from === undefined) throw new JsonPatchError(`"from" is missing in ${op} operation`);
      return addAt(document, pointer(path), clone(valueAt(document, pointer(from))));
    case "test":
      if (!deepEqual(valueAt(document, pointer(path)), requireValue(operation))) {
        throw new JsonPatchError(`testing value ${path} failed: test failed`);
      }
      return document;
    default:
      throw new JsonPatchError(`unexpected kind: ${op}`);
  }
}

function requireValue(operation: JsonObject): Json {
  if (!("value" in operation)) throw new JsonPatchError(`"value" is missing in ${String(operation.op)} operation`);
  return operation.value ?? null;
}

/** "/a/b~1c" → ["a", "b/c"] */
function pointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw new JsonPatchError(`invalid JSON pointer ${JSON.stringify(path)}`);
  return path.slice(1).split("/").map((token) => token.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function valueAt(document: Json, tokens: string[]): Json {
  let node: Json = document;
  for (const token of tokens) {
    const next: Json | undefined = Array.isArray(node) ? node[arrayIndex(token, node.length - 1)] : isObject(node) ? node[token] : undefined;
    if (next === undefined) throw new JsonPatchError(`doc is missing path: "/${tokens.join("/")}": missing value`);
    node = next;
  }
  return node;
}

function addAt(document: Json, tokens: string[], value: Json): Json {
  const last = tokens[tokens.length - 1];
  if (last === undefined) return clone(value);
  const parent = valueAt(document, tokens.slice(0, -1));
  if (Array.isArray(parent)) parent.splice(last === "-" ? parent.length : arrayIndex(last, parent.length), 0, clone(value));
  else if (isObject(parent)) parent[last] = clone(value);
  else throw new JsonPatchError(`doc is missing path: "/${tokens.join("/")}": missing value`);
  return document;
}

function removeAt(document: Json, tokens: string[]): Json {
  const last = tokens[tokens.length - 1];
  if (last === undefined) return null;
  valueAt(document, tokens); // must exist
  const parent = valueAt(document, tokens.slice(0, -1));
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length - 1), 1);
  else if (isObject(parent)) delete parent[last];
  return document;
}

function arrayIndex(token: string, max: number): number {
  const index = /^(0|[1-9][0-9]*)$/.test(token) ? Number(token) : NaN;
  if (!Number.isInteger(index) || index > max) throw new JsonPatchError(`invalid array index ${JSON.stringify(token)}`);
  return index;
}
