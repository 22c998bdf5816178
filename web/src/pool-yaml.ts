/**
 * The pool manifest of the seed (snake_case keys, short secret-store types) in the browser's
 * editor: to and from a ClusterPool, and the line of a field the server named in a violation.
 */
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { LineCounter, parseDocument, stringify, isMap, isScalar, type Node as YamlNode } from "yaml";
import { ClusterPoolSchema, SecretStoreTypeSchema, type ClusterPool } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { poolManifestOf, poolManifestTemplate, SECRET_STORE_TYPES } from "../../src/cli/pool-manifest.js";

export interface Problem {
  /** 1-based line of the editor's text, when known. */
  line?: number;
  field?: string;
  message: string;
}

export { SECRET_STORE_TYPES };

export const NEW_POOL_TEMPLATE = poolManifestTemplate("prod");

/** The manifest of a stored pool, as `clusterplane get pool -o yaml --manifest` would show it. */
export function poolToYaml(pool: ClusterPool): string {
  return stringify(poolManifestOf(pool));
}

export interface Parsed {
  pool?: ClusterPool;
  problems: Problem[];
}

const KNOWN: Record<string, string[]> = {
  "": ["org", "name", "config"],
  config: ["object_store_ref", "objectStoreRef", "secret_store", "secretStore", "image_registry", "imageRegistry"],
  "config.object_store_ref": ["uri", "endpoint"],
  "config.secret_store": ["type", "locator"],
  "config.image_registry": ["locator"],
};
const CANONICAL: Record<string, string> = { objectStoreRef: "object_store_ref", secretStore: "secret_store", imageRegistry: "image_registry" };

/** Parses the editor's text; problems carry the line they are on. */
export function parsePoolYaml(text: string): Parsed {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const lineOf = (offset: number | undefined) => (offset === undefined ? undefined : lines.linePos(offset).line);
  if (doc.errors.length) {
    return { problems: doc.errors.map((e) => ({ line: lineOf(e.pos[0]), message: e.message.split("\n")[0]! })) };
  }
  const problems: Problem[] = [];
  const walk = (node: unknown, path: string) => {
    if (!isMap(node)) return;
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : "";
      const keyNode = pair.key as YamlNode | null;
      const allowed = KNOWN[path];
      if (allowed && !allowed.includes(key)) {
        problems.push({ line: lineOf(keyNode?.range?.[0]), field: path ? `${path}.${key}` : key, message: `unknown key ${key}; expected one of ${allowed.filter((k) => !/[A-Z]/.test(k)).join(", ")}` });
        continue;
      }
      const canonical = CANONICAL[key] ?? key;
      walk(pair.value, path ? `${path}.${canonical}` : canonical);
    }
  };
  if (!isMap(doc.contents)) return { problems: [{ line: 1, message: "a pool manifest must be a YAML mapping (name:, config:)" }] };
  walk(doc.contents, "");
  const raw = doc.toJS() as Record<string, unknown>;
  const config = raw.config as Record<string, Record<string, unknown>> | undefined;
  const store = config?.secret_store ?? config?.secretStore;
  if (store && typeof store.type === "string" && store.type !== "") {
    const type = store.type;
    const match = SecretStoreTypeSchema.values.find((v) => v.number !== 0 && (v.name === type || v.localName === type));
    if (match) store.type = match.name;
    else {
      const node = doc.getIn(["config", config?.secret_store ? "secret_store" : "secretStore", "type"], true) as YamlNode | undefined;
      problems.push({ line: lineOf(node?.range?.[0]), field: "config.secret_store.type", message: `"${type}" is not one of ${SECRET_STORE_TYPES.join(", ")}` });
    }
  } else if (store && store.type === "") delete store.type;
  if (problems.length) return { problems };
  try {
    return { pool: fromJson(ClusterPoolSchema, raw as JsonValue), problems: [] };
  } catch (error) {
    return { problems: [{ message: (error as Error).message }] };
  }
}

/**
 * The 1-based line of the field a server violation names (`cluster_pool.config.object_store_ref.uri`):
 * the deepest key of that path the text has, so a missing field points at its parent.
 */
export function lineOfField(text: string, field: string): number | undefined {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const path = field.split(".").filter((part) => part !== "cluster_pool" && part !== "clusterPool");
  for (let depth = path.length; depth > 0; depth--) {
    const prefix = path.slice(0, depth);
    for (const variant of [prefix, prefix.map(camel)]) {
      const pair = findPair(doc.contents, variant);
      if (pair?.range) return lines.linePos(pair.range[0]).line;
    }
  }
  return undefined;
}

function findPair(node: unknown, path: string[]): YamlNode | undefined {
  let current = node;
  let keyNode: YamlNode | undefined;
  for (const part of path) {
    if (!isMap(current)) return undefined;
    const pair = current.items.find((item) => isScalar(item.key) && String(item.key.value) === part);
    if (!pair) return undefined;
    keyNode = pair.key as YamlNode;
    current = pair.value;
  }
  return keyNode;
}

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** An empty pool of that name, for create. */
export function emptyPool(name: string): ClusterPool {
  return create(ClusterPoolSchema, { name });
}
