import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Violations } from "../core/errors.js";
import { checkOrg, checkResourceName } from "../core/names.js";
import { nextPageToken, parsePageRequest, type PageRequest } from "../core/paging.js";
import type { Page } from "../store/rows.js";

/** Validates the `org` of a request; empty means the default organization. */
export function checkOrgField(org: string, field: string, violations: Violations): void {
  violations.add(field, checkOrg(org));
}

export function toTimestamp(date: Date): Timestamp {
  return timestampFromDate(date);
}

/** Throws INVALID_ARGUMENT naming `field` when a required message is missing. */
export function requireMessage<T>(message: T | undefined, field: string): T {
  if (message === undefined) new Violations().add(field, "is required").throwIfAny();
  return message!;
}

/** Validates the key of a request that names one resource. */
export function checkNamedKey(org: string, name: string, checkName: (name: string) => string | null = checkResourceName): void {
  const violations = new Violations();
  checkOrgField(org, "org", violations);
  violations.add("name", checkName(name));
  violations.throwIfAny();
}

/**
 * The shared half of every List RPC: validates org and paging (after the caller's own filter
 * checks in `violations`), fetches one page and issues the token for the next, bound to `filters`.
 */
export async function listPage<T, M>(
  request: { org: string; pageSize: number; pageToken: string },
  filters: object,
  violations: Violations,
  fetch: (page: PageRequest) => Promise<Page<T>>,
  toMessage: (item: T) => M,
  sortKey: (item: T) => string[],
): Promise<{ items: M[]; nextPageToken: string }> {
  checkOrgField(request.org, "org", violations);
  const fingerprint = JSON.stringify(filters);
  const page = parsePageRequest(request.pageSize, request.pageToken, fingerprint, violations);
  violations.throwIfAny();
  const result = await fetch(page);
  const last = result.items.at(-1);
  return {
    items: result.items.map(toMessage),
    nextPageToken: nextPageToken(result.hasMore, last ? sortKey(last) : [], fingerprint),
  };
}

/**
 * A state filter of a List request: "" for UNSPECIFIED (no filter), else the enum value's name;
 * an unknown number is a violation of `field`.
 */
export function stateFilter<S extends string>(names: Record<number, string>, value: number, field: string, violations: Violations): S | "" {
  if (value === 0) return "";
  const name = names[value];
  if (name === undefined) violations.add(field, `${value} is not a known state`);
  return (name ?? "") as S | "";
}
