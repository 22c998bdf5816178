import { ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { DomainError } from "../../src/core/errors.js";

/** The error a call failed with; fails the test when the call succeeds. */
export async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

/** The fields named by the error's BadRequest details. */
export function fieldsOf(error: ConnectError): string[] {
  return error.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations.map((v) => v.field));
}

/** The field violations `run` is refused with, as `field: description`; fails the test when it is not refused. */
export function problems(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof DomainError) return error.violations.map((v) => `${v.field}: ${v.description}`);
    throw error;
  }
  throw new Error("expected a DomainError");
}
