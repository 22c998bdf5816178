import { type JsonObject, getAt, isObject } from "./json.js";
import { badRequest } from "./status.js";

/**
 * LIST filtering: label selectors (=, ==, !=, exists, !exists, in, notin)
 * and the few field selectors these types support. A malformed selector is
 * a 400, as on a real server.
 */

export type Predicate = (object: JsonObject) => boolean;

const KEY = String.raw`[^\s=!(),]+`;
const EQUALITY = new RegExp(String.raw`^(${KEY})\s*(==|=|!=)\s*([^\s=!(),]*)$`);
const SET = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s+\(([^)]*)\)$`);
const EXISTS = new RegExp(String.raw`^(${KEY})$`);
const NOT_EXISTS = new RegExp(String.raw`^!\s*(${KEY})$`);

export function parseLabelSelector(selector: string): Predicate {
  const requirements = splitTopLevel(selector).map(parseRequirement);
  return (object) => {
    const labels = getAt(object, ["metadata", "labels"]);
    const labelMap = isObject(labels) ? labels : {};
    return requirements.every((matches) => matches(labelMap));
  };
}

type Requirement = (labels: JsonObject) => boolean;

function parseRequirement(term: string): Requirement {
  let match = EQUALITY.exec(term);
  if (match) {
    const [, key = "", op, value = ""] = match;
    return op === "!=" ? (labels) => labels[key] !== value : (labels) => labels[key] === value;
  }
  match = SET.exec(term);
  if (match) {
    const [, key = "", op, list = ""] = match;
    const values = list.split(",").map((v) => v.trim());
    const contains = (labels: JsonObject) => typeof labels[key] === "string" && values.includes(labels[key]);
    return op === "in" ? contains : (labels) => !contains(labels);
  }
  match = NOT_EXISTS.exec(term);
  if (match) {
    const key = match[1] ?? "";
    return (labels) => !(key in labels);
  }
  match = EXISTS.exec(term);
  if (match) {
    const key = match[1] ?? "";
    return (labels) => key in labels;
  }
  throw badRequest(`unable to parse requirement: invalid label selector term ${JSON.stringify(term)}`);
}

/** Field selectors kube-apiserver supports for namespaces and service accounts. */
export function parseFieldSelector(selector: string, supportedFields: readonly string[]): Predicate {
  const requirements = splitTopLevel(selector).map((term) => {
    const match = /^([^\s=!]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!match) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    const [, field = "", op, value = ""] = match;
    if (!supportedFields.includes(field)) throw badRequest(`field label not supported: ${field}`);
    const read = (object: JsonObject) => String(getAt(object, field.split(".")) ?? "");
    return op === "!=" ? (object: JsonObject) => read(object) !== value : (object: JsonObject) => read(object) === value;
  });
  return (object) => requirements.every((matches) => matches(object));
}

/** Splits on commas outside parentheses; drops empty terms (an empty selector selects everything). */
function splitTopLevel(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = "";
  for (const char of selector) {
    if (char === "(") depth += 1;
    if (char === ")") depth -= 1;
    if (char === "," && depth === 0) {
      terms.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  terms.push(current);
  return terms.map((t) => t.trim()).filter((t) => t !== "");
}
