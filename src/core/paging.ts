import { Violations } from "./errors.js";

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** A validated page request: how many rows, and the sort key of the last row already returned. */
export interface PageRequest {
  size: number;
  after: readonly string[] | null;
}

/**
 * Page tokens are opaque to clients but carry the sort key of the last row served (keyset paging
 * stays correct while rows are inserted or deleted) and a fingerprint of the filters, so a token
 * cannot be replayed against a different query.
 */
interface TokenBody {
  after: string[];
  query: string;
}

export function parsePageRequest(
  pageSize: number,
  pageToken: string,
  queryFingerprint: string,
  violations: Violations,
): PageRequest {
  let size = pageSize === 0 ? DEFAULT_PAGE_SIZE : pageSize;
  if (pageSize < 0 || pageSize > MAX_PAGE_SIZE) {
    violations.add("page_size", `must be between 0 and ${MAX_PAGE_SIZE} (got ${pageSize})`);
    size = DEFAULT_PAGE_SIZE;
  }
  if (pageToken === "") return { size, after: null };
  const body = decodeToken(pageToken);
  if (body === null) {
    violations.add("page_token", "is not a token this server issued; start again with an empty page_token");
    return { size, after: null };
  }
  if (body.query !== queryFingerprint) {
    violations.add("page_token", "was issued for different filters; repeat the original filters or start again with an empty page_token");
  }
  return { size, after: body.after };
}

/** The token for the page after `lastKey`, or "" when there are no more rows. */
export function nextPageToken(hasMore: boolean, lastKey: readonly string[], queryFingerprint: string): string {
  if (!hasMore) return "";
  const body: TokenBody = { after: [...lastKey], query: queryFingerprint };
  return Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
}

function decodeToken(token: string): TokenBody | null {
  try {
    const body: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (!isTokenBody(body)) return null;
    return body;
  } catch {
    return null;
  }
}

function isTokenBody(value: unknown): value is TokenBody {
  if (typeof value !== "object" || value === null) return false;
  const { after, query } = value as Record<string, unknown>;
  return (
    Array.isArray(after) &&
    after.length > 0 &&
    after.every((part) => typeof part === "string") &&
    typeof query === "string"
  );
}
