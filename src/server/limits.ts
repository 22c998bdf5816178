import { unknownName } from "../core/did-you-mean.js";
import { parseDuration } from "../core/duration.js";
import { Violations } from "../core/errors.js";
import { isMapping } from "../core/values.js";

/**
 * What one caller may cost the server before anything about it is known: every byte from the
 * network is hostile until authenticated, so these apply before authentication.
 */
export interface EdgeLimits {
  /** Largest request body, raw and after decompression, in bytes. */
  maxRequestBytes: number;
  /** Open connections at once; further ones are closed as they arrive. */
  maxConnections: number;
  /** HTTP/2 streams (calls) at once on one connection. */
  maxConcurrentStreams: number;
  /**
   * Time a new connection has to say what it is (HTTP/1.1 request headers, the HTTP/2 preface
   * and settings, the TLS handshake); also the limit for each later HTTP/1.1 request's headers.
   */
  headersTimeoutMs: number;
  /** Time an HTTP/1.1 request has to arrive completely, body included. */
  requestTimeoutMs: number;
  /** An HTTP/2 connection with no call open for this long is closed (clients reconnect). */
  idleTimeoutMs: number;
  /** Longer deadlines (grpc-timeout, connect-timeout-ms) are shortened to this. */
  maxDeadlineMs: number;
}

export const DEFAULT_LIMITS: EdgeLimits = {
  maxRequestBytes: 4 * 1024 * 1024,
  maxConnections: 1000,
  maxConcurrentStreams: 100,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 300_000,
  maxDeadlineMs: 3_600_000,
};

/** The keys of `server.limits`, each with the field it sets and how it is read. */
const KEYS = {
  maxRequestSize: { field: "maxRequestBytes", read: size },
  maxConnections: { field: "maxConnections", read: count(1, 1_000_000) },
  maxConcurrentStreams: { field: "maxConcurrentStreams", read: count(1, 100_000) },
  headersTimeout: { field: "headersTimeoutMs", read: duration },
  requestTimeout: { field: "requestTimeoutMs", read: duration },
  idleTimeout: { field: "idleTimeoutMs", read: duration },
  maxDeadline: { field: "maxDeadlineMs", read: duration },
} as const satisfies Record<string, { field: keyof EdgeLimits; read: Reader }>;

export const LIMIT_KEYS = Object.keys(KEYS) as (keyof typeof KEYS)[];

/** A value, or a sentence saying what it must be. */
type Reader = (value: unknown) => number | string;

/** Node timers overflow past 2^31 - 1 ms and then fire at once; a day is plenty for any of these. */
const MAX_DURATION_MS = 86_400_000;
const MAX_REQUEST_BYTES = 1024 ** 3;
const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };

/**
 * Reads `server.limits` from the configuration file; unset keys keep their defaults. `source`
 * prefixes every problem (`server.limits.maxRequestSize`).
 */
export function parseLimits(raw: unknown, source: string, problems: Violations): EdgeLimits {
  const limits = { ...DEFAULT_LIMITS };
  if (raw === undefined || raw === null) return limits;
  if (!isMapping(raw)) {
    problems.add(source, `must be a mapping of ${LIMIT_KEYS.join(", ")}`);
    return limits;
  }
  for (const [key, value] of Object.entries(raw)) {
    const spec = (KEYS as Record<string, { field: keyof EdgeLimits; read: Reader }>)[key];
    if (!spec) {
      problems.add(`${source}.${key}`, unknownName("key", key, LIMIT_KEYS));
      continue;
    }
    const parsed = spec.read(value);
    if (typeof parsed === "string") problems.add(`${source}.${key}`, `${JSON.stringify(value)} ${parsed}`);
    else limits[spec.field] = parsed;
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    problems.add(`${source}.headersTimeout`, "must not be longer than requestTimeout (headers are part of the request)");
  }
  return limits;
}

function size(value: unknown): number | string {
  const match = typeof value === "number" ? [String(value), String(value), ""] : typeof value === "string" ? /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(value) : null;
  const unit = SIZE_UNITS[(match?.[2] ?? "").toLowerCase()];
  const bytes = match && unit !== undefined ? Number(match[1]) * unit : NaN;
  if (!Number.isInteger(bytes) || bytes < 1024 || bytes > MAX_REQUEST_BYTES) {
    return "must be a size from 1KiB to 1GiB, such as 4MiB, 512KiB or a number of bytes";
  }
  return bytes;
}

function count(min: number, max: number): Reader {
  return (value) => (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max ? value : `must be a whole number from ${min} to ${max}`);
}

function duration(value: unknown): number | string {
  const ms = parseDuration(value);
  return ms !== null && ms > 0 && ms <= MAX_DURATION_MS ? ms : "must be a positive duration of at most 24h, such as 500ms, 10s, 5m or 1h";
}

/** "4 MiB" for messages. */
export function formatBytes(bytes: number): string {
  for (const [unit, factor] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor} ${unit}`;
  }
  return `${bytes} bytes`;
}
