import { readdirSync, readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { DEFAULT_CREDENTIAL_DIRECTORIES } from "../core/cluster.js";
import { DEFAULT_PROVISIONING, type ProvisioningSpec } from "../core/desired-state.js";
import { unknownName } from "../core/did-you-mean.js";
import { parseDuration } from "../core/duration.js";
import { Violations } from "../core/errors.js";
import { isMapping } from "../core/values.js";

/** How the cluster-sync loop runs, and what it provisions. */
export interface SyncSettings {
  enabled: boolean;
  /** How often every cluster is checked (only changed objects are sent). */
  intervalMs: number;
  /** How often everything is applied again regardless of hashes, to repair drift. */
  fullResyncIntervalMs: number;
  /** Clusters synced at once. */
  concurrency: number;
  /** Requests in flight per cluster. */
  requestsPerCluster: number;
  requestTimeoutMs: number;
  /** First retry delay after a failed pass; doubles per failure, with jitter, up to maxBackoffMs. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Directory of extra object templates (*.yaml, *.yml), or "" for none. */
  templatePath: string;
  /** The only directories cluster token and CA files may be read from. */
  credentialDirectories: string[];
  provisioning: Omit<ProvisioningSpec, "templates">;
}

export const DEFAULT_SYNC_SETTINGS: SyncSettings = {
  enabled: true,
  intervalMs: 60_000,
  fullResyncIntervalMs: 600_000,
  concurrency: 16,
  requestsPerCluster: 8,
  requestTimeoutMs: 10_000,
  initialBackoffMs: 1_000,
  maxBackoffMs: 300_000,
  templatePath: "",
  credentialDirectories: [...DEFAULT_CREDENTIAL_DIRECTORIES],
  provisioning: {
    namespaceTemplate: DEFAULT_PROVISIONING.namespaceTemplate,
    serviceAccount: DEFAULT_PROVISIONING.serviceAccount,
    templateData: {},
    domainData: {},
  },
};

type Raw = Record<string, unknown>;

/** Node timers overflow past 2^31 - 1 ms (about 24.8 days) and then fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const KNOWN_KEYS = [
  "enabled",
  "interval",
  "refreshInterval",
  "fullResyncInterval",
  "concurrency",
  "requestsPerCluster",
  "requestTimeout",
  "initialBackoff",
  "maxBackoff",
  "templatePath",
  "credentialDirectories",
  "namespaceTemplate",
  "serviceAccount",
  "templateData",
  "customData",
];

/**
 * Reads the `sync` settings from a parsed YAML mapping (keys as in flyteadmin's cluster_resources
 * where they overlap: templatePath, templateData, customData). `source` prefixes every problem,
 * e.g. `sync.templateData.role`. Throws a DomainError listing all problems.
 */
export function parseSyncSettings(raw: unknown, source: string, env: NodeJS.ProcessEnv = process.env): SyncSettings {
  const problems = new Violations();
  const input = { ...(isMapping(raw) ? (raw as Raw) : {}) };
  if (raw !== undefined && raw !== null && !isMapping(raw)) problems.add(source, "must be a mapping");
  const settings = structuredClone(DEFAULT_SYNC_SETTINGS);
  const at = (key: string) => `${source}.${key}`;

  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.includes(key)) problems.add(at(key), unknownName("key", key, KNOWN_KEYS));
  }
  // flyteadmin calls the interval refreshInterval; accept its name so imported settings work as they are.
  if (input.interval === undefined && input.refreshInterval !== undefined) input.interval = input.refreshInterval;
  if (input.enabled !== undefined) {
    if (typeof input.enabled === "boolean") settings.enabled = input.enabled;
    else problems.add(at("enabled"), "must be true or false");
  }
  const durations = [
    ["interval", "intervalMs"],
    ["fullResyncInterval", "fullResyncIntervalMs"],
    ["requestTimeout", "requestTimeoutMs"],
    ["initialBackoff", "initialBackoffMs"],
    ["maxBackoff", "maxBackoffMs"],
  ] as const;
  for (const [key, field] of durations) {
    if (input[key] === undefined) continue;
    const ms = parseDuration(input[key]);
    if (ms === null || ms === 0 || ms > MAX_TIMER_MS) {
      problems.add(at(key), `${JSON.stringify(input[key])} must be a positive duration of at most 24 days, such as 500ms, 30s, 10m or 1h`);
    } else settings[field] = ms;
  }
  // A default that the configured value overtakes follows it; two configured values must agree.
  if (settings.fullResyncIntervalMs < settings.intervalMs) {
    if (input.fullResyncInterval === undefined) settings.fullResyncIntervalMs = settings.intervalMs;
    else problems.add(at("fullResyncInterval"), "must not be shorter than interval");
  }
  if (settings.maxBackoffMs < settings.initialBackoffMs) {
    if (input.maxBackoff === undefined) settings.maxBackoffMs = settings.initialBackoffMs;
    else problems.add(at("maxBackoff"), "must not be shorter than initialBackoff");
  }
  for (const key of ["concurrency", "requestsPerCluster"] as const) {
    if (input[key] === undefined) continue;
    const value = input[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 1000) {
      problems.add(at(key), `${JSON.stringify(value)} must be a whole number from 1 to 1000`);
    } else settings[key] = value;
  }
  if (input.templatePath !== undefined) {
    if (typeof input.templatePath === "string") settings.templatePath = input.templatePath;
    else problems.add(at("templatePath"), "must be a directory path");
  }
  if (input.credentialDirectories !== undefined) {
    const dirs = input.credentialDirectories;
    if (!Array.isArray(dirs) || dirs.length === 0 || !dirs.every((dir) => typeof dir === "string" && isAbsolute(dir))) {
      problems.add(at("credentialDirectories"), "must list absolute directories, for example [/var/run/credentials]");
    } else settings.credentialDirectories = dirs as string[];
  }
  if (input.namespaceTemplate !== undefined) {
    if (typeof input.namespaceTemplate === "string" && input.namespaceTemplate !== "") {
      settings.provisioning.namespaceTemplate = input.namespaceTemplate;
    } else problems.add(at("namespaceTemplate"), "must be a template such as {{ project }}-{{ domain }}");
  }
  if (input.serviceAccount !== undefined) {
    const account = isMapping(input.serviceAccount) ? (input.serviceAccount as Raw) : {};
    if (!isMapping(input.serviceAccount)) problems.add(at("serviceAccount"), "must be a mapping with name, labels, annotations");
    if (account.name !== undefined) {
      if (typeof account.name === "string" && account.name !== "") settings.provisioning.serviceAccount.name = account.name;
      else problems.add(at("serviceAccount.name"), "must be a service account name");
    }
    settings.provisioning.serviceAccount.labels = stringMap(account.labels, at("serviceAccount.labels"), problems);
    settings.provisioning.serviceAccount.annotations = stringMap(account.annotations, at("serviceAccount.annotations"), problems);
  }
  settings.provisioning.templateData = templateData(input.templateData, at("templateData"), problems, env);
  if (input.customData !== undefined) {
    if (!isMapping(input.customData)) problems.add(at("customData"), "must map each domain to its variables");
    else {
      for (const [domain, data] of Object.entries(input.customData as Raw)) {
        settings.provisioning.domainData[domain] = templateData(data, at(`customData.${domain}`), problems, env);
      }
    }
  }
  problems.throwIfAny();
  return settings;
}

/** The provisioning spec with the templates directory read now (templates may change at run time). */
export function loadProvisioning(settings: SyncSettings): ProvisioningSpec {
  return { ...settings.provisioning, templates: readTemplates(settings.templatePath) };
}

function readTemplates(dir: string): ProvisioningSpec["templates"] {
  if (dir === "") return [];
  return readdirSync(dir)
    .filter((file) => /\.ya?ml$/.test(file))
    .sort()
    .map((file) => ({ source: file, text: readFileSync(join(dir, file), "utf8") }));
}

/**
 * Template variables: a plain string, `{ value }`, or `{ valueFrom: { env } | { filePath } }` as in
 * flyteadmin, so secrets such as account ids need not sit in the configuration file.
 */
function templateData(raw: unknown, source: string, problems: Violations, env: NodeJS.ProcessEnv): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (!isMapping(raw)) {
    problems.add(source, "must map variable names to values");
    return {};
  }
  const data: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Raw)) {
    const resolved = resolveValue(value, env);
    if (typeof resolved === "string") data[name] = resolved;
    else problems.add(`${source}.${name}`, resolved.problem);
  }
  return data;
}

const VALUE_FORMS = "must be a string, {value: ...}, {valueFrom: {env: NAME}} or {valueFrom: {filePath: PATH}}";

/** The value, or why there is none, naming the variable or file an operator has to provide. */
function resolveValue(value: unknown, env: NodeJS.ProcessEnv): string | { problem: string } {
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return String(value);
  if (!isMapping(value)) return { problem: VALUE_FORMS };
  const { value: inline, valueFrom } = value as Raw;
  if (inline !== undefined) return resolveValue(inline, env);
  if (!isMapping(valueFrom)) return { problem: VALUE_FORMS };
  const { env: variable, filePath } = valueFrom as Raw;
  if (typeof variable === "string") {
    return env[variable] ?? { problem: `environment variable ${variable} is not set (valueFrom.env); set it in the environment of the process that runs the sync` };
  }
  if (typeof filePath === "string") {
    try {
      return readFileSync(filePath, "utf8").trim();
    } catch (error) {
      return { problem: `cannot read ${filePath} (valueFrom.filePath): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
    }
  }
  return { problem: VALUE_FORMS };
}

function stringMap(raw: unknown, source: string, problems: Violations): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (!isMapping(raw) || !Object.values(raw as Raw).every((v) => typeof v === "string")) {
    problems.add(source, "must map keys to string values");
    return {};
  }
  return { ...(raw as Record<string, string>) };
}

