import type { JsonObject } from "./json.js";

/**
 * Kubernetes `Status` failures, shaped and worded like kube-apiserver's
 * (k8s.io/apimachinery/pkg/api/errors), so a client's error handling is
 * exercised against the real thing's bodies. Empty fields are omitted, as Go's
 * `omitempty` does.
 */

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  /** The resource (plural, e.g. "namespaces") for most errors; the Kind for Invalid. */
  kind?: string;
  causes?: StatusCause[];
  /** Set on 429 (and 503 when the server knows): the same number as the Retry-After header. */
  retryAfterSeconds?: number;
}

export class KubeStatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
    /** Extra response headers (Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "KubeStatusError";
  }

  toStatus(): JsonObject {
    const status: JsonObject = {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
    };
    if (this.details) status.details = compactDetails(this.details);
    status.code = this.code;
    return status;
  }
}

function compactDetails(details: StatusDetails): JsonObject {
  const out: JsonObject = {};
  if (details.name) out.name = details.name;
  if (details.group) out.group = details.group;
  if (details.kind) out.kind = details.kind;
  if (details.causes && details.causes.length > 0) {
    out.causes = details.causes.map((cause) => ({ ...cause }));
  }
  if (details.retryAfterSeconds !== undefined) out.retryAfterSeconds = details.retryAfterSeconds;
  return out;
}

// ---- the errors kube-apiserver answers with ----

export function notFound(resource: string, name: string): KubeStatusError {
  return new KubeStatusError(404, "NotFound", `${resource} "${name}" not found`, { name, kind: resource });
}

/** An unknown URL under an API group: real apiservers answer with an empty-details NotFound. */
export function resourceNotFound(): KubeStatusError {
  return new KubeStatusError(404, "NotFound", "the server could not find the requested resource", {});
}

export function alreadyExists(resource: string, name: string, beingDeleted = false): KubeStatusError {
  // The registry prefixes this when the old object still has a deletionTimestamp.
  const prefix = beingDeleted ? "object is being deleted: " : "";
  return new KubeStatusError(409, "AlreadyExists", `${prefix}${resource} "${name}" already exists`, { name, kind: resource });
}

export const MODIFIED_SINCE_READ = "the object has been modified; please apply your changes to the latest version and try again";

export function conflict(resource: string, name: string, why: string): KubeStatusError {
  return new KubeStatusError(409, "Conflict", `Operation cannot be fulfilled on ${resource} "${name}": ${why}`, { name, kind: resource });
}

export interface FieldConflict {
  manager: string;
  /** Dotted field path as SSA prints it, e.g. ".metadata.labels.team". */
  field: string;
}

/** Server-side apply conflict, worded like structured-merge-diff's. */
export function applyConflict(conflicts: FieldConflict[]): KubeStatusError {
  const count = conflicts.length;
  const causes = conflicts.map((c) => ({ reason: "FieldManagerConflict", message: `conflict with "${c.manager}" using v1`, field: c.field }));
  const first = conflicts[0];
  const message =
    count === 1 && first
      ? `Apply failed with 1 conflict: conflict with "${first.manager}" using v1: ${first.field}`
      : `Apply failed with ${count} conflicts: ${conflicts.map((c) => `conflict with "${c.manager}" using v1: ${c.field}`).join("\n")}`;
  return new KubeStatusError(409, "Conflict", message, { causes });
}

/** One field problem; `message` is the part after "field: ". */
export interface FieldError {
  reason: "FieldValueInvalid" | "FieldValueRequired" | "FieldValueForbidden" | "FieldValueNotSupported";
  field: string;
  message: string;
}

export function fieldInvalid(field: string, value: string, detail: string): FieldError {
  return { reason: "FieldValueInvalid", field, message: `Invalid value: ${JSON.stringify(value)}: ${detail}` };
}

export function fieldRequired(field: string, detail: string): FieldError {
  return { reason: "FieldValueRequired", field, message: `Required value: ${detail}` };
}

export function fieldForbidden(field: string, detail: string): FieldError {
  return { reason: "FieldValueForbidden", field, message: `Forbidden: ${detail}` };
}

/** 422 Invalid: `Kind "name" is invalid: field: message` (bracketed when several). */
export function invalid(kind: string, name: string, errors: FieldError[], group = ""): KubeStatusError {
  const qualifiedKind = group ? `${kind}.${group}` : kind;
  const rendered = errors.map((e) => `${e.field}: ${e.message}`);
  const summary = rendered.length === 1 ? rendered[0] : `[${rendered.join(", ")}]`;
  return new KubeStatusError(422, "Invalid", `${qualifiedKind} "${name}" is invalid: ${summary}`, {
    name,
    group,
    kind,
    causes: errors.map((e) => ({ reason: e.reason, message: e.message, field: e.field })),
  });
}

export function forbidden(resource: string, name: string, why: string, causes?: StatusCause[]): KubeStatusError {
  return new KubeStatusError(403, "Forbidden", `${resource} "${name}" is forbidden: ${why}`, { name, kind: resource, causes });
}

export function namespaceTerminating(resource: string, name: string, namespace: string): KubeStatusError {
  return forbidden(resource, name, `unable to create new content in namespace ${namespace} because it is being terminated`, [
    { reason: "NamespaceTerminating", message: `namespace ${namespace} is being terminated`, field: "metadata.namespace" },
  ]);
}

export function unauthorized(): KubeStatusError {
  return new KubeStatusError(401, "Unauthorized", "Unauthorized");
}

export function badRequest(message: string): KubeStatusError {
  return new KubeStatusError(400, "BadRequest", message);
}

export function methodNotAllowed(): KubeStatusError {
  return new KubeStatusError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {});
}

export function unsupportedMediaType(accepted: string[]): KubeStatusError {
  return new KubeStatusError(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format - accepted media types include: ${accepted.join(", ")}`,
  );
}

export function requestEntityTooLarge(limitBytes: number): KubeStatusError {
  return new KubeStatusError(413, "RequestEntityTooLarge", `Request entity too large: limit is ${limitBytes}`);
}

export function internalError(message: string): KubeStatusError {
  return new KubeStatusError(500, "InternalError", `Internal error occurred: ${message}`, { causes: [{ message }] });
}

/**
 * RBAC's refusal, worded as the authorizer's: a resource request names the verb, resource, group
 * and scope; a non-resource URL (discovery) names the path.
 */
export function rbacForbidden(user: string, request: { verb: string; resource?: string; name?: string; namespace?: string; path: string }): KubeStatusError {
  if (!request.resource) {
    return new KubeStatusError(403, "Forbidden", `forbidden: User "${user}" cannot ${request.verb} path "${request.path}"`, {});
  }
  const scope = request.namespace ? `in the namespace "${request.namespace}"` : "at the cluster scope";
  const subject = request.name ? `${request.resource} "${request.name}"` : request.resource;
  return new KubeStatusError(
    403,
    "Forbidden",
    `${subject} is forbidden: User "${user}" cannot ${request.verb} resource "${request.resource}" in API group "" ${scope}`,
    { name: request.name, kind: request.resource },
  );
}

/** API Priority and Fairness (or max-in-flight) turning a request away. */
export function tooManyRequests(retryAfterSeconds: number): KubeStatusError {
  return new KubeStatusError(
    429,
    "TooManyRequests",
    "Too many requests, please try again later.",
    { retryAfterSeconds },
    { "Retry-After": String(retryAfterSeconds) },
  );
}

export function serviceUnavailable(retryAfterSeconds?: number): KubeStatusError {
  const headers: Record<string, string> = retryAfterSeconds === undefined ? {} : { "Retry-After": String(retryAfterSeconds) };
  const details = retryAfterSeconds === undefined ? {} : { retryAfterSeconds };
  return new KubeStatusError(503, "ServiceUnavailable", "the server is currently unable to handle the request", details, headers);
}
