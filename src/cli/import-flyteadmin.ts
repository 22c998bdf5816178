import { readFileSync, writeFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { Command, Option } from "commander";
import { parse as parseYaml, parseAllDocuments, stringify as toYaml } from "yaml";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Cluster, ClusterAuthSchema } from "../../gen/clusterplane/v1/cluster_pb.js";
import type { ClusterLabel } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { isMapping } from "../core/values.js";
import type { Session } from "./client.js";
import { confirm } from "./confirm.js";
import { CliError, EXIT } from "./exit.js";
import { flyteadminAuth } from "./manifests.js";
import { renderTable } from "./output.js";
import { formatMembers } from "./resources.js";
import { repeatable, splitPair, yesOption, type Verbs } from "./verbs.js";

type Mapping = Record<string, unknown>;

/** A flyteadmin clusterConfigs entry, read and checked. */
interface ClusterEntry {
  name: string;
  endpoint: string;
  enabled: boolean;
  auth: { tokenPath: string; caCertPath: string } | "in_cluster";
  /** The endpoint as the file gives it, when it is a documentation placeholder such as `<your-endpoint>`. */
  placeholder: string | undefined;
  /** Where the entry is in the file, for notes: `configmap.clusters.clusterConfigs[0] (dataplane_1)`. */
  at: string;
  /** Said only when the import changes this cluster: once registered, they are old news. */
  notes: string[];
}

interface LabelEntry {
  name: string;
  members: { cluster: string; weight: number }[];
}

/** What the file says, before asking the server what exists. */
interface Imported {
  clustersAt: string | undefined;
  clusters: ClusterEntry[];
  labels: LabelEntry[];
  defaultLabel: string;
  syncSettings: Mapping | undefined;
  syncAt: string | undefined;
  notes: string[];
}

interface Step {
  kind: "cluster" | "label" | "default label";
  name: string;
  action: "create" | "exists" | "update" | "set";
  detail: string;
  notes?: string[];
  run?: () => Promise<void>;
}


type Found = { at: string; value: Mapping };
type Search = (wanted: (key: string, value: Mapping) => boolean) => Found[];

/**
 * Every mapping under a key accepted by `wanted` (list items count as under their list's key),
 * anywhere in the file: in Helm values (`configmap.clusters`,
 * `cluster_resource_manager.config.cluster_resources`), at the top of a flyteadmin config file,
 * or inside the YAML strings of a ConfigMap's `data`.
 */
function findSections(key: string, node: unknown, at: string, wanted: (key: string, value: Mapping) => boolean, found: Found[]): void {
  if (isMapping(node) && wanted(key, node)) found.push({ at, value: node });
  if (typeof node === "string" && /\.ya?ml$/.test(key) && node.includes("\n")) {
    let embedded: unknown;
    try {
      embedded = parseYaml(node);
    } catch {
      return;
    }
    findSections("", embedded, at, wanted, found);
  } else if (Array.isArray(node)) {
    node.forEach((item, index) => findSections(key, item, `${at}[${index}]`, wanted, found));
  } else if (isMapping(node)) {
    for (const [child, value] of Object.entries(node)) findSections(child, value, at ? `${at}.${child}` : child, wanted, found);
  }
}

/** One section, or none; two that differ are ambiguous and the operator must say which file holds the truth. */
function single(found: Found[], what: string): Found | undefined {
  const [first, ...others] = found;
  if (first && others.some((other) => JSON.stringify(other.value) !== JSON.stringify(first.value))) {
    throw new CliError(`the file has ${found.length} different ${what} sections (${found.map((f) => f.at).join(", ")}); import them one at a time`);
  }
  return first;
}

const PLACEHOLDER = /<[^<>]*>/;
const KNOWN_CLUSTER_KEYS = new Set(["name", "endpoint", "enabled", "auth", "kubeClientConfig"]);

function readClusters(section: Mapping, at: string, overrides: Map<string, string>, problems: string[]): ClusterEntry[] {
  const configs = section.clusterConfigs ?? [];
  if (!Array.isArray(configs)) {
    problems.push(`${at}.clusterConfigs must be a list`);
    return [];
  }
  const entries: ClusterEntry[] = [];
  configs.forEach((raw: unknown, index) => {
    const where = `${at}.clusterConfigs[${index}]`;
    if (!isMapping(raw)) return void problems.push(`${where} must be a mapping`);
    const name = raw.name;
    if (typeof name !== "string" || name === "") return void problems.push(`${where}.name is required`);
    const here = `${where} (${name})`;
    const notes: string[] = [];
    for (const key of Object.keys(raw)) if (!KNOWN_CLUSTER_KEYS.has(key)) notes.push(`${here}.${key} has no clusterplane equivalent; ignored`);
    if (raw.kubeClientConfig !== undefined) notes.push(`${here}.kubeClientConfig ignored: clusterplane sets its own client timeouts (sync settings requestTimeout)`);
    // flyteadmin reads an auth without a type as file_path.
    const auth = { type: "file_path", ...(isMapping(raw.auth) ? raw.auth : {}) };
    let entryAuth: ClusterEntry["auth"];
    try {
      const json = flyteadminAuth(auth, here);
      entryAuth = "inCluster" in json ? "in_cluster" : json.bearerTokenFile;
    } catch (error) {
      return void problems.push((error as Error).message);
    }
    if (raw.enabled !== undefined && typeof raw.enabled !== "boolean") return void problems.push(`${here}.enabled must be true or false`);
    // flyteadmin routes only to clusters with enabled: true; a missing flag means disabled there too.
    const enabled = raw.enabled === true;
    const override = overrides.get(name);
    overrides.delete(name);
    const given = override ?? (typeof raw.endpoint === "string" ? raw.endpoint : "");
    const placeholder = PLACEHOLDER.test(given) ? given : undefined;
    if (!enabled && !placeholder) {
      notes.push(`${here} is not enabled: true, so flyteadmin does not route to it; it is registered disabled (later: clusterplane update cluster ${name} --enabled true)`);
    }
    entries.push({ name, endpoint: placeholder ? "" : given, enabled: enabled && !placeholder, auth: entryAuth, placeholder, at: here, notes });
  });
  return entries;
}

function readLabels(section: Mapping, at: string, problems: string[]): LabelEntry[] {
  const map = section.labelClusterMap ?? {};
  if (!isMapping(map)) {
    problems.push(`${at}.labelClusterMap must map each label to a list of {id, weight}`);
    return [];
  }
  return Object.entries(map).map(([name, list]) => {
    const where = `${at}.labelClusterMap.${name}`;
    const members = (Array.isArray(list) ? list : []).flatMap((raw: unknown, index) => {
      if (!isMapping(raw) || typeof raw.id !== "string" || typeof raw.weight !== "number") {
        problems.push(`${where}[${index}] must be {id: CLUSTER, weight: NUMBER}`);
        return [];
      }
      return [{ cluster: raw.id, weight: raw.weight }];
    });
    if (!Array.isArray(list)) problems.push(`${where} must be a list of {id, weight}`);
    return { name, members };
  });
}

/** Helm values write maps as lists of one-key maps (`customData: [- production: [- cpu: …]]`). */
function asMapping(value: unknown): unknown {
  if (!Array.isArray(value) || !value.every(isMapping)) return value;
  return Object.assign({}, ...value);
}

const GO_DURATION = /^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const GO_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's `1h30m` as clusterplane's single-unit duration (`90m`). */
function duration(value: unknown): string | undefined {
  if (typeof value !== "string" || !GO_DURATION.test(value)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(amount) * GO_UNITS_MS[unit!]!;
  ms = Math.round(ms);
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) if (ms > 0 && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** flyteadmin's cluster_resources (+ namespace_mapping) as the settings `serve --sync-config` reads. */
function readSyncSettings(resources: Mapping, at: string, namespaceTemplate: unknown, problems: string[], notes: string[]): Mapping {
  const settings: Mapping = {};
  for (const [key, value] of Object.entries(resources)) {
    if (key === "templatePath" || key === "templateData") settings[key] = key === "templateData" ? asMapping(value) : value;
    else if (key === "customData") {
      const domains = asMapping(value);
      settings.customData = isMapping(domains) ? Object.fromEntries(Object.entries(domains).map(([domain, data]) => [domain, asMapping(data)])) : domains;
    } else if (key === "refreshInterval") {
      const interval = duration(value);
      if (interval) settings.interval = interval;
      else problems.push(`${at}.refreshInterval ${JSON.stringify(value)} is not a duration such as 5m`);
    } else notes.push(`${at}.${key} has no clusterplane equivalent; ignored`);
  }
  if (typeof namespaceTemplate === "string") settings.namespaceTemplate = namespaceTemplate;
  return settings;
}

/**
 * flyteadmin mounts the credential Secret into its pod (`additionalVolumes` +
 * `additionalVolumeMounts`); clusterplane reads the same paths, so it needs the same mount.
 */
function credentialNotes(search: Search, clusters: ClusterEntry[]): string[] {
  const secrets = new Map<string, string>();
  for (const { value } of search((_, v) => isMapping(v.secret) && typeof v.name === "string")) {
    const secret = value.secret as Mapping;
    if (typeof secret.secretName === "string") secrets.set(value.name as string, secret.secretName);
  }
  const mounts = search((_, v) => typeof v.mountPath === "string" && typeof v.name === "string");
  const notes = new Set<string>();
  for (const cluster of clusters) {
    if (cluster.auth === "in_cluster") continue;
    for (const path of [cluster.auth.tokenPath, cluster.auth.caCertPath]) {
      const mount = mounts.find(({ value }) => path.startsWith(`${String(value.mountPath).replace(/\/$/, "")}/`));
      const secret = mount && secrets.get(mount.value.name as string);
      if (mount && secret) {
        notes.add(`credentials under ${mount.value.mountPath} come from Secret ${secret}: mount it at the same path in the clusterplane server's pod`);
      }
    }
  }
  return [...notes];
}

function readFlyteadminFile(path: string, overrides: Map<string, string>): Imported {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new CliError(`cannot read ${path}: ${(error as Error).message}`);
  }
  const parsed = parseAllDocuments(text);
  const documents = Array.isArray(parsed) ? parsed : [];
  const broken = documents.find((doc) => doc.errors.length > 0);
  if (broken) throw new CliError(`${path}: invalid YAML: ${broken.errors[0]!.message}`);
  const data: unknown[] = documents.map((doc) => doc.toJS());
  const prefix = (index: number) => (data.length > 1 ? `[document ${index + 1}]` : "");
  const search: Search = (wanted) => {
    const found: Found[] = [];
    data.forEach((doc, index) => findSections("", doc, prefix(index), wanted, found));
    return found;
  };

  const problems: string[] = [];
  const notes: string[] = [];
  const clustersSection = single(
    search((key, value) => key === "clusters" && ("clusterConfigs" in value || "labelClusterMap" in value || "defaultExecutionLabel" in value)),
    "clusters",
  );
  const resources = single(search((key) => key === "cluster_resources"), "cluster_resources");
  const namespaceMapping = single(search((key, value) => key === "namespace_mapping" && typeof value.template === "string"), "namespace_mapping");
  if (!clustersSection && !resources) {
    throw new CliError(`${path}: no flyteadmin \`clusters\` (clusterConfigs, labelClusterMap) or \`cluster_resources\` section found`);
  }

  const section = clustersSection?.value ?? {};
  const at = clustersSection?.at ?? "clusters";
  const clusters = readClusters(section, at, overrides, problems);
  const labels = readLabels(section, at, problems);
  const defaultLabel = section.defaultExecutionLabel ?? "";
  if (typeof defaultLabel !== "string") problems.push(`${at}.defaultExecutionLabel must be a label name`);
  for (const name of overrides.keys()) problems.push(`--cluster-endpoint ${name}=…: the file has no cluster ${name}`);
  const syncSettings = resources && readSyncSettings(resources.value, resources.at, namespaceMapping?.value.template, problems, notes);
  if (problems.length > 0) throw new CliError(`${path} cannot be imported:\n  ${problems.join("\n  ")}`);
  notes.push(...credentialNotes(search, clusters));
  return {
    clustersAt: clustersSection?.at,
    clusters,
    labels,
    defaultLabel: typeof defaultLabel === "string" ? defaultLabel : "",
    syncSettings,
    syncAt: resources?.at,
    notes,
  };
}

async function existing<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.NotFound) return undefined;
    throw error;
  }
}

function authOf(entry: ClusterEntry): MessageInitShape<typeof ClusterAuthSchema> {
  return entry.auth === "in_cluster"
    ? { method: { case: "inCluster", value: {} } }
    : { method: { case: "bearerTokenFile", value: entry.auth } };
}

function describeAuth(auth: ClusterEntry["auth"]): string {
  return auth === "in_cluster" ? "in-cluster" : `token ${auth.tokenPath}, CA ${auth.caCertPath}`;
}

function authOfCluster(cluster: Cluster): ClusterEntry["auth"] | undefined {
  const method = cluster.auth?.method;
  if (method?.case === "inCluster") return "in_cluster";
  if (method?.case === "bearerTokenFile") return { tokenPath: method.value.tokenPath, caCertPath: method.value.caCertPath };
  return undefined;
}

/** Asks the server what exists and decides, per object, what the import does. */
async function plan(session: Session, imported: Imported, pool: string): Promise<Step[]> {
  const conflicts: string[] = [];
  const steps = [
    ...(await planClusters(session, imported.clusters, pool, conflicts)),
    ...(await planLabels(session, imported, conflicts)),
    ...(await planDefaultLabel(session, imported.defaultLabel)),
  ];
  if (conflicts.length > 0) throw new CliError(`cannot import:\n  ${conflicts.join("\n  ")}`, EXIT.REJECTED);
  return steps;
}

/**
 * A documentation placeholder is no cluster: a new one is registered disabled without an endpoint
 * until the operator fills it in. For a cluster registered before, the file says nothing about
 * its endpoint, so the endpoint (and whether it is enabled) set since is left as it is: running
 * the seed's file again must not take clusters out of service.
 */
async function planClusters({ api, org }: Session, entries: ClusterEntry[], pool: string, conflicts: string[]): Promise<Step[]> {
  if (entries.length > 0) await api.pools.getClusterPool({ org, name: pool });
  const steps: Step[] = [];
  for (const entry of entries) {
    const step = { kind: "cluster" as const, name: entry.name };
    const current = await existing(async () => (await api.clusters.getCluster({ org, name: entry.name })).cluster!);
    if (!current) {
      const cluster = { org, name: entry.name, pool, endpoint: entry.endpoint, enabled: entry.enabled, auth: authOf(entry) };
      const endpoint = entry.placeholder ? "(no endpoint yet: placeholder)" : entry.endpoint;
      const notes = [...entry.notes];
      if (entry.placeholder) notes.push(placeholderNote(entry, "registered disabled without an endpoint"));
      const detail = `${endpoint}, ${entry.enabled ? "enabled" : "disabled"}, ${describeAuth(entry.auth)}`;
      steps.push({ ...step, action: "create", detail, notes, run: async () => void (await api.clusters.createCluster({ cluster })) });
      continue;
    }
    if (current.pool !== pool) {
      conflicts.push(`cluster ${entry.name} is registered in pool ${current.pool}, not ${pool}: clusters do not move in place (drain, delete, register again), or import with --pool ${current.pool}`);
      continue;
    }
    const changes: { field: string; was: string; now: string }[] = [];
    const currentEnabled = current.enabled ?? true;
    if (!entry.placeholder) {
      if (current.endpoint !== entry.endpoint) changes.push({ field: "endpoint", was: current.endpoint || "(none)", now: entry.endpoint || "(none)" });
      if (currentEnabled !== entry.enabled) changes.push({ field: "enabled", was: String(currentEnabled), now: String(entry.enabled) });
    }
    const currentAuth = authOfCluster(current);
    if (JSON.stringify(currentAuth) !== JSON.stringify(entry.auth)) {
      changes.push({ field: "auth", was: currentAuth ? describeAuth(currentAuth) : "(none)", now: describeAuth(entry.auth) });
    }
    if (changes.length === 0) {
      const kept = entry.placeholder && current.endpoint ? `${current.endpoint} kept (the file has a placeholder)` : current.endpoint || "(no endpoint)";
      steps.push({ ...step, action: "exists", detail: `${kept}, ${currentEnabled ? "enabled" : "disabled"}, ${describeAuth(entry.auth)}` });
      continue;
    }
    // Only what differs is sent (an update mask): a field the import leaves alone is never touched.
    const cluster = { org, name: entry.name, endpoint: entry.endpoint, enabled: entry.enabled, auth: authOf(entry), etag: current.etag };
    const updateMask = { paths: changes.map((change) => change.field) };
    const detail = changes.map((change) => `${change.field} ${change.was} -> ${change.now}`).join("; ");
    const notes = [...entry.notes];
    if (entry.placeholder && !current.endpoint) notes.push(placeholderNote(entry, "still without an endpoint"));
    steps.push({ ...step, action: "update", detail, notes, run: async () => void (await api.clusters.updateCluster({ cluster, updateMask })) });
  }
  return steps;
}

function placeholderNote(entry: ClusterEntry, outcome: string): string {
  return (
    `${entry.at}.endpoint ${entry.placeholder} is a placeholder: ${outcome} ` +
    `(later: clusterplane update cluster ${entry.name} --endpoint https://… --enabled true, or import again with --cluster-endpoint ${entry.name}=https://…)`
  );
}

async function planLabels({ api, org }: Session, imported: Imported, conflicts: string[]): Promise<Step[]> {
  // A label naming a cluster that will not exist would fail halfway through the import.
  const inFile = new Set(imported.clusters.map((entry) => entry.name));
  for (const cluster of new Set(imported.labels.flatMap((entry) => entry.members.map((member) => member.cluster)))) {
    if (inFile.has(cluster) || (await existing(() => api.clusters.getCluster({ org, name: cluster })))) continue;
    const users = imported.labels.filter((entry) => entry.members.some((member) => member.cluster === cluster)).map((entry) => entry.name);
    conflicts.push(`label ${users.join(", ")} names cluster ${cluster}, which is neither in clusterConfigs nor registered`);
  }
  const steps: Step[] = [];
  const sorted = (members: string) => members.split(", ").sort().join(", ");
  for (const entry of imported.labels) {
    const step = { kind: "label" as const, name: entry.name };
    const detail = formatMembers({ clusters: entry.members });
    const current: ClusterLabel | undefined = await existing(async () => (await api.labels.getClusterLabel({ org, name: entry.name })).label!);
    const label = { org, name: entry.name, clusters: entry.members, etag: current?.etag ?? "" };
    if (!current) steps.push({ ...step, action: "create", detail, run: async () => void (await api.labels.createClusterLabel({ label })) });
    else if (sorted(formatMembers(current)) === sorted(detail)) steps.push({ ...step, action: "exists", detail });
    else {
      const was = `${detail} (was ${formatMembers(current)})`;
      steps.push({ ...step, action: "update", detail: was, run: async () => void (await api.labels.updateClusterLabel({ label })) });
    }
  }
  return steps;
}

/** Only a label the file names is set: a file without defaultExecutionLabel leaves the current one alone. */
async function planDefaultLabel({ api, org }: Session, wanted: string): Promise<Step[]> {
  if (!wanted) return [];
  const { label } = await api.labels.getDefaultClusterLabel({ org });
  const step = { kind: "default label" as const, name: wanted };
  if (label === wanted) return [{ ...step, action: "exists", detail: "" }];
  return [{ ...step, action: "set", detail: `was ${label || "none"}`, run: async () => void (await api.labels.setDefaultClusterLabel({ org, label: wanted })) }];
}

const PAST: Record<Step["action"], string> = { create: "created", update: "updated", set: "set", exists: "exists" };

export function registerImport(program: Command, verbs: Verbs): void {
  program
    .command("import")
    .description("import configuration from another system")
    .command("flyteadmin <file>")
    .description("register the clusters, labels and default label of a flyteadmin Helm values or config file; print its cluster_resources as sync settings")
    .addOption(new Option("--dry-run", "only show what would be created"))
    .addOption(yesOption("import"))
    .addOption(new Option("--pool <pool>", "pool to register the clusters into").default("default"))
    .addOption(
      new Option("--cluster-endpoint <name=url>", "use this API endpoint for a cluster (repeat; replaces placeholders such as <your-endpoint>)").argParser(
        repeatable,
      ),
    )
    .addOption(new Option("--sync-config-out <file>", "write the sync settings from cluster_resources to this file"))
    .action(async (file: string, flags: Record<string, unknown>) => {
      const overrides = new Map<string, string>();
      for (const pair of (flags.clusterEndpoint as string[] | undefined) ?? []) {
        overrides.set(...splitPair(pair, "--cluster-endpoint", "dataplane_1=https://10.0.0.1:443"));
      }
      const imported = readFlyteadminFile(file, overrides);
      const dryRun = flags.dryRun === true;
      const pool = flags.pool as string;
      const out = (text: string) => process.stdout.write(text);

      const steps = imported.clustersAt ? await plan(verbs.session(), imported, pool) : [];
      // Only what would change is listed: an import run again on the same file shows nothing to do.
      const pending = steps.filter((step) => step.run);
      const unchanged = steps.filter((step) => !step.run);
      if (imported.clustersAt && pending.length > 0) {
        out(`From ${file} (${imported.clustersAt}), into pool ${pool}:\n`);
        const table = renderTable(
          [
            { header: "KIND", cell: (step: Step) => step.kind },
            { header: "NAME", cell: (step) => step.name },
            { header: "ACTION", cell: (step) => step.action },
            { header: "DETAIL", cell: (step) => step.detail },
          ],
          pending,
        );
        out(table.split("\n").map((line) => (line ? `  ${line}` : line)).join("\n"));
        if (unchanged.length > 0) out(`  unchanged: ${unchanged.map((step) => `${step.kind} ${step.name}`).join(", ")}\n`);
      } else if (imported.clustersAt) {
        const count = unchanged.length === 1 ? "its 1 object is" : `its ${unchanged.length} objects are`;
        out(`From ${file} (${imported.clustersAt}), into pool ${pool}: nothing to change; ${count} already registered.\n`);
      }
      for (const note of pending.flatMap((step) => step.notes ?? [])) out(`note: ${note}\n`);
      if (pending.length > 0 || imported.syncSettings) for (const note of imported.notes) out(`note: ${note}\n`);

      const target = flags.syncConfigOut as string | undefined;
      if (target && !imported.syncSettings) out(`note: ${file} has no cluster_resources section; ${target} not written\n`);
      if (imported.syncSettings) {
        const yaml = toYaml(imported.syncSettings);
        if (target && !dryRun) {
          writeFileSync(target, yaml);
          out(`Sync settings from ${imported.syncAt} written to ${target}; run the server with: clusterplane serve --sync-config ${target}\n`);
        } else {
          out(`# Sync settings from ${imported.syncAt}: save as sync.yaml and run: clusterplane serve --sync-config sync.yaml\n${yaml}`);
        }
      }

      if (pending.length === 0) return;
      if (dryRun) {
        out(`Dry run: nothing changed (${pending.length} change${pending.length === 1 ? "" : "s"} to make).\n`);
        return;
      }
      await confirm(`Apply ${pending.length} change${pending.length === 1 ? "" : "s"}?`, flags.yes as boolean | undefined);
      for (const step of pending) {
        await step.run!();
        out(`${step.kind} ${step.name} ${PAST[step.action]}\n`);
      }
    });
}
