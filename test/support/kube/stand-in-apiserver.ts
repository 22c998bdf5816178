import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Server, createServer } from "node:https";
import type { Socket } from "node:net";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { type Json, type JsonObject, JsonPatchError, isObject, jsonPatch, mergePatch } from "./json.js";
import { ObjectStore, type WriteResult } from "./object-store.js";
import { NAMESPACES, RESOURCES, type ResourceDef, type ResourceName, SERVICE_ACCOUNTS, discoveryEntry, metadataOf } from "./resources.js";
import { type Predicate, parseFieldSelector, parseLabelSelector } from "./selectors.js";
import {
  KubeStatusError,
  badRequest,
  fieldForbidden,
  fieldRequired,
  internalError,
  invalid,
  methodNotAllowed,
  notFound,
  rbacForbidden,
  requestEntityTooLarge,
  resourceNotFound,
  serviceUnavailable,
  tooManyRequests,
  unauthorized,
  unsupportedMediaType,
} from "./status.js";
import { type TestPki, testPki } from "./test-ca.js";

/**
 * A stand-in for kube-apiserver, for tests and benchmarks: HTTPS with a test
 * CA, bearer-token auth, discovery, and namespaces + service accounts with
 * create/get/list/update/patch (merge, strategic-merge as merge, JSON patch)/
 * server-side apply/delete, answering with
 * the real server's Status bodies. It is what stands between the control
 * plane's Kubernetes client and a real cluster, so it also counts requests
 * and real changes, and can be switched into failure modes (down, 500s,
 * slow, black hole, token or CA mismatch) at runtime — for every request,
 * or per resource, object and verb (failRequests: RBAC's 403, 401, 404,
 * 429 with Retry-After, 500, 503), answered in the filter order of
 * kube-apiserver (authentication, then priority and fairness, then
 * authorization).
 *
 * Deliberately not implemented: watch, deletecollection, other
 * resource types (their groups answer 404 and /api/v1 does not list them,
 * as on a cluster without them), real RBAC, anonymous auth.
 */

export type Fault =
  /** Stop listening and drop connections: clients get ECONNREFUSED. Clearing listens on the same port again. */
  | { kind: "down" }
  /** Every request answers 500 InternalError. */
  | { kind: "error500" }
  /** Every request is answered `delayMs` late (the work happens after the delay). */
  | { kind: "slow"; delayMs: number }
  /** Requests are accepted and never answered. */
  | { kind: "blackhole" }
  /** The server expects a different token: every request is 401. */
  | { kind: "wrong-token" }
  /** The server presents a certificate from an unrelated CA: clients fail TLS verification. */
  | { kind: "wrong-ca" };

/** How a request fault answers, each as kube-apiserver would. */
export type FaultAnswer =
  /** 401 Unauthorized (authentication). */
  | "unauthorized"
  /** 403 Forbidden, worded as the RBAC authorizer's refusal for the request's verb and resource. */
  | "forbidden"
  /** 404 NotFound Status for the object (or the empty-details one for a URL). */
  | "not-found"
  /** 404 "404 page not found" in plain text: what an endpoint that is not a Kubernetes API answers. */
  | "page-not-found"
  /** 429 TooManyRequests with Retry-After (priority and fairness). */
  | "too-many-requests"
  /** 500 InternalError. */
  | "internal-error"
  /** 503 ServiceUnavailable, with Retry-After when retryAfterSeconds is set. */
  | "service-unavailable"
  /** Never answered (a black hole for these requests only), until clearFault() or stop(). */
  | "hold";

/** Which requests a fault answers, and how. */
export interface RequestFault {
  /** "discovery" is /api, /api/v1, /apis and /version; "*" is every request. */
  resource: ResourceName | "discovery" | "*";
  /** Only requests for this object name. */
  name?: string;
  /** Only these verbs: get, list, create, update, patch, delete. All when omitted. */
  verbs?: string[];
  answer: FaultAnswer;
  /** For too-many-requests (default 1) and service-unavailable. */
  retryAfterSeconds?: number;
  /** Answer only the next `times` matching requests, then serve normally. Every one when omitted. */
  times?: number;
}

/** Who the stand-in says the token belongs to, in RBAC messages. */
export const STAND_IN_USER = "system:serviceaccount:clusterplane:cluster-sync";

export interface StandInApiServerOptions {
  /** Bearer token the server accepts; random when omitted. */
  token?: string;
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** How long a deleted namespace stays Terminating; 0 = next tick, Infinity = until finalizeNamespace(). */
  namespaceFinalizeDelayMs?: number;
  /** Start with default, kube-system, kube-public and kube-node-lease, like a fresh cluster (default true). */
  systemNamespaces?: boolean;
  /** Give every new namespace a "default" ServiceAccount, as kube-controller-manager does (default true). */
  defaultServiceAccounts?: boolean;
}

export interface RequestLogEntry {
  method: string;
  /** Path without the query string. */
  path: string;
  /** The raw query string including "?", or "". */
  query: string;
  contentType: string | undefined;
  /** Status answered; undefined while (or if never) answered. */
  status: number | undefined;
}

export interface Credentials {
  tokenPath: string;
  caCertPath: string;
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const SYSTEM_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];

const MEDIA = {
  json: "application/json",
  yaml: "application/yaml",
  mergePatch: "application/merge-patch+json",
  strategicMergePatch: "application/strategic-merge-patch+json",
  applyPatch: "application/apply-patch+yaml",
  jsonPatch: "application/json-patch+json",
} as const;

/** The PATCH media types kube-apiserver accepts (CBOR apply aside), in the order its 415 lists them. */
const PATCH_TYPES: string[] = [MEDIA.jsonPatch, MEDIA.mergePatch, MEDIA.applyPatch, MEDIA.strategicMergePatch];

/** What a handler answers with; `changed` marks a write that changed stored state. */
interface Reply {
  status: number;
  body: JsonObject | string;
  changed?: boolean;
  headers?: Record<string, string>;
}

interface ApiRequest {
  method: string;
  url: URL;
  /** Media type without parameters, lower-cased; "" when absent. */
  mediaType: string;
  body: Buffer;
  userAgent: string;
}

export class StandInApiServer {
  static async start(options: StandInApiServerOptions = {}): Promise<StandInApiServer> {
    const server = new StandInApiServer(options);
    await server.listen(options.port ?? 0);
    return server;
  }

  readonly token: string;
  /** PEM of the CA that signed the server's certificate: what clients should trust. */
  readonly caCertPem: string;
  /** See StandInApiServerOptions; may be changed at runtime (applies to later deletions). */
  namespaceFinalizeDelayMs: number;
  /** Every request received since start or resetCounters(), oldest first. */
  readonly requestLog: RequestLogEntry[] = [];

  private readonly pki: TestPki;
  private readonly server: Server;
  private readonly store: ObjectStore;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Responses held by the blackhole fault. */
  private readonly held = new Set<ServerResponse>();
  private counters = { requests: 0, writes: 0, changes: 0 };
  private currentFault: Fault | undefined;
  private requestFaults: RequestFault[] = [];
  private boundPort = 0;
  private listening = false;
  private stopped = false;

  private constructor(options: StandInApiServerOptions) {
    this.token = options.token ?? randomBytes(24).toString("base64url");
    this.namespaceFinalizeDelayMs = options.namespaceFinalizeDelayMs ?? 0;
    this.pki = testPki("stand-in-apiserver");
    this.caCertPem = this.pki.caCertPem;
    this.store = new ObjectStore({
      defaultServiceAccounts: options.defaultServiceAccounts ?? true,
      onNamespaceTerminating: (name) => this.scheduleFinalize(name),
    });
    if (options.systemNamespaces ?? true) this.seedSystemNamespaces(options.defaultServiceAccounts ?? true);

    this.server = createServer({ key: this.pki.serverKeyPem, cert: this.pki.serverCertPem }, (req, res) => this.onRequest(req, res));
    // Track raw sockets (including ones mid-handshake) so stop() and faults can cut them.
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  /** https://127.0.0.1:PORT */
  get url(): string {
    return `https://127.0.0.1:${this.boundPort}`;
  }

  get port(): number {
    return this.boundPort;
  }

  get requestCount(): number {
    return this.counters.requests;
  }

  /** POST, PUT, PATCH and DELETE requests received (answered or not, successful or not). */
  get writeCount(): number {
    return this.counters.writes;
  }

  /** Writes that changed stored state (no-op applies and failures do not count). */
  get changeCount(): number {
    return this.counters.changes;
  }

  /** TLS connections open to the server now (kept-alive ones included). */
  get openConnections(): number {
    return this.sockets.size;
  }

  get fault(): Fault | undefined {
    return this.currentFault;
  }

  resetCounters(): void {
    this.counters = { requests: 0, writes: 0, changes: 0 };
    this.requestLog.length = 0;
  }

  /** A stored object as the server holds it (a copy), or undefined. `namespace` is "" for namespaces. */
  getObject(resource: ResourceName, namespace: string, name: string): JsonObject | undefined {
    return this.store.get(resourceDef(resource), namespace, name);
  }

  /** Stored objects of one type (copies), in one namespace or all. */
  listObjects(resource: ResourceName, namespace?: string): JsonObject[] {
    return this.store.list(resourceDef(resource), namespace);
  }

  /** Finishes a terminating namespace now (useful with namespaceFinalizeDelayMs = Infinity). */
  finalizeNamespace(name: string): boolean {
    return this.store.finalizeNamespace(name);
  }

  /**
   * Writes the credentials a pod would have mounted: `token` (with the
   * trailing newline mounted Secrets often have) and `ca.crt`.
   */
  writeCredentials(dir: string): Credentials {
    mkdirSync(dir, { recursive: true });
    const tokenPath = join(dir, "token");
    const caCertPath = join(dir, "ca.crt");
    writeFileSync(tokenPath, `${this.token}\n`);
    writeFileSync(caCertPath, this.caCertPem);
    return { tokenPath, caCertPath };
  }

  /** Switches to a failure mode, replacing any current one. */
  async setFault(fault: Fault): Promise<void> {
    await this.clearFault();
    this.currentFault = fault;
    if (fault.kind === "down") {
      this.dropConnections();
      await this.closeListener();
    }
    if (fault.kind === "wrong-ca") {
      const other = testPki("stand-in-apiserver-wrong-ca");
      this.server.setSecureContext({ key: other.serverKeyPem, cert: other.serverCertPem });
      // Open connections were made with the good certificate; make clients reconnect.
      this.dropConnections();
    }
  }

  /** Answers matching requests with an error from now on (after authentication), until clearFault(). */
  failRequests(fault: RequestFault): void {
    this.requestFaults.push({ ...fault });
  }

  /** Back to normal service: the fault and every request fault cleared. */
  async clearFault(): Promise<void> {
    const fault = this.currentFault;
    this.currentFault = undefined;
    this.requestFaults = [];
    if (fault?.kind === "down" && !this.stopped) await this.listen(this.boundPort);
    if (fault?.kind === "wrong-ca") {
      this.server.setSecureContext({ key: this.pki.serverKeyPem, cert: this.pki.serverCertPem });
      this.dropConnections();
    }
    this.releaseHeld();
  }

  /** Closes the listener and every connection; pending timers are cancelled. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timers.forEach((timer) => clearTimeout(timer));
    this.timers.clear();
    this.releaseHeld();
    this.dropConnections();
    await this.closeListener();
  }

  // ---- listening and connections ----

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once("error", onError);
      this.server.listen(port, "127.0.0.1", () => {
        this.server.off("error", onError);
        resolve();
      });
    });
    const address = this.server.address();
    if (address && typeof address === "object") this.boundPort = address.port;
    this.listening = true;
  }

  private async closeListener(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private dropConnections(): void {
    this.sockets.forEach((socket) => socket.destroy());
    this.sockets.clear();
  }

  private releaseHeld(): void {
    this.held.forEach((res) => res.socket?.destroy());
    this.held.clear();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }

  // ---- namespaces lifecycle ----

  private seedSystemNamespaces(withDefaultServiceAccounts: boolean): void {
    for (const name of SYSTEM_NAMESPACES) {
      this.store.seed(NAMESPACES, "", name);
      if (withDefaultServiceAccounts) this.store.seed(SERVICE_ACCOUNTS, name, "default");
    }
  }

  /** The namespace controller's part: content removed and the namespace gone after the configured delay. */
  private scheduleFinalize(name: string): void {
    const delay = this.namespaceFinalizeDelayMs;
    if (!Number.isFinite(delay)) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.store.finalizeNamespace(name);
    }, Math.max(0, delay));
    this.timers.add(timer);
  }

  // ---- request pipeline ----

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "https://127.0.0.1");
    const method = req.method ?? "GET";
    const entry: RequestLogEntry = {
      method,
      path: url.pathname,
      query: url.search,
      contentType: req.headers["content-type"],
      status: undefined,
    };
    this.requestLog.push(entry);
    this.counters.requests += 1;
    if (WRITE_METHODS.has(method)) this.counters.writes += 1;

    this.handle(req, res, method, url).then(
      (reply) => reply && this.send(res, entry, reply),
      (error: unknown) => this.send(res, entry, errorReply(error)),
    );
  }

  /** Faults, then authentication, then the API. Undefined means "do not answer". */
  private async handle(req: IncomingMessage, res: ServerResponse, method: string, url: URL): Promise<Reply | undefined> {
    const fault = this.currentFault;
    if (fault?.kind === "blackhole") return this.hold(req, res);
    if (fault?.kind === "slow") await this.sleep(fault.delayMs);
    if (this.stopped) return undefined;
    if (fault?.kind === "error500") {
      req.resume();
      throw internalError("the stand-in apiserver is failing every request (fault: error500)");
    }
    if (!this.isAuthenticated(req, fault)) {
      req.resume();
      throw unauthorized();
    }
    const requestFault = this.takeRequestFault(method, url);
    if (requestFault?.answer === "hold") return this.hold(req, res);
    if (requestFault) {
      req.resume();
      if (requestFault.answer === "page-not-found") return { status: 404, body: "404 page not found\n" };
      throw faultError(requestFault, method, url);
    }
    const request: ApiRequest = {
      method,
      url,
      mediaType: mediaTypeOf(req.headers["content-type"]),
      body: await readBody(req),
      userAgent: req.headers["user-agent"] ?? "",
    };
    const reply = this.dispatch(request);
    if (reply.changed) this.counters.changes += 1;
    return reply;
  }

  /** Accepts the request and never answers it. */
  private hold(req: IncomingMessage, res: ServerResponse): undefined {
    this.held.add(res);
    res.on("close", () => this.held.delete(res));
    req.resume();
    return undefined;
  }

  /** The first request fault matching the request, counted down when it is limited. */
  private takeRequestFault(method: string, url: URL): RequestFault | undefined {
    const target = requestTarget(method, url.pathname);
    const index = this.requestFaults.findIndex((fault) => faultMatches(fault, target));
    const fault = this.requestFaults[index];
    if (!fault) return undefined;
    if (fault.times !== undefined && --fault.times <= 0) this.requestFaults.splice(index, 1);
    return fault;
  }

  private isAuthenticated(req: IncomingMessage, fault: Fault | undefined): boolean {
    const expected = fault?.kind === "wrong-token" ? `${this.token}-rotated` : this.token;
    return req.headers.authorization === `Bearer ${expected}`;
  }

  private send(res: ServerResponse, entry: RequestLogEntry, reply: Reply): void {
    entry.status = reply.status;
    if (res.headersSent || res.destroyed) return;
    const text = typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      "Content-Type": typeof reply.body === "string" ? "text/plain; charset=utf-8" : "application/json",
      "Cache-Control": "no-cache, private",
      "Content-Length": Buffer.byteLength(text),
      ...reply.headers,
    });
    res.end(text);
  }

  // ---- routing ----

  private dispatch(request: ApiRequest): Reply {
    const route = parseRoute(request.url.pathname);
    switch (route.kind) {
      case "discovery":
        if (request.method !== "GET") throw methodNotAllowed();
        return { status: 200, body: this.discovery(route.path) };
      case "health":
        if (request.method !== "GET") throw methodNotAllowed();
        return { status: 200, body: "ok" };
      case "collection":
        return this.onCollection(route.def, route.namespace, request);
      case "item":
        return this.onItem(route.def, route.namespace, route.name, request);
      case "unknown-api":
        throw resourceNotFound();
      case "not-found":
        return { status: 404, body: "404 page not found\n" };
    }
  }

  private discovery(path: string): JsonObject {
    switch (path) {
      case "/version":
        return {
          major: "1",
          minor: "31",
          gitVersion: "v1.31.0",
          gitCommit: "stand-in",
          gitTreeState: "clean",
          buildDate: "2024-08-13T07:28:49Z",
          goVersion: "go1.22.5",
          compiler: "gc",
          platform: "linux/amd64",
        };
      case "/api":
        return {
          kind: "APIVersions",
          versions: ["v1"],
          serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: `127.0.0.1:${this.boundPort}` }],
        };
      case "/api/v1":
        return { kind: "APIResourceList", groupVersion: "v1", resources: RESOURCES.map(discoveryEntry) };
      default:
        return { kind: "APIGroupList", apiVersion: "v1", groups: [] };
    }
  }

  /** `namespace` undefined: the all-namespaces service account list. */
  private onCollection(def: ResourceDef, namespace: string | undefined, request: ApiRequest): Reply {
    const params = request.url.searchParams;
    if (request.method === "GET") {
      // Watches stream forever on a real server; this stand-in has none.
      if (parseBool(params.get("watch"))) throw methodNotAllowed();
      return { status: 200, body: this.list(def, namespace, params) };
    }
    if (request.method === "POST" && namespace !== undefined) {
      const body = decodeObject(request);
      const result = this.store.create(def, namespace, body, writeOptions(request));
      return writeReply(201, result);
    }
    throw methodNotAllowed();
  }

  private onItem(def: ResourceDef, namespace: string, name: string, request: ApiRequest): Reply {
    switch (request.method) {
      case "GET": {
        const object = this.store.get(def, namespace, name);
        if (!object) throw notFound(def.resource, name);
        return { status: 200, body: object };
      }
      case "PUT":
        return writeReply(200, this.store.replace(def, namespace, name, decodeObject(request), writeOptions(request)));
      case "PATCH":
        return this.patch(def, namespace, name, request);
      case "DELETE": {
        const params = request.url.searchParams;
        const result = this.store.delete(def, namespace, name, deletePreconditions(request), { dryRun: isDryRun(params) });
        return writeReply(200, result);
      }
      default:
        throw methodNotAllowed();
    }
  }

  /** PATCH, in the apiserver's order: media type (415), options (422), body (400), then the object. */
  private patch(def: ResourceDef, namespace: string, name: string, request: ApiRequest): Reply {
    const params = request.url.searchParams;
    const force = params.get("force");
    const manager = params.get("fieldManager") ?? "";
    if (!PATCH_TYPES.includes(request.mediaType)) throw unsupportedMediaType(PATCH_TYPES);

    if (request.mediaType === MEDIA.applyPatch) {
      if (manager === "") {
        throw invalid("PatchOptions", "", [fieldRequired("fieldManager", "is required for apply patch")], "meta.k8s.io");
      }
      const body = decodeApplyBody(request.body);
      const result = this.store.apply(def, namespace, name, body, { manager, force: parseBool(force), dryRun: isDryRun(params) });
      return writeReply(result.created ? 201 : 200, result);
    }
    if (force !== null) {
      throw invalid("PatchOptions", "", [fieldForbidden("force", "may not be specified for non-apply patch")], "meta.k8s.io");
    }
    const patchFunction = nonApplyPatchFunction(request.mediaType, request.body);
    return writeReply(200, this.store.patch(def, namespace, name, patchFunction, writeOptions(request)));
  }

  private list(def: ResourceDef, namespace: string | undefined, params: URLSearchParams): JsonObject {
    const filters = listFilters(def, params);
    const matching = this.store.list(def, namespace).filter((object) => filters.every((matches) => matches(object)));
    const page = paginate(matching, params);
    const metadata: JsonObject = { resourceVersion: this.store.resourceVersion };
    if (page.continueToken) {
      metadata.continue = page.continueToken;
      metadata.remainingItemCount = page.remaining;
    }
    // List items carry no kind/apiVersion on the wire; the list's kind says it.
    const items = page.items.map(({ kind: _kind, apiVersion: _apiVersion, ...rest }) => rest);
    return { kind: def.listKind, apiVersion: "v1", metadata, items };
  }
}

// ---- routes ----

type Route =
  | { kind: "discovery"; path: string }
  | { kind: "health" }
  | { kind: "collection"; def: ResourceDef; namespace: string | undefined }
  | { kind: "item"; def: ResourceDef; namespace: string; name: string }
  | { kind: "unknown-api" }
  | { kind: "not-found" };

function parseRoute(pathname: string): Route {
  const trimmed = pathname.length > 1 ? pathname.replace(/\/+$/, "") : pathname;
  if (["/version", "/api", "/api/v1", "/apis"].includes(trimmed)) return { kind: "discovery", path: trimmed };
  if (["/healthz", "/livez", "/readyz"].includes(trimmed)) return { kind: "health" };
  if (!trimmed.startsWith("/api/v1/")) {
    return trimmed.startsWith("/apis/") || trimmed.startsWith("/api/") ? { kind: "unknown-api" } : { kind: "not-found" };
  }
  const segments = trimmed.slice("/api/v1/".length).split("/").map(decodeURIComponent);
  const [first, second, third, fourth, ...rest] = segments;
  if (rest.length > 0) return { kind: "unknown-api" };
  if (first === "serviceaccounts" && second === undefined) return { kind: "collection", def: SERVICE_ACCOUNTS, namespace: undefined };
  if (first !== "namespaces") return { kind: "unknown-api" };
  if (second === undefined) return { kind: "collection", def: NAMESPACES, namespace: "" };
  if (third === undefined) return { kind: "item", def: NAMESPACES, namespace: "", name: second };
  if (third !== "serviceaccounts") return { kind: "unknown-api" };
  if (fourth === undefined) return { kind: "collection", def: SERVICE_ACCOUNTS, namespace: second };
  return { kind: "item", def: SERVICE_ACCOUNTS, namespace: second, name: fourth };
}

function resourceDef(resource: ResourceName): ResourceDef {
  return resource === "namespaces" ? NAMESPACES : SERVICE_ACCOUNTS;
}

// ---- request decoding ----

function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw requestEntityTooLarge(MAX_BODY_BYTES);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** A POST/PUT body: JSON (also when no content type is given) or YAML. */
function decodeObject(request: ApiRequest): JsonObject {
  if (request.mediaType === MEDIA.yaml) return asObject(decodeYaml(request.body, "couldn't get version/kind; yaml parse error"));
  if (request.mediaType !== MEDIA.json && request.mediaType !== "") throw unsupportedMediaType([MEDIA.json, MEDIA.yaml]);
  return asObject(decodeJson(request.body));
}

function decodeJson(body: Buffer): Json {
  try {
    return JSON.parse(body.toString("utf8")) as Json;
  } catch (error) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(error as Error).message}`);
  }
}

/** Apply bodies are YAML; JSON is YAML too, and is what client-node sends. */
function decodeApplyBody(body: Buffer): JsonObject {
  return asObject(decodeYaml(body, "error decoding YAML"));
}

function decodeYaml(body: Buffer, prefix: string): Json {
  try {
    return parseYaml(body.toString("utf8")) as Json;
  } catch (error) {
    throw badRequest(`${prefix}: ${(error as Error).message}`);
  }
}

function asObject(value: Json): JsonObject {
  if (!isObject(value)) throw badRequest("couldn't get version/kind; json parse error: the body must be a JSON object");
  return value;
}

function writeOptions(request: ApiRequest): { manager: string; dryRun: boolean } {
  const params = request.url.searchParams;
  return { manager: params.get("fieldManager") || managerFromUserAgent(request.userAgent), dryRun: isDryRun(params) };
}

/** kube-apiserver names an unnamed updater after its User-Agent up to the first "/". */
function managerFromUserAgent(userAgent: string): string {
  return userAgent.split("/")[0]?.slice(0, 128) || "unknown";
}

function isDryRun(params: URLSearchParams): boolean {
  return params.getAll("dryRun").includes("All");
}

/** Go's strconv.ParseBool truths, which is how query booleans are read. */
function parseBool(value: string | null): boolean {
  return value !== null && ["1", "t", "T", "true", "TRUE", "True"].includes(value);
}

/** DeleteOptions preconditions from the optional JSON body. */
function deletePreconditions(request: ApiRequest): { uid?: string; resourceVersion?: string } {
  if (request.body.length === 0) return {};
  const options = decodeJson(request.body);
  const preconditions = isObject(options) && isObject(options.preconditions) ? options.preconditions : {};
  const uid = typeof preconditions.uid === "string" ? preconditions.uid : undefined;
  const resourceVersion = typeof preconditions.resourceVersion === "string" ? preconditions.resourceVersion : undefined;
  return { uid, resourceVersion };
}

/** The patch function for a merge, strategic-merge or JSON patch body. */
function nonApplyPatchFunction(mediaType: string, body: Buffer): (live: JsonObject) => Json {
  if (mediaType === MEDIA.jsonPatch) {
    const operations = decodeJson(body);
    return (live) => {
      try {
        return jsonPatch(live, operations);
      } catch (error) {
        if (!(error instanceof JsonPatchError)) throw error;
        throw new KubeStatusError(422, "Invalid", error.message, {});
      }
    };
  }
  // Strategic merge patch equals merge patch for these types: none of their lists has a merge key.
  const patch = decodeJson(body);
  if (!isObject(patch)) throw badRequest("the object provided is unrecognized (must be of type Patch)");
  return (live) => mergePatch(live, patch);
}

function writeReply(status: number, result: WriteResult): Reply {
  return { status, body: result.object, changed: result.changed };
}

function errorReply(error: unknown): Reply {
  const status = error instanceof KubeStatusError ? error : internalError(error instanceof Error ? error.message : String(error));
  return { status: status.code, body: status.toStatus(), headers: status.headers };
}

// ---- request faults ----

/** What a request is about, as the authorizer sees it. */
interface RequestTarget {
  resource: ResourceName | "discovery" | undefined;
  verb: string;
  namespace?: string;
  name?: string;
  path: string;
}

function requestTarget(method: string, pathname: string): RequestTarget {
  const route = parseRoute(pathname);
  // Non-resource URLs (discovery) are authorized by the HTTP verb: GET is "get".
  if (route.kind === "discovery") return { resource: "discovery", verb: method.toLowerCase(), path: pathname };
  const verb = verbOf(method, route.kind === "item");
  if (route.kind === "collection") return { resource: route.def.resource, verb, namespace: route.namespace || undefined, path: pathname };
  if (route.kind === "item") {
    const namespace = route.def.namespaced ? route.namespace : undefined;
    return { resource: route.def.resource, verb, namespace, name: route.name, path: pathname };
  }
  return { resource: undefined, verb, path: pathname };
}

function verbOf(method: string, item: boolean): string {
  switch (method) {
    case "GET":
      return item ? "get" : "list";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return "delete";
    default:
      return method.toLowerCase();
  }
}

function faultMatches(fault: RequestFault, target: RequestTarget): boolean {
  if (fault.resource !== "*" && fault.resource !== target.resource) return false;
  if (fault.name !== undefined && fault.name !== target.name) return false;
  return fault.verbs === undefined || fault.verbs.includes(target.verb);
}

function faultError(fault: RequestFault, method: string, url: URL): KubeStatusError {
  const target = requestTarget(method, url.pathname);
  switch (fault.answer) {
    case "unauthorized":
      return unauthorized();
    case "forbidden": {
      const resource = target.resource === "discovery" ? undefined : target.resource;
      return rbacForbidden(STAND_IN_USER, { ...target, resource });
    }
    case "not-found":
      return target.resource && target.resource !== "discovery" && target.name ? notFound(target.resource, target.name) : resourceNotFound();
    case "too-many-requests":
      return tooManyRequests(fault.retryAfterSeconds ?? 1);
    case "service-unavailable":
      return serviceUnavailable(fault.retryAfterSeconds);
    default:
      return internalError(`the stand-in apiserver was told to fail ${method} ${url.pathname}`);
  }
}

// ---- list filtering and paging ----

function listFilters(def: ResourceDef, params: URLSearchParams): Predicate[] {
  const filters: Predicate[] = [];
  const labelSelector = params.get("labelSelector");
  if (labelSelector) filters.push(parseLabelSelector(labelSelector));
  const fieldSelector = params.get("fieldSelector");
  if (fieldSelector) {
    const fields = def === NAMESPACES ? ["metadata.name", "status.phase"] : ["metadata.name", "metadata.namespace"];
    filters.push(parseFieldSelector(fieldSelector, fields));
  }
  return filters;
}

interface Page {
  items: JsonObject[];
  continueToken?: string;
  remaining: number;
}

/** limit/continue paging; the token is the position after the last item returned. */
function paginate(items: JsonObject[], params: URLSearchParams): Page {
  const position = (object: JsonObject) => `${String(metadataOf(object).namespace ?? "")}/${String(metadataOf(object).name)}`;
  let start = 0;
  const token = params.get("continue");
  if (token) {
    let after: unknown;
    try {
      after = (JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { after?: unknown }).after;
    } catch {
      after = undefined;
    }
    if (typeof after !== "string") throw badRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
    start = items.findIndex((object) => position(object) > after);
    if (start < 0) start = items.length;
  }
  const limit = Number(params.get("limit") ?? "0");
  const end = Number.isInteger(limit) && limit > 0 ? Math.min(items.length, start + limit) : items.length;
  const pageItems = items.slice(start, end);
  const last = pageItems[pageItems.length - 1];
  if (end >= items.length || !last) return { items: pageItems, remaining: 0 };
  const continueToken = Buffer.from(JSON.stringify({ after: position(last) })).toString("base64url");
  return { items: pageItems, continueToken, remaining: items.length - end };
}
