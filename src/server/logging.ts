import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import pino, { type DestinationStream, type Logger } from "pino";
import { grpcStatusName } from "../core/values.js";
import { identityKey } from "./auth.js";

export type { Logger };

/**
 * Which RPCs get a log line: every call; the notable ones (failed, slow, or changing state — rare
 * next to the reads other services make thousands of times a second, and the audit trail of
 * who changed routing); or none.
 */
export const RPC_LOG_POLICIES = ["all", "notable", "none"] as const;
export type RpcLogPolicy = (typeof RPC_LOG_POLICIES)[number];

export interface RpcLogSettings {
  calls: RpcLogPolicy;
  /** Under "notable", a successful call slower than this is logged. */
  slowMs: number;
}

export const DEFAULT_RPC_LOG: RpcLogSettings = { calls: "notable", slowMs: 1_000 };

/** The pino levels the configuration accepts. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/**
 * Structured JSON logs on stdout (or `destination`). Credentials are never logged on purpose;
 * the redaction is a second line of defence should a field named like one ever reach a log call.
 */
export function createLogger(level: string = process.env.CLUSTERPLANE_LOG_LEVEL ?? "info", destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: "clusterplane" },
    redact: { paths: ["authorization", "*.authorization", "headers.authorization", "token", "*.token"], censor: "[redacted]" },
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Logs one line per RPC: request id (the caller's `x-request-id`, or a new one, echoed back),
 * procedure, caller (name and role, once authenticated), status code and duration. Payloads and
 * headers are never logged: they may carry credentials, and tokens must never reach a log.
 */
export function loggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (request) => {
    const started = process.hrtime.bigint();
    const requestId = request.header.get("x-request-id") || randomUUID();
    const procedure = `${request.service.typeName}/${request.method.name}`;
    const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
    const fields = () => {
      const identity = request.contextValues.get(identityKey);
      return identity
        ? { requestId, procedure, caller: identity.name, role: identity.role, durationMs: elapsedMs() }
        : { requestId, procedure, durationMs: elapsedMs() };
    };
    try {
      const response = await next(request);
      response.header.set("x-request-id", requestId);
      logger.info({ ...fields(), code: "OK" }, "rpc");
      return response;
    } catch (error) {
      const connectError = ConnectError.from(error);
      const code = grpcStatusName(Code[connectError.code]);
      const level = connectError.code === Code.Internal || connectError.code === Code.Unknown ? "error" : "info";
      connectError.metadata.set("x-request-id", requestId);
      logger[level]({ ...fields(), code, error: connectError.rawMessage }, "rpc");
      throw connectError;
    }
  };
}
