import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parse as parseYaml } from "yaml";
import { unknownName } from "../core/did-you-mean.js";
import { parseDuration } from "../core/duration.js";
import { namespaceProblem } from "../core/desired-state.js";
import { DomainError, Violations } from "../core/errors.js";
import { checkDomains, DEFAULT_DOMAINS } from "../core/project.js";
import { isRole, ROLES, type Role } from "../core/roles.js";
import { isMapping } from "../core/values.js";
import { DEFAULT_SYNC_SETTINGS, parseSyncSettings, type SyncSettings } from "../sync/sync-settings.js";
import { normalizeOrigin } from "./http-routes.js";
import { parseLimits } from "./limits.js";
import { DEFAULT_RPC_LOG, LOG_LEVELS, RPC_LOG_POLICIES } from "./logging.js";
import type { ServerConfig, TlsConfig } from "./server.js";
import { readTlsFiles } from "./tls-files.js";
import { DEFAULT_LEASE_TIMINGS } from "../store/leader-lease.js";
import { parseTokens } from "./tokens.js";

/** Flags as given on the command line; each overrides its environment variable, then the config file. */
export interface ServeFlags {
  /** `--config FILE`: the YAML configuration file. */
  config?: string;
  host?: string;
  port?: string;
  db?: string;
  shutdownGraceMs?: string;
  domains?: string;
  syncConfig?: string;
  /** commander's `--no-sync` sets this to false. */
  sync?: boolean;
  tokensFile?: string;
  allowUnauthenticated?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  /** `--cors-origin`, repeatable. */
  corsOrigin?: string[];
  /** `--workers N` or `auto`. */
  workers?: string;
  dbPoolSize?: string;
  statementTimeoutMs?: string;
}

export const CONFIG_DEFAULTS = {
  host: "127.0.0.1",
  port: 8080,
  databasePath: "clusterplane.db",
  shutdownGraceMs: 10_000,
  logLevel: "info",
  metricsPublic: true,
} as const;

/**
 * The keys of each section of the configuration file. `sync` takes exactly what
 * `parseSyncSettings` reads (the same keys as a `--sync-config` file) and checks them itself.
 */
export const CONFIG_KEYS = {
  server: ["host", "port", "database", "databasePoolSize", "statementTimeout", "shutdownGrace", "domains", "lockTimeout", "limits", "workers", "leanGrpc"],
  log: ["level", "rpcCalls", "slowRpc"],
  auth: ["tokensFile", "allowUnauthenticated", "clientCertificates"],
  tls: ["certFile", "keyFile", "clientCaFile", "requireClientCertificate"],
  cors: ["allowedOrigins"],
  metrics: ["public"],
  changeLog: ["followInterval", "retainEntries", "retainFor", "compactInterval"],
  leaderElection: ["leaseDuration", "renewInterval", "renewDeadline", "retryInterval"],
  watch: ["progressInterval", "maxQueuedChanges", "maxStreamsPerCaller"],
  agents: ["controlPlaneUrl", "leaseGrace"],
  // Checked by parseSyncSettings, which owns them (the keys of a --sync-config file).
  sync: [],
} as const satisfies Record<string, readonly string[]>;

type Section = keyof typeof CONFIG_KEYS;
type Raw = Record<string, unknown>;

/** A value and where it came from (`--port`, `CLUSTERPLANE_PORT`, `server.port`). */
interface Sourced {
  value: unknown;
  source: string;
}

/**
 * Resolves the server configuration: each setting from its flag, else its `CLUSTERPLANE_*`
 * environment variable, else the YAML file (`--config` / `CLUSTERPLANE_CONFIG_FILE`), else the
 * default. Files the configuration names (tokens, TLS) are read and checked now. Throws a
 * DomainError naming every bad setting — the flag, variable or `section.key` — and why.
 */
export function resolveServerConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const problems = new Violations();
  const flag = (value: unknown, name: string): Sourced | undefined =>
    value !== undefined ? { value, source: `--${name}` } : undefined;
  const fromEnv = (variable: string): Sourced | undefined =>
    env[variable] !== undefined && env[variable] !== "" ? { value: env[variable], source: variable } : undefined;

  const configFile = flag(flags.config, "config") ?? fromEnv("CLUSTERPLANE_CONFIG_FILE");
  const file = configFile ? readConfigFile(String(configFile.value), configFile.source, problems) : {};
  const fromFile = (section: Section, key: string): Sourced | undefined => {
    const value = (file[section] as Raw | undefined)?.[key];
    return value !== undefined && value !== null ? { value, source: `${section}.${key}` } : undefined;
  };
  const choose = (...candidates: (Sourced | undefined)[]) => candidates.find((candidate) => candidate !== undefined);

  const host = choose(flag(flags.host, "host"), fromEnv("CLUSTERPLANE_HOST"), fromFile("server", "host"));
  const port = choose(flag(flags.port, "port"), fromEnv("CLUSTERPLANE_PORT"), fromFile("server", "port"));
  const db = choose(flag(flags.db, "db"), fromEnv("CLUSTERPLANE_DB"), fromFile("server", "database"));
  const grace = choose(
    flag(flags.shutdownGraceMs, "shutdown-grace-ms"),
    fromEnv("CLUSTERPLANE_SHUTDOWN_GRACE_MS"),
    fromFile("server", "shutdownGrace"),
  );
  const domains = choose(flag(flags.domains, "domains"), fromEnv("CLUSTERPLANE_DOMAINS"), fromFile("server", "domains"));
  const logLevel = choose(fromEnv("CLUSTERPLANE_LOG_LEVEL"), fromFile("log", "level"));

  const config: ServerConfig = {
    host: host ? text(host, problems) : CONFIG_DEFAULTS.host,
    port: port ? integer(port, 0, 65535, problems) : CONFIG_DEFAULTS.port,
    databasePath: db ? text(db, problems) : CONFIG_DEFAULTS.databasePath,
    shutdownGraceMs: grace ? milliseconds(grace, 3_600_000, problems) : CONFIG_DEFAULTS.shutdownGraceMs,
    domains: domains ? list(domains, problems) : [...DEFAULT_DOMAINS],
    logLevel: logLevel ? oneOf(logLevel, LOG_LEVELS, problems) : CONFIG_DEFAULTS.logLevel,
  };
  if (domains) checkDomains(config.domains ?? [], domains.source, problems);
  readTransportSettings(config, flags, fromEnv, fromFile, choose, problems);
  config.limits = parseLimits((file.server as Raw | undefined)?.limits, "server.limits", problems);

  // Sync: the file's `sync` section, or a legacy --sync-config file holding only that section.
  const syncConfig = choose(flag(flags.syncConfig, "sync-config"), fromEnv("CLUSTERPLANE_SYNC_CONFIG"));
  config.sync = syncConfig
    ? loadSyncFile(String(syncConfig.value), syncConfig.source, problems, env)
    : syncSettings(file.sync, "sync", problems, env);
  checkNamespaceTemplate(config, problems);
  const syncSwitch = flags.sync === false ? { value: "off", source: "--no-sync" } : fromEnv("CLUSTERPLANE_SYNC");
  if (syncSwitch && boolean(syncSwitch, problems) === false) config.sync = { ...config.sync, enabled: false };

  // Authentication.
  const tokensFile = choose(flag(flags.tokensFile, "tokens-file"), fromEnv("CLUSTERPLANE_TOKENS_FILE"), fromFile("auth", "tokensFile"));
  const allowOpen = choose(
    flags.allowUnauthenticated ? flag(true, "allow-unauthenticated") : undefined,
    fromEnv("CLUSTERPLANE_ALLOW_UNAUTHENTICATED"),
    fromFile("auth", "allowUnauthenticated"),
  );
  const certificateRoles = fromFile("auth", "clientCertificates");
  config.auth = {
    tokensFile: tokensFile ? text(tokensFile, problems) : undefined,
    allowUnauthenticated: allowOpen ? (boolean(allowOpen, problems) ?? false) : false,
    clientCertificates: certificateRoles ? roleMap(certificateRoles, problems) : {},
  };
  if (tokensFile && config.auth.tokensFile) checkTokensFile(config.auth.tokensFile, tokensFile.source, problems);

  // TLS.
  const certFile = choose(flag(flags.tlsCert, "tls-cert"), fromEnv("CLUSTERPLANE_TLS_CERT"), fromFile("tls", "certFile"));
  const keyFile = choose(flag(flags.tlsKey, "tls-key"), fromEnv("CLUSTERPLANE_TLS_KEY"), fromFile("tls", "keyFile"));
  const clientCaFile = choose(flag(flags.tlsClientCa, "tls-client-ca"), fromEnv("CLUSTERPLANE_TLS_CLIENT_CA"), fromFile("tls", "clientCaFile"));
  const requireClientCert = fromFile("tls", "requireClientCertificate");
  const requireClientCertificate = requireClientCert ? (boolean(requireClientCert, problems) ?? false) : false;
  if (certFile && !keyFile) problems.add("tls.keyFile", `required with ${certFile.source} (the certificate's private key)`);
  if (keyFile && !certFile) problems.add("tls.certFile", `required with ${keyFile.source} (the server certificate)`);
  if (clientCaFile && !certFile) problems.add(clientCaFile.source, "client certificates need TLS: set tls.certFile and tls.keyFile too");
  if (requireClientCertificate && !clientCaFile) problems.add("tls.requireClientCertificate", "needs tls.clientCaFile (the CA client certificates must be signed by)");
  if (Object.keys(config.auth.clientCertificates ?? {}).length > 0 && !clientCaFile) {
    problems.add("auth.clientCertificates", "needs tls.clientCaFile: without it no client certificate is ever asked for");
  }
  if (certFile && keyFile) {
    const tls: TlsConfig = { certFile: text(certFile, problems), keyFile: text(keyFile, problems), requireClientCertificate };
    if (clientCaFile) tls.clientCaFile = text(clientCaFile, problems);
    config.tls = tls;
    if (problems.isEmpty) {
      try {
        readTlsFiles(tls, {
          certFile: certFile.source,
          keyFile: keyFile.source,
          clientCaFile: clientCaFile?.source ?? "tls.clientCaFile",
        });
      } catch (error) {
        collect(error, problems);
      }
    }
  }

  // CORS and metrics.
  const origins = choose(
    flags.corsOrigin && flags.corsOrigin.length > 0 ? flag(flags.corsOrigin, "cors-origin") : undefined,
    fromEnv("CLUSTERPLANE_CORS_ORIGINS"),
    fromFile("cors", "allowedOrigins"),
  );
  config.cors = { allowedOrigins: origins ? originList(origins, problems) : [] };
  const metricsPublic = choose(fromEnv("CLUSTERPLANE_METRICS_PUBLIC"), fromFile("metrics", "public"));
  config.metrics = { public: metricsPublic ? (boolean(metricsPublic, problems) ?? true) : CONFIG_DEFAULTS.metricsPublic };

  const poolSize = choose(flag(flags.dbPoolSize, "db-pool-size"), fromEnv("CLUSTERPLANE_DB_POOL_SIZE"), fromFile("server", "databasePoolSize"));
  const statementTimeout = choose(
    flag(flags.statementTimeoutMs, "statement-timeout-ms"),
    fromEnv("CLUSTERPLANE_STATEMENT_TIMEOUT_MS"),
    fromFile("server", "statementTimeout"),
  );
  const pool = definedOnly({
    poolSize: poolSize ? integer(poolSize, 1, 1_000, problems) : undefined,
    // 0 lifts the limit, as PostgreSQL's statement_timeout does.
    statementTimeoutMs: statementTimeout ? milliseconds(statementTimeout, 3_600_000, problems) : undefined,
  });
  if (Object.keys(pool).length > 0) config.databasePool = pool;

  readReplicationSettings(config, fromFile, problems);
  problems.throwIfAny();
  return config;
}

/** The change log, the sync leader lease and Watch streams: file settings, each with a default. */
function readReplicationSettings(
  config: ServerConfig,
  fromFile: (section: Section, key: string) => Sourced | undefined,
  problems: Violations,
): void {
  const duration = (section: Section, key: string) => {
    const setting = fromFile(section, key);
    return setting ? milliseconds(setting, 3_600_000, problems, 1) : undefined;
  };
  const count = (section: Section, key: string, max: number) => {
    const setting = fromFile(section, key);
    return setting ? integer(setting, 1, max, problems) : undefined;
  };
  const lockTimeout = duration("server", "lockTimeout");
  if (lockTimeout !== undefined) config.lockTimeoutMs = lockTimeout;
  config.changeLog = definedOnly({
    followIntervalMs: duration("changeLog", "followInterval"),
    retainEntries: count("changeLog", "retainEntries", 100_000_000),
    retainMs: retention(fromFile("changeLog", "retainFor"), problems),
    compactIntervalMs: duration("changeLog", "compactInterval"),
  });
  const lease = definedOnly({
    durationMs: duration("leaderElection", "leaseDuration"),
    renewIntervalMs: duration("leaderElection", "renewInterval"),
    renewDeadlineMs: duration("leaderElection", "renewDeadline"),
    retryIntervalMs: duration("leaderElection", "retryInterval"),
  });
  if (Object.keys(lease).length > 0) {
    const timings = { ...DEFAULT_LEASE_TIMINGS, ...lease };
    if (!(timings.renewIntervalMs < timings.renewDeadlineMs && timings.renewDeadlineMs < timings.durationMs)) {
      problems.add(
        "leaderElection",
        `renewInterval (${timings.renewIntervalMs} ms) < renewDeadline (${timings.renewDeadlineMs} ms) < leaseDuration (${timings.durationMs} ms) must hold, ` +
          "so a leader that cannot renew stops before anyone else may start",
      );
    }
    config.leaderLease = timings;
  }
  config.watch = definedOnly({
    progressIntervalMs: duration("watch", "progressInterval"),
    maxQueuedChanges: count("watch", "maxQueuedChanges", 10_000_000),
    maxStreamsPerCaller: count("watch", "maxStreamsPerCaller", 100_000),
  });
  const controlPlaneUrl = fromFile("agents", "controlPlaneUrl");
  if (controlPlaneUrl && !/^https?:\/\/[^\s/]+/.test(String(controlPlaneUrl.value))) {
    problems.add(controlPlaneUrl.source, `${JSON.stringify(controlPlaneUrl.value)} must be the http(s) URL agents reach this server at, for example https://clusterplane.example.com`);
  }
  config.agents = definedOnly({
    controlPlaneUrl: controlPlaneUrl ? String(controlPlaneUrl.value) : undefined,
    leaseGraceMs: duration("agents", "leaseGrace"),
  });
}

/** Worker processes, the per-RPC log policy and the lean gRPC path. */
function readTransportSettings(
  config: ServerConfig,
  flags: ServeFlags,
  fromEnv: (variable: string) => Sourced | undefined,
  fromFile: (section: Section, key: string) => Sourced | undefined,
  choose: (...candidates: (Sourced | undefined)[]) => Sourced | undefined,
  problems: Violations,
): void {
  const workers = choose(flags.workers !== undefined ? { value: flags.workers, source: "--workers" } : undefined, fromEnv("CLUSTERPLANE_WORKERS"), fromFile("server", "workers"));
  if (workers) {
    config.workers = workers.value === "auto" ? availableParallelism() : integer(workers, 1, MAX_WORKERS, problems);
    if (config.workers > 1 && config.databasePath === ":memory:") {
      problems.add(workers.source, "several workers need a database file they can share; :memory: is private to one process");
    }
  }
  const rpcCalls = choose(fromEnv("CLUSTERPLANE_LOG_RPC_CALLS"), fromFile("log", "rpcCalls"));
  const slowRpc = fromFile("log", "slowRpc");
  config.rpcLog = {
    calls: rpcCalls ? oneOf(rpcCalls, RPC_LOG_POLICIES, problems) : DEFAULT_RPC_LOG.calls,
    slowMs: slowRpc ? milliseconds(slowRpc, 3_600_000, problems) : DEFAULT_RPC_LOG.slowMs,
  };
  const lean = fromFile("server", "leanGrpc");
  if (lean) config.leanGrpc = boolean(lean, problems) ?? true;
}

/** More workers than this is a typo (a machine with more cores runs replicas instead). */
const MAX_WORKERS = 256;

const MAX_RETENTION_MS = 365 * 24 * 3_600_000;

/** Retention is often days (`72h`); at most a year. */
function retention(setting: Sourced | undefined, problems: Violations): number | undefined {
  if (!setting) return undefined;
  const ms = parseDuration(setting.value);
  if (ms === null || ms <= 0 || ms > MAX_RETENTION_MS) {
    problems.add(setting.source, `${JSON.stringify(setting.value)} must be a duration such as 30m or 72h (at most a year)`);
    return undefined;
  }
  return ms;
}

function definedOnly<T extends object>(values: T): Partial<{ [K in keyof T]: Exclude<T[K], undefined> }> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as never;
}

/** Reads and checks the shape of the YAML configuration file: known sections and keys only. */
function readConfigFile(path: string, source: string, problems: Violations): Partial<Record<Section, Raw>> {
  const raw = readYaml(path, source, problems);
  if (raw === null || raw === undefined) return {};
  if (!isMapping(raw)) {
    problems.add(source, `${path} must be a mapping of sections (${Object.keys(CONFIG_KEYS).join(", ")})`);
    return {};
  }
  const sections: Partial<Record<Section, Raw>> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (!Object.hasOwn(CONFIG_KEYS, name)) {
      problems.add(name, unknownName("section", name, Object.keys(CONFIG_KEYS)));
      continue;
    }
    const section = name as Section;
    if (value === null || value === undefined) continue;
    if (!isMapping(value)) {
      problems.add(section, "must be a mapping");
      continue;
    }
    for (const key of Object.keys(value)) {
      if (section !== "sync" && !(CONFIG_KEYS[section] as readonly string[]).includes(key)) {
        problems.add(`${section}.${key}`, unknownName("key", key, CONFIG_KEYS[section]));
      }
    }
    sections[section] = value;
  }
  return sections;
}

function text(setting: Sourced, problems: Violations): string {
  if (typeof setting.value !== "string" || setting.value.trim() === "") {
    problems.add(setting.source, typeof setting.value === "string" ? "must not be empty" : `${JSON.stringify(setting.value)} must be a string`);
    return "";
  }
  return setting.value;
}

function integer(setting: Sourced, min: number, max: number, problems: Violations): number {
  const raw = setting.value;
  const value = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.add(setting.source, `${JSON.stringify(raw)} must be a whole number between ${min} and ${max}`);
    return min;
  }
  return value;
}

/** Flags and variables give milliseconds; the file may also say 10s, 1m. `min` 1 refuses 0 (an interval of 0 is a busy loop). */
function milliseconds(setting: Sourced, max: number, problems: Violations, min = 0): number {
  if (setting.source.startsWith("-") || setting.source.startsWith("CLUSTERPLANE_")) return integer(setting, min, max, problems);
  const ms = parseDuration(setting.value);
  if (ms === null || ms < min || ms > max) {
    const positive = min > 0 ? "a positive duration" : "a duration";
    problems.add(setting.source, `${JSON.stringify(setting.value)} must be ${positive} such as 500ms, 10s or 1m (at most 1h)`);
    return min;
  }
  return ms;
}

function boolean(setting: Sourced, problems: Violations): boolean | undefined {
  const raw = setting.value;
  if (typeof raw === "boolean") return raw;
  if (typeof raw === "string") {
    const word = raw.trim().toLowerCase();
    if (["true", "on", "yes", "1"].includes(word)) return true;
    if (["false", "off", "no", "0"].includes(word)) return false;
  }
  problems.add(setting.source, `${JSON.stringify(raw)} must be true or false (on or off)`);
  return undefined;
}

function oneOf<T extends string>(setting: Sourced, allowed: readonly T[], problems: Violations): T {
  if (typeof setting.value === "string" && (allowed as readonly string[]).includes(setting.value)) return setting.value as T;
  problems.add(setting.source, `${JSON.stringify(setting.value)} must be one of ${allowed.join(", ")}`);
  return allowed[0]!;
}

/** A YAML list of strings, or a comma-separated string (flags, environment). */
function list(setting: Sourced, problems: Violations): string[] {
  const raw = setting.value;
  if (typeof raw === "string") return raw.split(",").map((item) => item.trim());
  if (Array.isArray(raw) && raw.every((item) => typeof item === "string")) return raw.map((item: string) => item.trim());
  problems.add(setting.source, "must be a list of strings");
  return [];
}

function originList(setting: Sourced, problems: Violations): string[] {
  const origins = list(setting, problems).filter((origin) => origin !== "");
  origins.forEach((origin, index) => {
    const field = Array.isArray(setting.value) ? `${setting.source}[${index}]` : setting.source;
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== normalizeOrigin(origin)) {
      problems.add(field, `"${origin}" must be an origin: scheme, host and optional port, no path (https://console.example.com)`);
    }
  });
  return origins;
}

function roleMap(setting: Sourced, problems: Violations): Record<string, Role> {
  if (!isMapping(setting.value)) {
    problems.add(setting.source, `must map client certificate common names to roles (${ROLES.join(", ")})`);
    return {};
  }
  const roles: Record<string, Role> = {};
  for (const [name, role] of Object.entries(setting.value)) {
    if (isRole(role)) roles[name] = role;
    else problems.add(`${setting.source}.${name}`, `${JSON.stringify(role)} is not a role; use ${ROLES.join(", ")}`);
  }
  return roles;
}

/** The tokens file must be readable and well-formed at start; its errors name the line. */
function checkTokensFile(path: string, source: string, problems: Violations): void {
  let contents: string;
  try {
    contents = readFileSync(path, "utf8");
  } catch (error) {
    problems.add(source, `cannot read ${path}: ${(error as Error).message}`);
    return;
  }
  try {
    parseTokens(contents, `${source} (${path})`);
  } catch (error) {
    collect(error, problems);
  }
}

function syncSettings(raw: unknown, source: string, problems: Violations, env: NodeJS.ProcessEnv): SyncSettings {
  try {
    return parseSyncSettings(raw, source, env);
  } catch (error) {
    collect(error, problems);
    return DEFAULT_SYNC_SETTINGS;
  }
}

/** A legacy `--sync-config` file: the `sync` section on its own. */
function loadSyncFile(path: string, source: string, problems: Violations, env: NodeJS.ProcessEnv): SyncSettings {
  const raw = readYaml(path, source, problems);
  return raw === undefined ? DEFAULT_SYNC_SETTINGS : syncSettings(raw, path, problems, env);
}

/** A YAML file's contents; undefined, with the problem noted under `source`, when it cannot be read or parsed. */
function readYaml(path: string, source: string, problems: Violations): unknown {
  try {
    return parseYaml(readFileSync(path, "utf8")) ?? null;
  } catch (error) {
    problems.add(source, `cannot read ${path}: ${(error as Error).message}`);
    return undefined;
  }
}

function collect(error: unknown, problems: Violations): void {
  if (!(error instanceof DomainError)) throw error;
  if (error.violations.length === 0) problems.add("configuration", error.message);
  for (const violation of error.violations) problems.add(violation.field, violation.description);
}


/** The namespace template must give a namespace for every domain: a missing variable is caught at start, not on the first project. */
function checkNamespaceTemplate(config: ServerConfig, problems: Violations): void {
  if (config.sync) problems.add("sync.namespaceTemplate", namespaceProblem(config.sync.provisioning, "p", config.domains ?? []));
}
