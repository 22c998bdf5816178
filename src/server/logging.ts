import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import pino, { type Logger } from "pino";

export type { Logger };

/** Structured JSON logs on stdout, or silence for tests. */
export function createLogger(level: string = process.env.CLUSTERPLANE_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { service: "clusterplane" } });
}

/**
 * Logs one line per RPC: request id (the caller's `x-request-id`, or a new one, echoed back),
 * procedure, status code and duration. Payloads are never logged: they may carry credentials paths
 * and tokens must never reach a log.
 */
export function loggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (request) => {
    const started = process.hrtime.bigint();
    const requestId = request.header.get("x-request-id") || randomUUID();
    const fields = { requestId, procedure: `${request.service.typeName}/${request.method.name}` };
    const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
    try {
      const response = await next(request);
      response.header.set("x-request-id", requestId);
      logger.info({ ...fields, code: "ok", durationMs: elapsedMs() }, "rpc");
      return response;
    } catch (error) {
      const connectError = ConnectError.from(error);
      const code = Code[connectError.code];
      const level = connectError.code === Code.Internal || connectError.code === Code.Unknown ? "error" : "info";
      logger[level]({ ...fields, code, durationMs: elapsedMs(), error: connectError.rawMessage }, "rpc");
      throw connectError;
    }
  };
}
