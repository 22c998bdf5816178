import { aborted, quoteValue } from "./errors.js";

/**
 * An etag names one stored version of a row. It includes the update time so that a row deleted
 * and created again never answers to an etag of its earlier life.
 */
export function makeEtag(version: number, updateTimeMs: number): string {
  return `${version.toString(36)}-${updateTimeMs.toString(36)}`;
}

/** Throws ABORTED when the client sent an etag that no longer matches the stored one. */
export function checkEtag(kind: string, name: string, sent: string, stored: string): void {
  if (sent !== "" && sent !== stored) {
    throw aborted(
      `${kind} ${quoteValue(name)} was changed by someone else since you read it (etag ${quoteValue(sent)}, now ${quoteValue(stored)}); read it again and retry`,
    );
  }
}
