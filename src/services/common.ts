import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Violations } from "../core/errors.js";
import { checkOrg } from "../core/names.js";

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
