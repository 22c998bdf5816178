/** The shapes of the credentials callers present. Pure text rules; verifying is the store's. */

/** The token of an `Authorization: Bearer <token>` header; null when the header is not that shape. */
export function bearerToken(authorization: string): string | null {
  return /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)?.[1] ?? null;
}

/** Agent credentials read `cpagent.<id>.<secret>`: the id finds the row, the secret is checked against its digest. */
export const AGENT_CREDENTIAL_PREFIX = "cpagent.";

/** Whether a bearer token is shaped like an agent credential (it still has to be verified). */
export function looksLikeAgentCredential(token: string): boolean {
  return token.startsWith(AGENT_CREDENTIAL_PREFIX);
}
