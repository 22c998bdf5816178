import pino, { type DestinationStream, type Logger } from "pino";

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

