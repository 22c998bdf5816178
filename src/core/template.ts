import { parseAllDocuments } from "yaml";

/** `{{ name }}` with optional spaces; names are letters, digits, '_' and '.'. */
const VARIABLE = /\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}/g;
const UNCLOSED = /\{\{(?![^}]*\}\})/;

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
  const missing = new Set<string>();
  const rendered = text.replace(VARIABLE, (_, name: string) => {
    const value = variables[name];
    if (value === undefined) missing.add(name);
    return value ?? "";
  });
  if (missing.size) {
    const known = Object.keys(variables).sort().join(", ");
    throw new TemplateError(`${source}: unknown variable(s) ${[...missing].map((m) => `{{ ${m} }}`).join(", ")}; known: ${known}`);
  }
  if (UNCLOSED.test(rendered)) throw new TemplateError(`${source}: "{{" without a closing "}}"`);
  return rendered;
}

/** A Kubernetes object as parsed from a template. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** Renders a multi-document YAML template into objects; each needs apiVersion, kind and metadata.name. */
export function renderObjects(text: string, variables: Readonly<Record<string, string>>, source: string): KubeObject[] {
  const rendered = renderText(text, variables, source);
  const objects: KubeObject[] = [];
  parseAllDocuments(rendered).forEach((document, index) => {
    if (document.errors.length) throw new TemplateError(`${source} document ${index + 1}: ${document.errors[0]!.message}`);
    const value: unknown = document.toJS();
    if (value === null || value === undefined) return;
    objects.push(checkObject(value, `${source} document ${index + 1}`));
  });
  return objects;
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
