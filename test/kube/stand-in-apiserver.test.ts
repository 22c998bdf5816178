import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  VersionApi,
  setHeaderOptions,
  type KubernetesObject,
  type V1Namespace,
  type V1ServiceAccount,
} from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type KubeFailure,
  classifyKubeError,
  kubeConfigFromFiles,
  objectApiWithTimeout,
  timeoutMiddleware,
} from "../support/kube/kube-client.js";
import { type Credentials, STAND_IN_USER, StandInApiServer } from "../support/kube/stand-in-apiserver.js";

const MANAGER = "clusterplane";

let server: StandInApiServer;
let dir: string;
let credentials: Credentials;
let kc: KubeConfig;
let core: CoreV1Api;
let objects: KubernetesObjectApi;

beforeAll(async () => {
  server = await StandInApiServer.start();
  dir = mkdtempSync(join(tmpdir(), "stand-in-apiserver-"));
  credentials = server.writeCredentials(dir);
  kc = kubeConfigFromFiles({ server: server.url, ...credentials });
  core = kc.makeApiClient(CoreV1Api);
  objects = KubernetesObjectApi.makeApiClient(kc);
});

afterEach(async () => {
  await server.clearFault();
  server.namespaceFinalizeDelayMs = 0;
});

afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

// ---- helpers ----

let sequence = 0;
/** A fresh DNS-label name, so tests never share objects. */
function uniqueName(prefix: string): string {
  sequence += 1;
  return `${prefix}-${sequence}`;
}

function namespace(name: string, labels?: Record<string, string>): V1Namespace {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } };
}

/** What KubernetesObjectApi.read() takes: apiVersion, kind and a required name. */
function namespaceRef(name: string): { apiVersion: string; kind: string; metadata: { name: string } } {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name } };
}

function serviceAccount(ns: string, name: string, labels?: Record<string, string>): V1ServiceAccount {
  return { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace: ns, labels } };
}

/** Server-side apply, the way the control plane does it. */
function apply<T extends KubernetesObject>(object: T, manager = MANAGER, force = true): Promise<T> {
  return objects.patch(object, undefined, undefined, manager, force, PatchStrategy.ServerSideApply);
}

/** The classified failure of a call that must fail. */
async function failure(call: Promise<unknown>): Promise<KubeFailure> {
  try {
    await call;
  } catch (error) {
    return classifyKubeError(error);
  }
  throw new Error("expected the call to fail");
}

async function apiFailure(call: Promise<unknown>): Promise<Extract<KubeFailure, { kind: "api" }>> {
  const result = await failure(call);
  if (result.kind !== "api") throw new Error(`expected an API error, got ${JSON.stringify(result)}`);
  return result;
}

/** One request with nothing but node:https, for checking exact bytes. */
async function raw(
  method: string,
  path: string,
  options: { body?: string; contentType?: string; token?: string | null } = {},
): Promise<{ status: number; body: unknown }> {
  const { status, body } = await rawWithHeaders(method, path, options);
  return { status, body };
}

function rawWithHeaders(
  method: string,
  path: string,
  options: { body?: string; contentType?: string; token?: string | null } = {},
): Promise<{ status: number; body: unknown; headers: Record<string, string | string[] | undefined> }> {
  const token = options.token === undefined ? server.token : options.token;
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (options.contentType) headers["content-type"] = options.contentType;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${server.url}${path}`, { method, headers, ca: server.caCertPem }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // plain text answer
        }
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

async function eventually(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// ---- tests ----

describe("authentication", () => {
  it("answers 401 Unauthorized without a token", async () => {
    const anonymous = new KubeConfig();
    anonymous.loadFromOptions({
      clusters: [{ name: "c", server: server.url, caFile: credentials.caCertPath, skipTLSVerify: false }],
      users: [{ name: "nobody" }],
      contexts: [{ name: "ctx", cluster: "c", user: "nobody" }],
      currentContext: "ctx",
    });
    const error = await apiFailure(anonymous.makeApiClient(CoreV1Api).listNamespace());
    expect(error).toMatchObject({ code: 401, reason: "Unauthorized" });

    // The exact Status body (the generated APIs drop it for 401; see classifyKubeError).
    const response = await raw("GET", "/api/v1/namespaces", { token: null });
    expect(response).toEqual({
      status: 401,
      body: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: "Unauthorized", reason: "Unauthorized", code: 401 },
    });
  });

  it("answers 401 Unauthorized to a wrong token", async () => {
    const path = join(dir, "wrong-token");
    writeFileSync(path, "not-the-token\n");
    const wrong = kubeConfigFromFiles({ server: server.url, tokenPath: path, caCertPath: credentials.caCertPath });
    const error = await apiFailure(KubernetesObjectApi.makeApiClient(wrong).read(namespaceRef("default")));
    expect(error).toMatchObject({ code: 401, reason: "Unauthorized", message: "Unauthorized" });
  });

  it("shows why the token must be trimmed: an untrimmed token never leaves the client", async () => {
    const untrimmed = new KubeConfig();
    untrimmed.loadFromOptions({
      // caData is the base64 of the PEM in client-node, not the PEM itself.
      clusters: [{ name: "c", server: server.url, caData: Buffer.from(server.caCertPem).toString("base64"), skipTLSVerify: false }],
      users: [{ name: "u", token: `${server.token}\n` }],
      contexts: [{ name: "ctx", cluster: "c", user: "u" }],
      currentContext: "ctx",
    });
    const before = server.requestCount;
    const error = await failure(untrimmed.makeApiClient(CoreV1Api).listNamespace());
    expect(error).toMatchObject({ kind: "transport", name: "TypeError" });
    expect(error.kind === "transport" && error.message).toMatch(/is not a legal HTTP header value/);
    expect(server.requestCount).toBe(before);
  });
});

describe("discovery", () => {
  it("serves /version, /api, /api/v1 and /apis", async () => {
    const version = await kc.makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toMatch(/^v1\.\d+\.\d+/);

    expect((await raw("GET", "/api")).body).toMatchObject({ kind: "APIVersions", versions: ["v1"] });
    expect((await raw("GET", "/apis")).body).toEqual({ kind: "APIGroupList", apiVersion: "v1", groups: [] });
    const v1 = (await raw("GET", "/api/v1")).body as { resources: Array<Record<string, unknown>> };
    expect(v1).toMatchObject({ kind: "APIResourceList", groupVersion: "v1" });
    expect(v1.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "namespaces", kind: "Namespace", namespaced: false, verbs: expect.arrayContaining(["patch", "list"]) }),
        expect.objectContaining({ name: "serviceaccounts", kind: "ServiceAccount", namespaced: true, verbs: expect.arrayContaining(["patch", "get"]) }),
      ]),
    );
  });
});

describe("namespaces through CoreV1Api", () => {
  it("creates, reads and lists with the server's defaults", async () => {
    const name = uniqueName("created");
    const created = await core.createNamespace({ body: namespace(name, { team: "a" }) });
    expect(created.metadata).toMatchObject({ name, labels: { team: "a", "kubernetes.io/metadata.name": name } });
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.spec?.finalizers).toEqual(["kubernetes"]);
    expect(created.status?.phase).toBe("Active");

    const read = await core.readNamespace({ name });
    expect(read.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);

    const list = await core.listNamespace({ labelSelector: "team=a" });
    expect(list.kind).toBe("NamespaceList");
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThanOrEqual(Number(created.metadata?.resourceVersion));
    expect(list.items.map((item) => item.metadata?.name)).toContain(name);
    expect(list.items.every((item) => item.metadata?.labels?.team === "a")).toBe(true);
  });

  it("starts with a fresh cluster's namespaces, each with a default service account", async () => {
    const names = (await core.listNamespace()).items.map((item) => item.metadata?.name);
    expect(names).toEqual(expect.arrayContaining(["default", "kube-system", "kube-public", "kube-node-lease"]));
    expect(server.getObject("serviceaccounts", "kube-system", "default")).toBeDefined();
  });

  it("pages with limit and continue", async () => {
    const label = uniqueName("page");
    for (const suffix of ["a", "b", "c"]) await core.createNamespace({ body: namespace(`${label}-${suffix}`, { page: label }) });
    const first = await core.listNamespace({ labelSelector: `page=${label}`, limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.metadata?.remainingItemCount).toBe(1);
    const second = await core.listNamespace({ labelSelector: `page=${label}`, limit: 2, _continue: first.metadata?._continue });
    expect(second.items.map((item) => item.metadata?.name)).toEqual([`${label}-c`]);
    expect(second.metadata?._continue).toBeUndefined();
  });

  it("merge-patches when asked for merge patch (CoreV1Api defaults to JSON patch)", async () => {
    const name = uniqueName("patched");
    await core.createNamespace({ body: namespace(name, { keep: "yes", drop: "me" }) });
    const merged = await core.patchNamespace(
      { name, body: { metadata: { labels: { drop: null, added: "1" } } }, fieldManager: "someone" },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(merged.metadata?.labels).toEqual({ keep: "yes", added: "1", "kubernetes.io/metadata.name": name });

    const jsonPatched = await core.patchNamespace({ name, body: [{ op: "replace", path: "/metadata/labels/keep", value: "still" }] });
    expect(jsonPatched.metadata?.labels?.keep).toBe("still");
  });
});

describe("server-side apply", () => {
  it("creates a namespace and a service account, owned by the field manager", async () => {
    const ns = uniqueName("applied");
    const appliedNs = await apply(namespace(ns, { "clusterplane.io/managed": "true" }));
    expect(appliedNs.metadata?.labels?.["clusterplane.io/managed"]).toBe("true");
    expect(server.requestLog.at(-1)).toMatchObject({ method: "PATCH", contentType: "application/apply-patch+yaml", status: 201 });
    expect(server.requestLog.at(-1)?.query).toContain("fieldManager=clusterplane");

    const sa = await apply(serviceAccount(ns, "runner", { role: "runner" }));
    expect(sa.metadata).toMatchObject({ name: "runner", namespace: ns, labels: { role: "runner" } });
    const stored = server.getObject("serviceaccounts", ns, "runner");
    expect(stored?.metadata).toMatchObject({
      managedFields: [
        { manager: MANAGER, operation: "Apply", apiVersion: "v1", fieldsType: "FieldsV1", fieldsV1: { "f:metadata": { "f:labels": { "f:role": {} } } } },
      ],
    });
  });

  it("leaves resourceVersion and changeCount alone when the same configuration is applied again", async () => {
    const ns = uniqueName("steady");
    const first = await apply(namespace(ns, { tier: "gold" }));
    const firstSa = await apply(serviceAccount(ns, "runner"));
    server.resetCounters();

    const second = await apply(namespace(ns, { tier: "gold" }));
    const secondSa = await apply(serviceAccount(ns, "runner"));
    expect(second.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);
    expect(secondSa.metadata?.resourceVersion).toBe(firstSa.metadata?.resourceVersion);
    expect(server.writeCount).toBe(2);
    expect(server.changeCount).toBe(0);
  });

  it("removes a label this manager applied before and no longer applies, and keeps other managers' labels", async () => {
    const ns = uniqueName("prune");
    await apply(namespace(ns, { keep: "1", drop: "1" }));
    // Someone else adds a label with their own field manager.
    await core.patchNamespace(
      { name: ns, body: { metadata: { labels: { theirs: "x" } } }, fieldManager: "kubectl-edit" },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    server.resetCounters();

    const after = await apply(namespace(ns, { keep: "1" }));
    expect(after.metadata?.labels).toEqual({ keep: "1", theirs: "x", "kubernetes.io/metadata.name": ns });
    expect(server.changeCount).toBe(1);
  });

  it("reports a conflict with another manager unless forced", async () => {
    const ns = uniqueName("contested");
    await apply(namespace(ns, { owner: "them" }), "other-controller");
    const error = await apiFailure(apply(namespace(ns, { owner: "us" }), MANAGER, false));
    expect(error).toMatchObject({ code: 409, reason: "Conflict" });
    expect(error.message).toBe('Apply failed with 1 conflict: conflict with "other-controller" using v1: .metadata.labels.owner');

    const forced = await apply(namespace(ns, { owner: "us" }), MANAGER, true);
    expect(forced.metadata?.labels?.owner).toBe("us");
  });

  it("with force, takes back a field someone else changed (drift correction)", async () => {
    const ns = uniqueName("drift");
    await apply(namespace(ns, { tier: "gold" }));
    await core.patchNamespace(
      { name: ns, body: { metadata: { labels: { tier: "bronze" } } }, fieldManager: "kubectl-edit" },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    // The editor now owns the label, so a polite apply conflicts...
    expect(await apiFailure(apply(namespace(ns, { tier: "gold" }), MANAGER, false))).toMatchObject({ code: 409, reason: "Conflict" });
    // ...and a forced one restores it and takes ownership back.
    const restored = await apply(namespace(ns, { tier: "gold" }));
    expect(restored.metadata?.labels?.tier).toBe("gold");
    const managers = (server.getObject("namespaces", "", ns)?.metadata as { managedFields: Array<{ manager: string }> }).managedFields;
    expect(managers.map((entry) => entry.manager)).toEqual([MANAGER]);
  });

  it("does not move resourceVersion for a replace or merge patch that changes nothing", async () => {
    const ns = uniqueName("noop");
    const created = await core.createNamespace({ body: namespace(ns, { a: "1" }) });
    server.resetCounters();
    const replaced = await core.replaceNamespace({ name: ns, body: created });
    const patched = await core.patchNamespace(
      { name: ns, body: { metadata: { labels: { a: "1" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(replaced.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    expect(patched.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    expect(server.changeCount).toBe(0);
  });

  it("requires a field manager (422, as PatchOptions validation)", async () => {
    const error = await apiFailure(objects.patch(namespace(uniqueName("nomanager")), undefined, undefined, undefined, undefined, PatchStrategy.ServerSideApply));
    expect(error).toMatchObject({ code: 422, reason: "Invalid" });
    expect(error.message).toBe('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
  });

  it("accepts a YAML apply body", async () => {
    const ns = uniqueName("yaml");
    const body = `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${ns}\n  labels:\n    from: yaml\n`;
    const response = await raw("PATCH", `/api/v1/namespaces/${ns}?fieldManager=${MANAGER}`, { body, contentType: "application/apply-patch+yaml" });
    expect(response.status).toBe(201);
    expect(server.getObject("namespaces", "", ns)?.metadata).toMatchObject({ labels: { from: "yaml" } });
  });
});

describe("Status errors decoded from ApiException", () => {
  it("404 NotFound", async () => {
    const error = await apiFailure(core.readNamespace({ name: "does-not-exist" }));
    expect(error.status).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'namespaces "does-not-exist" not found',
      reason: "NotFound",
      details: { name: "does-not-exist", kind: "namespaces" },
      code: 404,
    });
  });

  it("409 AlreadyExists", async () => {
    const name = uniqueName("twice");
    await core.createNamespace({ body: namespace(name) });
    const error = await apiFailure(core.createNamespace({ body: namespace(name) }));
    expect(error).toMatchObject({ code: 409, reason: "AlreadyExists", message: `namespaces "${name}" already exists` });
    expect(error.status?.details).toEqual({ name, kind: "namespaces" });
  });

  it("409 Conflict for a stale resourceVersion", async () => {
    const name = uniqueName("stale");
    const created = await core.createNamespace({ body: namespace(name) });
    await core.replaceNamespace({ name, body: { ...created, metadata: { ...created.metadata, labels: { v: "2" } } } });
    const error = await apiFailure(core.replaceNamespace({ name, body: { ...created, metadata: { ...created.metadata, labels: { v: "3" } } } }));
    expect(error).toMatchObject({ code: 409, reason: "Conflict" });
    expect(error.message).toBe(
      `Operation cannot be fulfilled on namespaces "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    );
  });

  it("422 Invalid with causes for a bad name", async () => {
    const error = await apiFailure(core.createNamespace({ body: namespace("Bad_Name") }));
    expect(error).toMatchObject({ code: 422, reason: "Invalid" });
    expect(error.message).toMatch(/^Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label/);
    expect(error.status?.details).toMatchObject({
      name: "Bad_Name",
      kind: "Namespace",
      causes: [{ reason: "FieldValueInvalid", field: "metadata.name", message: expect.stringContaining('Invalid value: "Bad_Name"') }],
    });

    const saError = await apiFailure(core.createNamespacedServiceAccount({ namespace: "default", body: serviceAccount("default", "under_score") }));
    expect(saError.message).toMatch(/a lowercase RFC 1123 subdomain/);
  });

  it("400 BadRequest when the body's name is not the URL's", async () => {
    const name = uniqueName("named");
    const created = await core.createNamespace({ body: namespace(name) });
    const error = await apiFailure(core.replaceNamespace({ name, body: { ...created, metadata: { ...created.metadata, name: "other" } } }));
    expect(error).toMatchObject({ code: 400, reason: "BadRequest", message: `the name of the object (other) does not match the name on the URL (${name})` });
  });

  it("415 for an unknown patch type and 405 for an unsupported verb", async () => {
    const unsupported = await raw("PATCH", "/api/v1/namespaces/default", { body: "{}", contentType: "text/plain" });
    expect(unsupported.status).toBe(415);
    expect(unsupported.body).toMatchObject({ reason: "UnsupportedMediaType", code: 415 });
    const notAllowed = await raw("DELETE", "/api/v1/namespaces");
    expect(notAllowed.body).toMatchObject({ reason: "MethodNotAllowed", code: 405 });
  });
});

describe("namespace deletion", () => {
  it("terminates, refuses new content with 403, then removes the namespace and its service accounts", async () => {
    server.namespaceFinalizeDelayMs = Infinity; // stays Terminating until finalizeNamespace()
    const ns = uniqueName("doomed");
    await apply(namespace(ns));
    await apply(serviceAccount(ns, "existing"));

    await core.deleteNamespace({ name: ns });
    const terminating = await core.readNamespace({ name: ns });
    expect(terminating.status?.phase).toBe("Terminating");
    expect(terminating.metadata?.deletionTimestamp).toBeInstanceOf(Date);

    const error = await apiFailure(apply(serviceAccount(ns, "newcomer")));
    expect(error).toMatchObject({
      code: 403,
      reason: "Forbidden",
      message: `serviceaccounts "newcomer" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`,
    });
    // Updating what is already there is still allowed, as on a real server.
    await apply(serviceAccount(ns, "existing", { late: "update" }));

    expect(server.finalizeNamespace(ns)).toBe(true);
    expect(server.getObject("namespaces", "", ns)).toBeUndefined();
    expect(server.listObjects("serviceaccounts", ns)).toEqual([]);

    const missing = await apiFailure(apply(serviceAccount(ns, "late")));
    expect(missing).toMatchObject({ code: 404, reason: "NotFound", message: `namespaces "${ns}" not found` });
  });

  it("finalizes on the next tick by default", async () => {
    const ns = uniqueName("quick");
    await core.createNamespace({ body: namespace(ns) });
    await core.deleteNamespace({ name: ns });
    await eventually(() => server.getObject("namespaces", "", ns) === undefined);
  });
});

describe("faults", () => {
  it("down: connection refused, then back on the same port", async () => {
    const port = server.port;
    await server.setFault({ kind: "down" });
    expect(await failure(core.listNamespace())).toMatchObject({ kind: "transport", name: "FetchError", code: "ECONNREFUSED" });
    await server.clearFault();
    expect(server.port).toBe(port);
    await expect(core.listNamespace()).resolves.toMatchObject({ kind: "NamespaceList" });
  });

  it("error500: every request answers 500 InternalError", async () => {
    await server.setFault({ kind: "error500" });
    expect(await failure(apply(namespace(uniqueName("failing"))))).toMatchObject({ kind: "api", code: 500, reason: "InternalError" });
    await server.clearFault();
    await expect(core.readNamespace({ name: "default" })).resolves.toBeDefined();
  });

  it("slow: a per-request timeout fires; without one the answer just comes late", async () => {
    await server.setFault({ kind: "slow", delayMs: 300 });
    const timedOut = await failure(core.readNamespace({ name: "default" }, { middleware: [timeoutMiddleware(50)], middlewareMergeStrategy: "append" }));
    expect(timedOut).toMatchObject({ kind: "transport", name: "AbortError", code: "ABORTED" });

    const started = Date.now();
    await expect(core.readNamespace({ name: "default" })).resolves.toBeDefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it("blackhole: only a client-side timeout ends the wait", async () => {
    const withTimeout = objectApiWithTimeout(kc, 100);
    await withTimeout.read(namespaceRef("default")); // discovery is cached before the fault
    await server.setFault({ kind: "blackhole" });
    expect(await failure(withTimeout.read(namespaceRef("default")))).toMatchObject({ kind: "transport", code: "ABORTED" });
    await server.clearFault();
    await expect(withTimeout.read(namespaceRef("default"))).resolves.toMatchObject({ metadata: { name: "default" } });
  });

  it("wrong-token: the server expects another token (401)", async () => {
    await server.setFault({ kind: "wrong-token" });
    expect(await failure(core.listNamespace())).toMatchObject({ kind: "api", code: 401, reason: "Unauthorized" });
    await server.clearFault();
    await expect(core.listNamespace()).resolves.toBeDefined();
  });

  it("wrong-ca: TLS verification fails on the client", async () => {
    await server.setFault({ kind: "wrong-ca" });
    const error = await failure(core.listNamespace());
    expect(error).toMatchObject({ kind: "transport", name: "FetchError", code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
    await server.clearFault();
    await expect(core.listNamespace()).resolves.toBeDefined();
  });
});

describe("request faults: per resource, object and verb, answered as kube-apiserver would", () => {
  const status = (code: number, reason: string, message: string, details: Record<string, unknown> = {}) => ({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    details,
    code,
  });

  it("forbidden: RBAC's wording for the verb, resource and scope; other verbs and resources still served", async () => {
    server.failRequests({ resource: "namespaces", verbs: ["patch", "create"], answer: "forbidden" });
    const user = STAND_IN_USER;
    expect(await raw("PATCH", "/api/v1/namespaces/rbac-less?fieldManager=m", { body: "{}", contentType: "application/apply-patch+yaml" })).toMatchObject({
      status: 403,
      body: status(403, "Forbidden", `namespaces "rbac-less" is forbidden: User "${user}" cannot patch resource "namespaces" in API group "" at the cluster scope`, {
        name: "rbac-less",
        kind: "namespaces",
      }),
    });
    expect(await raw("POST", "/api/v1/namespaces", { body: "{}", contentType: "application/json" })).toMatchObject({
      body: { message: `namespaces is forbidden: User "${user}" cannot create resource "namespaces" in API group "" at the cluster scope` },
    });
    expect((await raw("GET", "/api/v1/namespaces/default")).status).toBe(200);
    await server.clearFault();
    server.failRequests({ resource: "serviceaccounts", name: "spark", answer: "forbidden" });
    expect((await raw("GET", "/api/v1/namespaces/default/serviceaccounts/spark")).body).toMatchObject({
      message: `serviceaccounts "spark" is forbidden: User "${user}" cannot get resource "serviceaccounts" in API group "" in the namespace "default"`,
    });
    expect((await raw("GET", "/api/v1/namespaces/default/serviceaccounts/default")).status).toBe(200);
    await server.clearFault();
    server.failRequests({ resource: "discovery", answer: "forbidden" });
    expect((await raw("GET", "/api/v1")).body).toMatchObject(status(403, "Forbidden", `forbidden: User "${user}" cannot get path "/api/v1"`));
  });

  it("authentication comes first: a wrong token is 401 whatever faults are set", async () => {
    server.failRequests({ resource: "*", answer: "forbidden" });
    expect((await raw("GET", "/api/v1", { token: "wrong" })).body).toMatchObject({ code: 401, reason: "Unauthorized" });
  });

  it("429 TooManyRequests with Retry-After in the header and the Status, only as many times as asked", async () => {
    server.failRequests({ resource: "*", answer: "too-many-requests", retryAfterSeconds: 3, times: 2 });
    for (let i = 0; i < 2; i++) {
      const answer = await rawWithHeaders("GET", "/api/v1/namespaces");
      expect(answer).toMatchObject({ status: 429, body: status(429, "TooManyRequests", "Too many requests, please try again later.", { retryAfterSeconds: 3 }) });
      expect(answer.headers["retry-after"]).toBe("3");
    }
    expect((await raw("GET", "/api/v1/namespaces")).status).toBe(200);
  });

  it("500 InternalError, 503 ServiceUnavailable, 401, a NotFound Status, and a plain-text 404 page", async () => {
    server.failRequests({ resource: "namespaces", name: "five-hundred", answer: "internal-error" });
    server.failRequests({ resource: "namespaces", name: "unavailable", answer: "service-unavailable", retryAfterSeconds: 5 });
    server.failRequests({ resource: "namespaces", name: "unauthorized", answer: "unauthorized" });
    server.failRequests({ resource: "namespaces", name: "missing", answer: "not-found" });
    server.failRequests({ resource: "namespaces", name: "not-kube", answer: "page-not-found" });
    expect((await raw("GET", "/api/v1/namespaces/five-hundred")).body).toMatchObject({ code: 500, reason: "InternalError" });
    const unavailable = await rawWithHeaders("GET", "/api/v1/namespaces/unavailable");
    expect(unavailable.body).toMatchObject(status(503, "ServiceUnavailable", "the server is currently unable to handle the request", { retryAfterSeconds: 5 }));
    expect(unavailable.headers["retry-after"]).toBe("5");
    expect((await raw("GET", "/api/v1/namespaces/unauthorized")).body).toMatchObject({ code: 401, reason: "Unauthorized" });
    expect((await raw("GET", "/api/v1/namespaces/missing")).body).toMatchObject(status(404, "NotFound", 'namespaces "missing" not found', { name: "missing", kind: "namespaces" }));
    expect(await raw("GET", "/api/v1/namespaces/not-kube")).toMatchObject({ status: 404, body: "404 page not found\n" });
  });

  it("hold: matching requests are never answered until the fault is cleared; others are served", async () => {
    server.failRequests({ resource: "namespaces", name: "held", answer: "hold" });
    const held = raw("GET", "/api/v1/namespaces/held").then(
      () => "answered",
      () => "connection closed",
    );
    await eventually(() => server.requestLog.some((entry) => entry.path === "/api/v1/namespaces/held"));
    expect((await raw("GET", "/api/v1/namespaces/default")).status).toBe(200);
    await server.clearFault();
    expect(await held).toBe("connection closed");
  });

  it("serves no kind it does not have: /api/v1 does not list it and its group answers 404", async () => {
    const core = (await raw("GET", "/api/v1")).body as { resources: { kind: string }[] };
    expect(core.resources.map((resource) => resource.kind)).toEqual(["Namespace", "ServiceAccount"]);
    expect(await raw("GET", "/apis/rbac.authorization.k8s.io/v1")).toMatchObject({
      status: 404,
      body: status(404, "NotFound", "the server could not find the requested resource"),
    });
  });
});

describe("instrumentation", () => {
  it("counts requests, writes and real changes, and logs each request", async () => {
    const ns = uniqueName("counted");
    server.resetCounters();
    await core.createNamespace({ body: namespace(ns) }); // write, change
    await core.readNamespace({ name: ns }); // read
    await apiFailure(core.createNamespace({ body: namespace(ns) })); // write, no change (409)
    await apply(namespace(ns, { tier: "gold" })); // write, change
    await apply(namespace(ns, { tier: "gold" })); // write, no change

    expect(server.requestCount).toBe(5);
    expect(server.writeCount).toBe(4);
    expect(server.changeCount).toBe(2);
    expect(server.requestLog.map((entry) => `${entry.method} ${entry.path} ${entry.status}`)).toEqual([
      `POST /api/v1/namespaces 201`,
      `GET /api/v1/namespaces/${ns} 200`,
      `POST /api/v1/namespaces 409`,
      `PATCH /api/v1/namespaces/${ns} 200`,
      `PATCH /api/v1/namespaces/${ns} 200`,
    ]);
  });
});
