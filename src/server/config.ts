import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { DomainError, Violations } from "../core/errors.js";
import { DEFAULT_SYNC_SETTINGS, parseSyncSettings, type SyncSettings } from "../sync/sync-settings.js";
import { checkDomains, DEFAULT_DOMAINS } from "../core/project.js";
import type { ServerConfig } from "./server.js";

/** Flags as given on the command line; each falls back to its environment variable, then a default. */
export interface ServeFlags {
  host?: string;
  port?: string;
  db?: string;
  shutdownGraceMs?: string;
  domains?: string;
  syncConfig?: string;
  /** commander's `--no-sync` sets this to false. */
  sync?: boolean;
}

export const CONFIG_DEFAULTS = {
  host: "127.0.0.1",
  port: 8080,
  databasePath: "clusterplane.db",
  shutdownGraceMs: 10_000,
} as const;

/**
 * Resolves the server configuration from flags, then `CLUSTERPLANE_*` environment variables, then
 * defaults. Throws a message naming every bad setting and where it came from.
 */
export function resolveServerConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const problems = new Violations();
  const pick = (flag: string | undefined, name: string) =>
    flag !== undefined ? { value: flag, source: `--${name}` } : undefined;
  const fromEnv = (variable: string) =>
    env[variable] !== undefined && env[variable] !== "" ? { value: env[variable], source: variable } : undefined;

  const host = pick(flags.host, "host") ?? fromEnv("CLUSTERPLANE_HOST");
  const port = pick(flags.port, "port") ?? fromEnv("CLUSTERPLANE_PORT");
  const db = pick(flags.db, "db") ?? fromEnv("CLUSTERPLANE_DB");
  const grace = pick(flags.shutdownGraceMs, "shutdown-grace-ms") ?? fromEnv("CLUSTERPLANE_SHUTDOWN_GRACE_MS");
  const domains = pick(flags.domains, "domains") ?? fromEnv("CLUSTERPLANE_DOMAINS");
  const syncConfig = pick(flags.syncConfig, "sync-config") ?? fromEnv("CLUSTERPLANE_SYNC_CONFIG");
  const syncSwitch = flags.sync === false ? { value: "off", source: "--no-sync" } : fromEnv("CLUSTERPLANE_SYNC");

  const config: ServerConfig = {
    host: host?.value ?? CONFIG_DEFAULTS.host,
    port: port ? parseInteger(port.value, 0, 65535, port.source, problems) : CONFIG_DEFAULTS.port,
    databasePath: db?.value ?? CONFIG_DEFAULTS.databasePath,
    shutdownGraceMs: grace
      ? parseInteger(grace.value, 0, 3_600_000, grace.source, problems)
      : CONFIG_DEFAULTS.shutdownGraceMs,
    domains: domains ? domains.value.split(",").map((domain) => domain.trim()) : [...DEFAULT_DOMAINS],
  };
  if (domains) checkDomains(config.domains ?? [], domains.source, problems);
  config.sync = loadSyncSettings(syncConfig, problems, env);
  if (syncSwitch) {
    if (!["on", "off", "true", "false"].includes(syncSwitch.value)) problems.add(syncSwitch.source, `"${syncSwitch.value}" must be on or off`);
    else if (syncSwitch.value === "off" || syncSwitch.value === "false") config.sync = { ...config.sync, enabled: false };
  }
  if (host && host.value.trim() === "") problems.add(host.source, "must not be empty");
  if (db && db.value.trim() === "") problems.add(db.source, "must not be empty");
  problems.throwIfAny();
  return config;
}

function parseInteger(text: string, min: number, max: number, source: string, problems: Violations): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    problems.add(source, `"${text}" must be a whole number between ${min} and ${max}`);
    return min;
  }
  return value;
}

/** The sync settings: defaults, or the YAML file named by --sync-config. */
function loadSyncSettings(file: { value: string; source: string } | undefined, problems: Violations, env: NodeJS.ProcessEnv): SyncSettings {
  if (!file) return DEFAULT_SYNC_SETTINGS;
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file.value, "utf8"));
  } catch (error) {
    problems.add(file.source, `cannot read ${file.value}: ${(error as Error).message}`);
    return DEFAULT_SYNC_SETTINGS;
  }
  try {
    return parseSyncSettings(raw, file.value, env);
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    for (const violation of error.violations) problems.add(violation.field, violation.description);
    return DEFAULT_SYNC_SETTINGS;
  }
}
