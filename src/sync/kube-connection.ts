import { shorten } from "../core/errors.js";
import { setMaxListeners } from "node:events";
import https from "node:https";
import {
  ApiException,
  createConfiguration,
  HttpMethod,
  KubernetesObjectApi,
  PatchStrategy,
  ServerConfiguration,
  type Configuration,
  type RequestContext,
  type V1APIResourceList,
} from "@kubernetes/client-node";
import { checkCredentialPath, type ClusterAuth } from "../core/cluster.js";
import {
  CredentialFileError,
  MAX_CA_FILE_BYTES,
  MAX_TOKEN_FILE_BYTES,
  parseCaBundle,
  readConfinedFile,
} from "./credential-files.js";
import type { KubeObject } from "../core/template.js";
import { ApplyError, type ApplyProblem } from "./failures.js";
import type { Applier } from "./reconcile.js";

export const FIELD_MANAGER = "clusterplane";

const IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** What a connection is made of; read from files on every pass so rotated credentials are used. */
export interface Credentials {
  endpoint: string;
  token: string;
  caPem: string;
}

/**
 * Reads a cluster's credentials. Paths outside the credential directories are refused here too,
 * whatever is stored, and again once symbolic links are followed. The CA is read first: without a
 * usable one the token is never even loaded. Throws a CredentialFileError.
 */
export function readCredentials(
  endpoint: string,
  auth: ClusterAuth,
  credentialDirectories: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Credentials {
  if (auth.kind === "bearer_token_file") {
    for (const path of [auth.tokenPath, auth.caCertPath]) {
      const problem = checkCredentialPath(path, credentialDirectories);
      if (problem) throw new CredentialFileError(path, "outside", problem);
    }
    const caPem = readCa(auth.caCertPath, credentialDirectories);
    return { endpoint, caPem, token: readToken(auth.tokenPath, credentialDirectories) };
  }
  // In-cluster auth only ever talks to the API server of the cluster the control plane runs in.
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) throw new Error("in-cluster auth needs KUBERNETES_SERVICE_HOST: the control plane is not running in a pod");
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  const caPem = readCa(`${IN_CLUSTER_DIR}/ca.crt`, [IN_CLUSTER_DIR]);
  return {
    endpoint: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    caPem,
    token: readToken(`${IN_CLUSTER_DIR}/token`, [IN_CLUSTER_DIR]),
  };
}

function readCa(path: string, directories: readonly string[]): string {
  return parseCaBundle(readConfinedFile(path, directories, MAX_CA_FILE_BYTES).toString("utf8"), path);
}

/**
 * A token file often ends with a newline, which must not reach the header. Anything else that is
 * not a visible character means the file holds more than a token, and the header would be refused
 * (or split) further down with a less useful message.
 */
function readToken(path: string, directories: readonly string[]): string {
  const token = readConfinedFile(path, directories, MAX_TOKEN_FILE_BYTES).toString("utf8").trim();
  if (token === "") throw new CredentialFileError(path, "empty", "is empty");
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new CredentialFileError(path, "malformed", "holds more than a token: whitespace, control or non-ASCII characters inside it");
  }
  return token;
}

/**
 * A server-side-apply client for one cluster, usable by one pass after another. One keep-alive
 * agent per connection (client-node's own KubeConfig authentication builds a new agent, and so a
 * new TLS handshake, per request), the CA always verified, a deadline on every request, and every
 * request of a pass cancelled the moment its pass is (shutdown, the cluster deleted or re-pointed).
 */
export class KubeConnection implements Applier {
  private readonly agent: https.Agent;
  private readonly configuration: Configuration;
  private readonly requestTimeoutMs: number;
  private readonly maxSockets: number;
  /** One client per pass: its discovery cache lives as long as the pass, so kinds installed since are seen. */
  private readonly clients = new WeakMap<AbortSignal, PassClient>();

  constructor(
    readonly credentials: Credentials,
    options: { requestTimeoutMs: number; maxSockets: number },
  ) {
    // An agent given no CA trusts the public roots: never let that be the fallback.
    parseCaBundle(credentials.caPem, "(CA of the connection)");
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.maxSockets = options.maxSockets;
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: options.maxSockets,
      ca: credentials.caPem,
      rejectUnauthorized: true,
    });
    this.configuration = configurationFor(credentials, this.agent);
  }

  async servedKinds(apiVersion: string, signal: AbortSignal): Promise<ReadonlySet<string>> {
    const client = this.clientFor(signal);
    const path = client.apiPath(apiVersion);
    let list: V1APIResourceList;
    try {
      list = await this.request(signal, (deadline) => client.discover(apiVersion, deadline));
    } catch (error) {
      const failure = applyErrorOf(error, signal, path);
      // A group/version the cluster does not serve answers 404 with a Status; only the core API
      // missing means the endpoint is wrong.
      if (failure.problem === "not-found" && apiVersion.includes("/")) return new Set();
      if (failure.problem === "not-found" || failure.problem === "rejected") {
        throw new ApplyError("not-kubernetes", `${failure.detail} on ${path}`, 0, path);
      }
      throw failure;
    }
    if (!Array.isArray(list?.resources)) throw new ApplyError("not-kubernetes", `no API resource list at ${path}`, 0, path);
    // Subresources (pods/log) are not kinds one applies.
    return new Set(list.resources.filter((resource) => !resource.name.includes("/")).map((resource) => resource.kind));
  }

  /** Server-side apply with field manager `clusterplane`, taking ownership of conflicting fields. */
  async apply(object: KubeObject, signal: AbortSignal): Promise<void> {
    const client = this.clientFor(signal);
    try {
      await this.request(signal, (deadline) => client.applyObject(object, deadline));
    } catch (error) {
      throw applyErrorOf(error, signal, client.pathOf(object));
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private clientFor(signal: AbortSignal): PassClient {
    let client = this.clients.get(signal);
    if (!client) {
      client = new PassClient(this.configuration);
      this.clients.set(signal, client);
      // One listener per request in flight (and its retry) on the pass's signal is expected.
      setMaxListeners(Math.max(10, this.maxSockets * 2 + 2), signal);
    }
    return client;
  }

  /**
   * Sends a request with its own deadline, cancelled with the pass. A kept-alive connection the
   * server has since closed fails once; discovery and apply are idempotent, so that request is
   * sent again, once, on a fresh connection.
   */
  private async request<T>(pass: AbortSignal, send: (deadline: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await withDeadline(pass, this.requestTimeoutMs, send);
    } catch (error) {
      if (!isStaleConnection(error) || pass.aborted) throw error;
      return await withDeadline(pass, this.requestTimeoutMs, send);
    }
  }
}

/**
 * A signal of our own per request, with a timer cleared when the request ends: a deadline built
 * from AbortSignal.any and AbortSignal.timeout can be garbage-collected before it fires (the
 * timeout signal is only weakly held), which leaves a black-holed request hanging for ever.
 */
async function withDeadline<T>(pass: AbortSignal, timeoutMs: number, send: (deadline: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")), timeoutMs);
  const cancel = () => deadline.abort(pass.reason);
  if (pass.aborted) cancel();
  else pass.addEventListener("abort", cancel, { once: true });
  try {
    return await send(deadline.signal);
  } finally {
    clearTimeout(timer);
    pass.removeEventListener("abort", cancel);
  }
}

function configurationFor(credentials: Credentials, agent: https.Agent): Configuration {
  const authorization = `Bearer ${credentials.token}`;
  return createConfiguration({
    baseServer: new ServerConfiguration(credentials.endpoint.replace(/\/+$/, ""), {}),
    authMethods: {
      default: {
        getName: () => "clusterplane bearer token",
        applySecurityAuthentication: async (context: RequestContext) => {
          context.setHeaderParam("Authorization", authorization);
          context.setAgent(agent);
        },
      },
    },
  });
}

/** client-node's object API with discovery made explicit and a signal on every request. */
class PassClient extends KubernetesObjectApi {
  async discover(apiVersion: string, signal: AbortSignal): Promise<V1APIResourceList> {
    const context = this.configuration.baseServer.makeRequestContext(this.apiPath(apiVersion), HttpMethod.GET);
    context.setHeaderParam("Accept", "application/json");
    context.setSignal(signal);
    const list = (await this.requestPromise(context as never, "V1APIResourceList")) as unknown as V1APIResourceList;
    // What specUriPath reads to build an object's URL: no second discovery request per object.
    this.apiVersionResourceCache[apiVersion] = list;
    return list;
  }

  apiPath(apiVersion: string): string {
    return this.apiVersionPath(apiVersion);
  }

  /** The object's URL path, when its kind is known, for messages. */
  pathOf(object: KubeObject): string {
    const resource = this.apiVersionResourceCache[object.apiVersion]?.resources.find((r) => r.kind === object.kind);
    if (!resource) return this.apiPath(object.apiVersion);
    const namespace = resource.namespaced && object.metadata.namespace ? `/namespaces/${object.metadata.namespace}` : "";
    return `${this.apiPath(object.apiVersion)}${namespace}/${resource.name}/${object.metadata.name}`;
  }

  /**
   * patch() builds its request from the configuration passed per call (the one it is constructed
   * with still authenticates it): a server whose contexts carry this request's signal.
   */
  async applyObject(object: KubeObject, signal: AbortSignal): Promise<void> {
    const base = this.configuration.baseServer;
    const perRequest: Configuration = {
      ...this.configuration,
      baseServer: {
        makeRequestContext(endpoint: string, method: HttpMethod) {
          const context = base.makeRequestContext(endpoint, method);
          context.setSignal(signal);
          return context;
        },
      },
    };
    await this.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply, perRequest);
  }
}

/** What went wrong with a request, in the reconciler's terms. */
function applyErrorOf(error: unknown, signal: AbortSignal, path: string): ApplyError {
  if (error instanceof ApplyError) return error;
  if (signal.aborted) return new ApplyError("aborted", `cancelled: ${String(signal.reason?.message ?? signal.reason ?? "")}`, 0, path);
  if (error instanceof ApiException) return apiErrorOf(error, path);
  const message = (error as Error)?.message ?? String(error);
  // client-node's own discovery lookup, when a kind is not in the resource list.
  if (/^Unrecognized API version and kind/.test(message)) return new ApplyError("unsupported-kind", message, 0, path);
  // A 200 that is not JSON: something other than a Kubernetes API answered.
  if (error instanceof SyntaxError || /Unable to determine type|Unexpected token|JSON/.test(message)) {
    return new ApplyError("not-kubernetes", `the answer to ${path} is not the Kubernetes API's`, 0, path);
  }
  return transportErrorOf(error, path);
}

function apiErrorOf(error: ApiException<unknown>, path: string): ApplyError {
  const code = Number(error.code);
  const status = parseStatus(error.body);
  const detail = status ? `${code} ${status.reason || "error"}: ${shortenFlat(status.message || "no message")}` : `${code} ${shortenFlat(String(error.body ?? "")) || "without a body"}`;
  const problem = apiProblemOf(code, status);
  const retryAfterMs = problem === "throttled" || problem === "server-error" ? retryAfterOf(error.headers, status) : 0;
  return new ApplyError(problem, code === 404 && !status ? `404 on ${path}` : detail, retryAfterMs, path);
}

function apiProblemOf(code: number, status: KubeStatus | null): ApplyProblem {
  if (code === 401) return "unauthorized";
  // A namespace being deleted refuses new content with 403: that object's problem, not RBAC.
  if (code === 403) return status?.details?.causes?.some((cause) => cause.reason === "NamespaceTerminating") ? "rejected" : "forbidden";
  if (code === 404) return status ? "not-found" : "not-kubernetes";
  if (code === 429) return "throttled";
  if (code >= 500) return "server-error";
  return "rejected";
}

interface KubeStatus {
  kind?: string;
  reason?: string;
  message?: string;
  details?: { causes?: { reason?: string }[]; retryAfterSeconds?: number };
}

/** A Kubernetes Status body, or null when the answer is something else (an HTML 404 page). */
function parseStatus(body: unknown): KubeStatus | null {
  let parsed: unknown = body;
  if (typeof body === "string") {
    try {
      parsed = JSON.parse(body);
    } catch {
      return null;
    }
  }
  const status = parsed as KubeStatus | null;
  return status && typeof status === "object" && status.kind === "Status" ? status : null;
}

/** A misconfigured server must not park a cluster for days. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** Retry-After in seconds or as an HTTP date, else the Status's retryAfterSeconds; 0 when neither says. */
function retryAfterOf(headers: Record<string, string> | undefined, status: KubeStatus | null): number {
  return Math.min(MAX_RETRY_AFTER_MS, requestedRetryAfter(headers, status));
}

function requestedRetryAfter(headers: Record<string, string> | undefined, status: KubeStatus | null): number {
  const header = Object.entries(headers ?? {}).find(([name]) => name.toLowerCase() === "retry-after")?.[1]?.trim();
  if (header) {
    if (/^\d+$/.test(header)) return Number(header) * 1000;
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  }
  const seconds = status?.details?.retryAfterSeconds;
  return typeof seconds === "number" && seconds > 0 ? seconds * 1000 : 0;
}

function errorChain(error: unknown): { name?: string; code?: string; message?: string; type?: string }[] {
  const chain: { name?: string; code?: string; message?: string; type?: string }[] = [];
  for (let e = error as { cause?: unknown } | undefined; e && chain.length < 5; e = e.cause as typeof e) chain.push(e as never);
  return chain;
}

function isStaleConnection(error: unknown): boolean {
  return !(error instanceof ApiException) && errorChain(error).some((e) => e.code === "ECONNRESET" || e.code === "EPIPE");
}

function transportErrorOf(error: unknown, path: string): ApplyError {
  const chain = errorChain(error);
  if (chain.some((e) => e.name === "AbortError" || e.name === "TimeoutError" || e.code === "ABORT_ERR" || e.type === "aborted")) {
    return new ApplyError("timeout", "no answer", 0, path);
  }
  const code = chain.map((e) => e.code).find((c) => typeof c === "string" && c !== "") ?? "";
  const message = chain.map((e) => e.message).find(Boolean) ?? String(error);
  if (code === "ECONNREFUSED") return new ApplyError("refused", code, 0, path);
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new ApplyError("dns", code, 0, path);
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code)) return new ApplyError("tls", code, 0, path);
  return new ApplyError("network", code ? `${code}: ${shortenFlat(message)}` : shortenFlat(message), 0, path);
}


/** Server messages can be long (every cause of a 422): one line, the start of it. */
function shortenFlat(text: string): string {
  return shorten(text.replace(/\s+/g, " ").trim(), 300);
}
