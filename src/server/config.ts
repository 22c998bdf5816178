import { Violations } from "../core/errors.js";
import { checkDomains, DEFAULT_DOMAINS } from "../core/project.js";
import type { ServerConfig } from "./server.js";

/** Flags as given on the command line; each falls back to its environment variable, then a default. */
export interface ServeFlags {
  host?: string;
  port?: string;
  db?: string;
  shutdownGraceMs?: string;
  domains?: string;
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
