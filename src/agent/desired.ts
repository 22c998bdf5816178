/**
 * The desired-state stream's message in the reconciler's terms: the DesiredState push mode builds
 * from the database (src/sync/desired-cache.ts), built here from what the control plane sent.
 */
import type { WatchDesiredStateResponse } from "../../gen/clusterplane/v1/agent_pb.js";
import { projectDomainKey, type DesiredObject, type ObjectRole, type ProjectDomain } from "../core/desired-state.js";
import type { KubeObject } from "../core/template.js";
import type { DesiredState, PairProvisioning } from "../sync/desired-cache.js";

const ROLES: ReadonlySet<string> = new Set<ObjectRole>(["namespace", "service-account", "template"]);

export interface ReceivedState {
  desired: DesiredState;
  /** Identifies the state: sent back as known_digest on reconnect, and in every report. */
  digest: string;
  revision: bigint;
  /** What the control plane recorded as applied on this cluster, by object key. */
  appliedHashes: Map<string, string>;
  /** Objects that could not be used (malformed by a control plane speaking another dialect), in words. */
  problems: string[];
}

/**
 * Builds the reconciler's DesiredState from one stream message. Provisioning is worked out as the
 * server does: a project-domain is provisioned by its namespace and service account (every object
 * of it whose role is not "template"). An object that cannot be used is left out and named in
 * `problems`; when it is one of those core objects, its project-domain cannot be provisioned
 * (empty core), so it is never reported as routable on the strength of half of what it needs.
 */
export function receivedState(message: WatchDesiredStateResponse): ReceivedState {
  const objects: DesiredObject[] = [];
  const problems: string[] = [];
  const broken = new Set<string>();
  for (const sent of message.objects) {
    const pairKey = projectDomainKey({ project: sent.project, domain: sent.domain });
    const problem = checkObject(sent.key, sent.role, sent.hash);
    let object: KubeObject | undefined;
    if (!problem) {
      try {
        object = parseManifest(sent.manifestJson);
      } catch (error) {
        problems.push(`${sent.key || "(no key)"}: manifest_json ${(error as Error).message}`);
      }
    } else {
      problems.push(`${sent.key || "(no key)"}: ${problem}`);
    }
    if (!object) {
      if (sent.role !== "template") broken.add(pairKey);
      continue;
    }
    objects.push({
      key: sent.key,
      namespace: object.metadata.namespace ?? "",
      object,
      hash: sent.hash,
      project: sent.project,
      domain: sent.domain,
      role: sent.role as ObjectRole,
      source: sent.source,
    });
  }
  const pairs: ProjectDomain[] = message.projectDomains.map(({ project, domain }) => ({ project, domain }));
  const coreByPair = new Map<string, DesiredObject[]>();
  for (const object of objects) {
    if (object.role === "template") continue;
    const key = projectDomainKey(object);
    const core = coreByPair.get(key);
    if (core) core.push(object);
    else coreByPair.set(key, [object]);
  }
  const provisioning: PairProvisioning[] = pairs.map((pair) => {
    const key = projectDomainKey(pair);
    return { pair, core: broken.has(key) ? [] : (coreByPair.get(key) ?? []) };
  });
  return {
    desired: { objects, errors: [...message.templateErrors], pairs, provisioning },
    digest: message.digest,
    revision: message.revision,
    appliedHashes: new Map(Object.entries(message.appliedHashes)),
    problems,
  };
}

function checkObject(key: string, role: string, hash: string): string | null {
  if (key === "") return "has no key";
  if (!ROLES.has(role)) return `has role "${role.slice(0, 40)}", not one of namespace, service-account, template`;
  if (hash === "") return "has no hash";
  return null;
}

/** The object as server-side apply needs it: apiVersion, kind and metadata.name at least. */
function parseManifest(json: string): KubeObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error("is not JSON");
  }
  const object = parsed as Partial<KubeObject> | null;
  if (!object || typeof object !== "object" || Array.isArray(object)) throw new Error("is not a JSON object");
  if (typeof object.apiVersion !== "string" || object.apiVersion === "") throw new Error("has no apiVersion");
  if (typeof object.kind !== "string" || object.kind === "") throw new Error("has no kind");
  const metadata = object.metadata as { name?: unknown; namespace?: unknown } | undefined;
  if (!metadata || typeof metadata !== "object" || typeof metadata.name !== "string" || metadata.name === "") throw new Error("has no metadata.name");
  if (metadata.namespace !== undefined && typeof metadata.namespace !== "string") throw new Error("has a metadata.namespace that is not a string");
  return object as KubeObject;
}
