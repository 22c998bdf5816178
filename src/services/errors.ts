import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { DomainError, type DomainErrorKind } from "../core/errors.js";

const CODES: Record<DomainErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
};

/** Turns a domain error into the status a client sees; field violations travel as BadRequest. */
export function toConnectError(error: DomainError): ConnectError {
  const details = error.violations.length
    ? [{ desc: BadRequestSchema, value: create(BadRequestSchema, { fieldViolations: [...error.violations] }) }]
    : [];
  return new ConnectError(error.message, CODES[error.kind], undefined, details);
}

/** Maps domain errors thrown anywhere below a handler to their gRPC codes. */
export const domainErrors: Interceptor = (next) => async (request) => {
  try {
    return await next(request);
  } catch (error) {
    if (error instanceof DomainError) throw toConnectError(error);
    throw error;
  }
};
