import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { DomainError, shorten, unavailable, type DomainErrorKind, type FieldViolation } from "../core/errors.js";
import { isDatabaseUnavailable } from "../store/database-errors.js";

const CODES: Record<DomainErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  unavailable: Code.Unavailable,
  unauthenticated: Code.Unauthenticated,
};

/**
 * What one error may put into trailers. Validators quote values shortly already; this bounds
 * the sum, since grpcio (8 KiB) and others reset a stream whose headers outgrow their limit and
 * then fail other calls on the same connection.
 */
const MAX_MESSAGE_CHARS = 1024;
const MAX_VIOLATION_CHARS = 2048;
const MAX_FIELD_CHARS = 200;
const MAX_DESCRIPTION_CHARS = 400;

/** Turns a domain error into the status a client sees; field violations travel as BadRequest. */
export function toConnectError(error: DomainError): ConnectError {
  const violations = boundedViolations(error.violations);
  const details = violations.length
    ? [{ desc: BadRequestSchema, value: create(BadRequestSchema, { fieldViolations: violations }) }]
    : [];
  return new ConnectError(shorten(error.message, MAX_MESSAGE_CHARS), CODES[error.kind], undefined, details);
}

/** The first violations, each shortened, as many as fit MAX_VIOLATION_CHARS. */
function boundedViolations(violations: readonly FieldViolation[]): FieldViolation[] {
  const kept: FieldViolation[] = [];
  let size = 0;
  for (const violation of violations) {
    const field = shorten(violation.field, MAX_FIELD_CHARS);
    const description = shorten(violation.description, MAX_DESCRIPTION_CHARS);
    size += field.length + description.length;
    if (size > MAX_VIOLATION_CHARS) break;
    kept.push({ field, description });
  }
  return kept;
}

/**
 * Maps domain errors thrown anywhere below a handler to their gRPC codes; a database that cannot
 * be reached right now (PostgreSQL restarting, a lost connection) is UNAVAILABLE, not INTERNAL.
 */
export const domainErrors: Interceptor = (next) => async (request) => {
  try {
    return await next(request);
  } catch (error) {
    if (error instanceof DomainError) throw toConnectError(error);
    if (isDatabaseUnavailable(error)) {
      throw toConnectError(unavailable("the database cannot be reached right now; retry the request"));
    }
    throw error;
  }
};

/**
 * A stream that ends because its caller's deadline passed ends with DEADLINE_EXCEEDED, as gRPC
 * clients expect, not OK as if it had finished; connect-node aborts the signal with that error.
 */
export function throwIfDeadlinePassed(signal: AbortSignal): void {
  if (!signal.aborted) return;
  const reason = ConnectError.from(signal.reason);
  if (reason.code === Code.DeadlineExceeded) throw reason;
}
