import { parseAllDocuments } from "yaml";

/** `{{ name }}` with optional spaces; names are letters, digits, '_' and '.'. */
const VARIABLE = /\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}/g;
const UNCLOSED = /\{\{(?![^}]*\}\})/;

/**
 * A placeholder stands in for a variable while the YAML is parsed. Private-use characters are
 * valid anywhere a plain or quoted scalar is, and never appear in a real template, so a value is
 * put back into the parsed tree as a string and YAML never gets to re-type it.
 */
const PLACEHOLDER_START = "\uE000";
const PLACEHOLDER_END = "\uE001";
const PLACEHOLDER = /\uE000([A-Za-z0-9_.]+)\uE001/g;

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TemplateError";
  }
}

/**
 * Replaces every `{{ name }}` with its value. A variable without a value is an error naming it
 * (a template must never reach a cluster with a placeholder left in it).
 */
export function renderText(text: string, variables: Readonly<Record<string, string>>, source: string): string {
  checkVariables(text, variables, source);
  return text.replace(VARIABLE, (_, name: string) => variables[name]!);
}

/** A Kubernetes object as parsed from a template. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/**
 * Renders a multi-document YAML template into objects; each needs apiVersion, kind and
 * metadata.name. Variables are substituted into the parsed tree, not the text: a project id such
 * as `0x1f`, `123`, `true` or `null` stays the string it is, quoted in the template or not, and a
 * value can never change the structure of the document.
 */
export function renderObjects(text: string, variables: Readonly<Record<string, string>>, source: string): KubeObject[] {
  checkVariables(text, variables, source);
  const withPlaceholders = text.replace(VARIABLE, (_, name: string) => `${PLACEHOLDER_START}${name}${PLACEHOLDER_END}`);
  const objects: KubeObject[] = [];
  parseAllDocuments(withPlaceholders).forEach((document, index) => {
    const where = `${source} document ${index + 1}`;
    if (document.errors.length) throw new TemplateError(`${where}: ${withVariables(document.errors[0]!.message)}`);
    const value = substitute(document.toJS(), variables);
    if (value === null || value === undefined) return;
    objects.push(checkObject(value, where));
  });
  return objects;
}

function checkVariables(text: string, variables: Readonly<Record<string, string>>, source: string): void {
  const missing = new Set<string>();
  for (const [, name] of text.matchAll(VARIABLE)) if (variables[name!] === undefined) missing.add(name!);
  if (missing.size) {
    const known = Object.keys(variables).sort().join(", ");
    throw new TemplateError(`${source}: unknown variable(s) ${[...missing].map((m) => `{{ ${m} }}`).join(", ")}; known: ${known}`);
  }
  if (UNCLOSED.test(text.replace(VARIABLE, ""))) throw new TemplateError(`${source}: "{{" without a closing "}}"`);
}

/** Puts the values into every string of the tree, keys included. */
function substitute(value: unknown, variables: Readonly<Record<string, string>>): unknown {
  if (typeof value === "string") return value.replace(PLACEHOLDER, (_, name: string) => variables[name]!);
  if (Array.isArray(value)) return value.map((item) => substitute(item, variables));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [substitute(key, variables), substitute(item, variables)]));
  }
  return value;
}

/** Parser messages quote the text; show the operator their `{{ name }}`, not the placeholder. */
function withVariables(message: string): string {
  return message.replace(PLACEHOLDER, (_, name: string) => `{{ ${name} }}`);
}

function checkObject(value: unknown, source: string): KubeObject {
  const object = value as Partial<KubeObject>;
  if (typeof value !== "object" || Array.isArray(value)) throw new TemplateError(`${source}: must be a mapping (a Kubernetes object)`);
  for (const field of ["apiVersion", "kind"] as const) {
    if (typeof object[field] !== "string" || object[field] === "") throw new TemplateError(`${source}: ${field} is required`);
  }
  if (typeof object.metadata?.name !== "string" || object.metadata.name === "") {
    throw new TemplateError(`${source}: metadata.name is required`);
  }
  return object as KubeObject;
}
