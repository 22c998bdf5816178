/**
 * Errors of the domain, independent of any transport. The services layer maps each kind to a
 * gRPC status code; everything below it only says what went wrong, in words a person can act on.
 */

/** One offending request field and why its value is wrong. */
export interface FieldViolation {
  field: string;
  description: string;
}

export type DomainErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "aborted"
  /** A transient condition (the database is locked by another writer): retrying helps. */
  | "unavailable"
  /** A credential in the request (a join token, an agent credential) is not, or no longer, valid. */
  | "unauthenticated";

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    readonly violations: readonly FieldViolation[] = [],
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export function invalidArgument(violations: readonly FieldViolation[]): DomainError {
  const summary = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new DomainError("invalid_argument", summary, violations);
}

export function notFound(message: string): DomainError {
  return new DomainError("not_found", message);
}

export function alreadyExists(message: string): DomainError {
  return new DomainError("already_exists", message);
}

export function failedPrecondition(message: string): DomainError {
  return new DomainError("failed_precondition", message);
}

export function aborted(message: string): DomainError {
  return new DomainError("aborted", message);
}

export function unauthenticated(message: string): DomainError {
  return new DomainError("unauthenticated", message);
}

export function unavailable(message: string): DomainError {
  return new DomainError("unavailable", message);
}

/**
 * Collects field violations so a request reports every problem at once instead of one per try.
 */
export class Violations {
  private readonly list: FieldViolation[] = [];

  /** Records a violation; only the first one per field is kept, the most specific check runs first. */
  add(field: string, description: string | null | undefined): this {
    if (description && !this.list.some((v) => v.field === field)) this.list.push({ field, description });
    return this;
  }

  get isEmpty(): boolean {
    return this.list.length === 0;
  }

  /** Throws INVALID_ARGUMENT listing every violation, if there is any. */
  throwIfAny(): void {
    if (!this.isEmpty) throw invalidArgument(this.list);
  }
}

/** Flags every item that repeats an earlier one, under the field `fieldOf(index)` gives. */
export function checkNoRepeats(items: readonly string[], fieldOf: (index: number) => string, violations: Violations): void {
  const seen = new Set<string>();
  items.forEach((item, index) => {
    if (seen.has(item)) violations.add(fieldOf(index), `${quoteValue(item)} is listed twice`);
    seen.add(item);
  });
}

/** At most this many characters of a caller's value are quoted back in a message. */
const MAX_QUOTED_CHARS = 100;

/**
 * A caller's value for a message: in double quotes (JSON escapes, so a newline cannot forge a
 * line), and when longer than MAX_QUOTED_CHARS, its beginning and its length. Errors travel in
 * HTTP/2 trailers; a client resets a stream whose headers outgrow its limit (about 8 KiB for
 * grpcio), so a huge bad value must not come back whole.
 */
export function quoteValue(value: string): string {
  if (value.length <= MAX_QUOTED_CHARS) return JSON.stringify(value);
  return `${JSON.stringify(shorten(value, MAX_QUOTED_CHARS))} (${value.length} characters)`;
}

/** `text` cut to at most `max` characters, the last of them "…"; never splits a surrogate pair. */
export function shorten(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  if (/[\uD800-\uDBFF]/.test(text[end - 1] ?? "")) end--;
  return `${text.slice(0, end)}…`;
}

/** Joins names for messages: `a`, `a and b`, `a, b and c`. */
export function listInWords(items: readonly string[]): string {
  const quoted = items.map((item) => `"${item}"`);
  if (quoted.length <= 1) return quoted.join("");
  return `${quoted.slice(0, -1).join(", ")} and ${quoted[quoted.length - 1]}`;
}
