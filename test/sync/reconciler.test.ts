/**
 * The reconciler against stand-in Kubernetes API servers over HTTPS, one failure type at a time:
 * what each pass records (status, conditions, object failures) and what it leaves provisioned.
 * Passes are run with runOnce() or awaited through onPass(); nothing here sleeps for a fixed time.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Condition, ConditionType } from "../../src/core/pass-outcome.js";
import type { SyncStatus } from "../../src/core/cluster.js";
import type { Stores } from "../../src/store/stores.js";
import { SyncLoop, type ClusterReport } from "../../src/sync/sync-loop.js";
import { DEFAULT_SYNC_SETTINGS, type SyncSettings } from "../../src/sync/sync-settings.js";
import { StandInApiServer } from "../support/kube/stand-in-apiserver.js";
import { tempStores } from "../support/stores.js";
import { waitFor } from "../support/wait.js";

const DOMAINS = ["development", "staging", "production"];
const quietLogger = { info() {}, warn() {} };

interface World {
  stores: Stores;
  loop: SyncLoop;
  api: StandInApiServer;
  templatesDir: string;
  register(name: string, options?: { api?: StandInApiServer; endpoint?: string; tokenPath?: string }): Promise<{ tokenPath: string; caCertPath: string }>;
  status(name?: string): Promise<SyncStatus>;
  provisioned(name?: string): Promise<string[]>;
  condition(type: ConditionType, name?: string): Promise<Pick<Condition, "status" | "reason" | "message">>;
  addProject(id: string): Promise<void>;
}

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function standIn(): Promise<StandInApiServer> {
  const api = await StandInApiServer.start();
  cleanups.push(() => api.stop());
  return api;
}

/** A database with project p1, a templates directory, a stand-in, and a loop that is not started. */
async function world(options: { templates?: Record<string, string>; settings?: Partial<SyncSettings>; stopGraceMs?: number } = {}): Promise<World> {
  const stores = await tempStores();
  cleanups.push(() => stores.cleanup());
  const templatesDir = mkdtempSync(join(tmpdir(), "reconciler-templates-"));
  cleanups.push(() => rmSync(templatesDir, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(options.templates ?? {})) writeFileSync(join(templatesDir, file), text);
  const settings: SyncSettings = {
    ...DEFAULT_SYNC_SETTINGS,
    // Every pass here is asked for (runOnce, a change, a retry), never caused by the clock.
    intervalMs: 3_600_000,
    fullResyncIntervalMs: 3_600_000,
    requestTimeoutMs: 5_000,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
    concurrency: 4,
    requestsPerCluster: 4,
    templatePath: templatesDir,
    credentialDirectories: [tmpdir()],
    ...options.settings,
  };
  const loop = new SyncLoop(stores, settings, quietLogger, { stopGraceMs: options.stopGraceMs });
  cleanups.push(() => loop.stop());
  const api = await standIn();
  const addProject = async (id: string) => void (await stores.projects.create({ org: "", id, name: "", description: "" }));
  await addProject("p1");
  const clusterOf = (name: string) => stores.clusters.get("", name);
  const self: World = {
    stores,
    loop,
    api,
    templatesDir,
    async register(name, { api: target = api, endpoint = target.url, tokenPath } = {}) {
      const credentials = target.writeCredentials(mkdtempSync(join(tmpdir(), `reconciler-creds-${name}-`)));
      const auth = { kind: "bearer_token_file" as const, tokenPath: tokenPath ?? credentials.tokenPath, caCertPath: credentials.caCertPath };
      await stores.clusters.create({ org: "", name, pool: "default", endpoint, enabled: true, auth });
      return auth;
    },
    status: async (name = "c1") => {
      const sync = (await clusterOf(name)).sync;
      if (!sync) throw new Error(`no sync status for ${name}`);
      return sync;
    },
    provisioned: async (name = "c1") => (await stores.sync.provisioned("", name)).map((pair) => `${pair.project}/${pair.domain}`),
    async condition(type, name = "c1") {
      const found = (await self.status(name)).conditions.find((condition) => condition.type === type);
      if (!found) throw new Error(`no ${type} condition`);
      return { status: found.status, reason: found.reason, message: found.message };
    },
    addProject,
  };
  return self;
}

const pairsOf = (...projects: string[]) => projects.flatMap((project) => DOMAINS.map((domain) => `${project}/${domain}`)).sort();

/** The next pass reported for `cluster` that satisfies `accept`. */
function nextPass(loop: SyncLoop, cluster: string, accept: (report: ClusterReport) => boolean = () => true): Promise<ClusterReport> {
  return new Promise((resolve) => {
    const unsubscribe = loop.onPass((report) => {
      if (report.cluster !== cluster || !accept(report)) return;
      unsubscribe();
      resolve(report);
    });
  });
}

async function onlyPass(loop: SyncLoop, full = false): Promise<ClusterReport> {
  const reports = await loop.runOnce(full);
  expect(reports).toHaveLength(1);
  return reports[0]!;
}

describe("a healthy cluster", () => {
  it("is Reachable, Authorized, Provisioned (n of n) and not Degraded, with every project-domain provisioned", async () => {
    const w = await world();
    await w.register("c1");
    const report = await onlyPass(w.loop);
    expect(report).toMatchObject({ ok: true, applied: 6, failed: 0 });
    expect((await w.status()).failureKind).toBe("");
    expect(await w.condition("Reachable")).toMatchObject({ status: "True" });
    expect(await w.condition("Authorized")).toMatchObject({ status: "True" });
    expect(await w.condition("Provisioned")).toMatchObject({ status: "True", message: "3 of 3 project-domains provisioned" });
    expect(await w.condition("Degraded")).toMatchObject({ status: "False" });
    expect(await w.provisioned()).toEqual(pairsOf("p1"));
  });
});

describe("cluster-wide failures: the pass stops, nothing new is provisioned", () => {
  it("unreachable: connection refused", async () => {
    const w = await world();
    await w.register("c1");
    await w.api.setFault({ kind: "down" });
    const report = await onlyPass(w.loop);
    expect(report.ok).toBe(false);
    expect((await w.status()).failureKind).toBe("unreachable");
    expect((await w.status()).lastError).toMatch(/^connection refused by 127\.0\.0\.1:\d+ \(ECONNREFUSED\): check the cluster's endpoint and that its API server is up$/);
    expect(await w.condition("Reachable")).toMatchObject({ status: "False", reason: "Unreachable" });
    expect(await w.condition("Authorized")).toMatchObject({ status: "Unknown" });
    expect(await w.provisioned()).toEqual([]);
  });

  it("unreachable: no answer within the request timeout (a black hole)", async () => {
    const w = await world({ settings: { requestTimeoutMs: 300 } });
    await w.register("c1");
    await w.api.setFault({ kind: "blackhole" });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("unreachable");
    expect((await w.status()).lastError).toMatch(/^no answer within 300 ms from https:\/\/127\.0\.0\.1:\d+: check that the API server is up/);
  });

  it("unreachable: TLS verification fails against the cluster's CA", async () => {
    const w = await world();
    const { caCertPath } = await w.register("c1");
    await w.api.setFault({ kind: "wrong-ca" });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("unreachable");
    expect((await w.status()).lastError).toContain(`TLS verification failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE): check that the CA file ${caCertPath} holds the CA`);
  });

  it("unreachable: a host name that does not resolve", async () => {
    const w = await world({ settings: { requestTimeoutMs: 3_000 } });
    await w.register("c1", { endpoint: "https://no-such-cluster.invalid:6443" });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("unreachable");
    // Without a resolver on the machine the lookup cannot fail fast: then the timeout says it.
    expect((await w.status()).lastError).toMatch(/^(cannot resolve no-such-cluster\.invalid:6443 \((ENOTFOUND|EAI_AGAIN)\): check the host name|no answer within 3000 ms)/);
  });

  it("unauthorized (401): the token is refused, and the message names the token file", async () => {
    const w = await world();
    const { tokenPath } = await w.register("c1");
    await w.api.setFault({ kind: "wrong-token" });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("unauthorized");
    expect((await w.status()).lastError).toBe(
      `the API server refused the token (401 Unauthorized: Unauthorized): check the token file ${tokenPath} — it may be wrong, expired or another cluster's`,
    );
    expect(await w.condition("Reachable")).toMatchObject({ status: "True" });
    expect(await w.condition("Authorized")).toMatchObject({ status: "False", reason: "Unauthorized" });
    expect(await w.provisioned()).toEqual([]);
  });

  it.each([
    ["namespaces", { resource: "namespaces" as const, verbs: ["patch"] }, /^the identity may not create namespaces \(403 Forbidden: namespaces "p1-\w+" is forbidden: User "[^"]+" cannot patch resource "namespaces" in API group "" at the cluster scope\): grant it RBAC to get, create and patch namespaces and serviceaccounts$/],
    ["the namespace's service account", { resource: "serviceaccounts" as const, name: "default" }, /^the identity may not create service accounts \(403 Forbidden: serviceaccounts "default" is forbidden: .* in the namespace "p1-\w+"\): grant it RBAC/],
    ["discovery", { resource: "discovery" as const }, /^the identity may not read the API's discovery \(\/api\/v1\) \(403 Forbidden: forbidden: User "[^"]+" cannot get path "\/api\/v1"\)/],
  ])("forbidden (403 on %s): RBAC is missing, so no project-domain can be provisioned", async (_, where, message) => {
    const w = await world();
    await w.register("c1");
    w.api.failRequests({ ...where, answer: "forbidden" });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("forbidden");
    expect((await w.status()).lastError).toMatch(message);
    expect(await w.condition("Authorized")).toMatchObject({ status: "False", reason: "Forbidden" });
    expect(await w.condition("Provisioned")).toMatchObject({ status: "False", message: "0 of 3 project-domains provisioned" });
    expect(await w.provisioned()).toEqual([]);
  });

  it("wrong endpoint (404 on discovery): a path that is not a Kubernetes API", async () => {
    const w = await world();
    const endpoint = `${w.api.url}/not-the-api`;
    await w.register("c1", { endpoint });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("wrong-endpoint");
    expect((await w.status()).lastError).toBe(
      `the endpoint does not look like a Kubernetes API (404 on /api/v1 under ${endpoint}): check the cluster's endpoint — scheme, host, port and no extra path`,
    );
    expect(await w.condition("Reachable")).toMatchObject({ status: "False", reason: "NotKubernetesAPI" });
    expect(w.api.requestLog.map((entry) => `${entry.method} ${entry.path}`)).toEqual(["GET /not-the-api/api/v1"]);
    expect(await w.provisioned()).toEqual([]);
  });

  it("wrong endpoint (404 on namespaces): a server that answers discovery but has no namespaces", async () => {
    const w = await world();
    await w.register("c1");
    w.api.failRequests({ resource: "namespaces", answer: "page-not-found" });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("wrong-endpoint");
    expect((await w.status()).lastError).toMatch(/^the endpoint does not look like a Kubernetes API \(404 on \/api\/v1\/namespaces\/p1-\w+ under /);
  });

  it.each([
    ["500", { kind: "error500" as const }, undefined, /^the API server failed \(500 InternalError: Internal error occurred: .*\): retrying with backoff/],
    ["503", undefined, { answer: "service-unavailable" as const, retryAfterSeconds: 1 }, /^the API server failed \(503 ServiceUnavailable: the server is currently unable to handle the request\)/],
    ["429", undefined, { answer: "too-many-requests" as const, retryAfterSeconds: 1 }, /^the API server is throttling requests \(429 TooManyRequests: Too many requests, please try again later\.\): retrying after 1 s as it asked$/],
  ])("server error (%s)", async (_, fault, requestFault, message) => {
    const w = await world();
    await w.register("c1");
    if (fault) await w.api.setFault(fault);
    if (requestFault) w.api.failRequests({ resource: "*", ...requestFault });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("server-error");
    expect((await w.status()).lastError).toMatch(message);
    expect(await w.condition("Reachable")).toMatchObject({ status: "False", reason: "ServerError" });
    expect((await w.status()).consecutiveFailures).toBe(1);
  });

  it("credentials: a token file that is not there; nothing is sent", async () => {
    const w = await world();
    const missing = join(mkdtempSync(join(tmpdir(), "reconciler-missing-")), "token");
    await w.register("c1", { tokenPath: missing });
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("credentials");
    expect((await w.status()).lastError).toMatch(new RegExp(`^credential file ${missing}: does not exist .*; nothing was sent to the cluster`));
    expect(await w.condition("Reachable")).toMatchObject({ status: "False", reason: "CredentialsUnusable" });
    expect(w.api.requestCount).toBe(0);
  });

  it("keeps what is known to be there after a failure, and provisions nothing new until a pass gets through", async () => {
    const w = await world();
    await w.register("c1");
    await onlyPass(w.loop);
    await w.api.setFault({ kind: "wrong-token" });
    await w.addProject("p2");
    await onlyPass(w.loop);
    expect((await w.status()).failureKind).toBe("unauthorized");
    expect(await w.provisioned()).toEqual(pairsOf("p1"));
    expect(await w.condition("Provisioned")).toMatchObject({ status: "False", message: "3 of 6 project-domains provisioned" });
    await w.api.clearFault();
    await onlyPass(w.loop);
    expect(await w.provisioned()).toEqual(pairsOf("p1", "p2"));
    expect((await w.status()).consecutiveFailures).toBe(0);
  });
});

describe("object failures: the pass goes on, the cluster is Degraded, its project-domains stay provisioned", () => {
  const QUOTA = "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\nspec:\n  hard: {cpu: '8'}\n";
  const ROLE_BINDING =
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: edit\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}\nsubjects: [{kind: ServiceAccount, name: default}]\n";
  const SPARK = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: spark\n";

  it("unsupported kind: a kind the cluster does not serve is reported, never sent, and does not stop the pass", async () => {
    const w = await world({ templates: { "quota.yaml": QUOTA, "rbac.yaml": ROLE_BINDING } });
    await w.register("c1");
    const report = await onlyPass(w.loop);
    expect(report).toMatchObject({ aborted: false, applied: 6, failed: 6 });
    const status = (await w.status());
    expect(status.failureKind).toBe("");
    expect(status.objectFailures.map((failure) => failure.kind)).toEqual(Array(6).fill("unsupported-kind"));
    expect(status.objectFailures).toContainEqual({
      key: "v1/ResourceQuota/p1-development/quota",
      kind: "unsupported-kind",
      message: "the cluster does not serve ResourceQuota in v1: install it there (its CRD or API), or remove it from the template quota.yaml",
    });
    expect(status.objectFailures.find((failure) => failure.key.startsWith("rbac"))?.message).toBe(
      "the cluster does not serve RoleBinding in rbac.authorization.k8s.io/v1: install it there (its CRD or API), or remove it from the template rbac.yaml",
    );
    expect(await w.condition("Degraded")).toMatchObject({ status: "True", reason: "ObjectsFailed" });
    expect(await w.condition("Reachable")).toMatchObject({ status: "True" });
    expect(await w.provisioned()).toEqual(pairsOf("p1"));
    // Discovery once per group/version and pass; nothing sent for the kinds the cluster lacks.
    const requests = w.api.requestLog.map((entry) => `${entry.method} ${entry.path}`);
    expect(requests.filter((request) => request.startsWith("GET"))).toEqual(["GET /api/v1", "GET /apis/rbac.authorization.k8s.io/v1"]);
    expect(requests.filter((request) => /resourcequotas|rolebindings/.test(request))).toEqual([]);
  });

  it("rejected (422 Invalid, 400 BadRequest): the message says which template to fix", async () => {
    const w = await world({
      templates: {
        "bad-name.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: spark-{{ project }}-\n",
        "bad-field.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: runner\nautomountServiceAccountToken: 'yes'\n",
      },
    });
    await w.register("c1");
    await onlyPass(w.loop);
    const failures = (await w.status()).objectFailures;
    expect(failures.map((failure) => failure.kind)).toEqual(Array(6).fill("rejected"));
    expect(failures.find((failure) => failure.key.endsWith("/spark-p1-"))?.message).toMatch(
      /^the API server rejected it \(422 Invalid: ServiceAccount "spark-p1-" is invalid: metadata\.name: Invalid value: "spark-p1-": .*\): fix the template bad-name\.yaml$/,
    );
    expect(failures.find((failure) => failure.key.endsWith("/runner"))?.message).toMatch(
      /^the API server rejected it \(400 BadRequest: ServiceAccount in version "v1" cannot be handled as a ServiceAccount: .*\): fix the template bad-field\.yaml$/,
    );
    expect((await w.status()).failureKind).toBe("");
    expect(await w.provisioned()).toEqual(pairsOf("p1"));
  });

  it("forbidden (403 on one extra object): that object only", async () => {
    const w = await world({ templates: { "spark.yaml": SPARK } });
    await w.register("c1");
    w.api.failRequests({ resource: "serviceaccounts", name: "spark", answer: "forbidden" });
    await onlyPass(w.loop);
    const status = (await w.status());
    expect(status.failureKind).toBe("");
    expect(status.objectFailures.map((failure) => failure.kind)).toEqual(["forbidden", "forbidden", "forbidden"]);
    expect(status.objectFailures[0]!.message).toMatch(
      /^the identity may not apply ServiceAccount \(403 Forbidden: serviceaccounts "spark" is forbidden: .*\): grant it RBAC for ServiceAccount objects, or remove it from the template spark\.yaml$/,
    );
    expect(await w.condition("Authorized")).toMatchObject({ status: "True" });
    expect(await w.provisioned()).toEqual(pairsOf("p1"));
  });

  it("a template that cannot be rendered: Degraded, the namespace and service account still applied", async () => {
    const w = await world({ templates: { "broken.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: '{{ nowhere }}'\n" } });
    await w.register("c1");
    const report = await onlyPass(w.loop);
    expect(report).toMatchObject({ applied: 6, failed: 3 });
    expect(await w.condition("Degraded")).toMatchObject({ status: "True", reason: "TemplateError" });
    expect((await w.status()).lastError).toMatch(/^template: broken\.yaml: unknown variable\(s\) \{\{ nowhere \}\}/);
    expect(await w.provisioned()).toEqual(pairsOf("p1"));
  });
});

describe("the work queue in the loop", () => {
  it("honours Retry-After: the next try waits as long as the server asked, not the 50 ms backoff", async () => {
    const w = await world();
    await w.register("c1");
    w.api.failRequests({ resource: "namespaces", answer: "too-many-requests", retryAfterSeconds: 1, times: 1 });
    const failed = nextPass(w.loop, "c1", (report) => !report.ok);
    const healed = nextPass(w.loop, "c1", (report) => report.ok);
    w.loop.start();
    const first = await failed;
    const second = await healed;
    // Timers never fire early by more than a millisecond; late is what a busy machine does.
    expect(second.finishedAtMs - second.durationMs - first.finishedAtMs).toBeGreaterThanOrEqual(990);
    expect(await w.provisioned()).toEqual(pairsOf("p1"));
  });

  it("provisions a new project's namespaces in the pass the project triggers", async () => {
    const w = await world();
    await w.register("c1");
    w.loop.start();
    await waitFor("the first pass", async () => (await w.stores.sync.provisioned("", "c1")).length === 3, 30_000);
    const triggered = nextPass(w.loop, "c1", (report) => report.outcome.desired.some((pair) => pair.project === "p2"));
    await w.addProject("p2");
    const report = await triggered;
    expect(report.ok).toBe(true);
    // Recorded before the pass is reported: routing can use it at once.
    expect(await w.provisioned()).toEqual(pairsOf("p1", "p2"));
    expect(w.api.getObject("namespaces", "", "p2-production")).toBeDefined();
  });

  it("owes a requested full pass until one completes, through a failed pass", async () => {
    const w = await world();
    await w.register("c1");
    await onlyPass(w.loop);
    await w.api.setFault({ kind: "error500" });
    expect((await onlyPass(w.loop, true)).outcome.failure?.kind).toBe("server-error");
    await w.api.clearFault();
    const report = await onlyPass(w.loop);
    expect(report.outcome.full).toBe(true);
    expect(report).toMatchObject({ applied: 6, unchanged: 0 });
    expect((await onlyPass(w.loop)).outcome).toMatchObject({ full: false, applied: 0, unchanged: 6 });
  });

  it("owes a requested full pass through an aborted one (the cluster disabled mid-pass)", async () => {
    const w = await world();
    await w.register("c1");
    w.loop.start();
    await waitFor("the first pass", async () => (await w.stores.sync.provisioned("", "c1")).length === 3, 30_000);
    w.api.resetCounters();
    w.api.failRequests({ resource: "namespaces", verbs: ["patch"], answer: "hold", times: 1 });
    const fullPass = w.loop.runOnce(true);
    await waitFor("the full pass held by the cluster", () => w.api.writeCount > 0, 30_000);
    const cluster = await w.stores.clusters.get("", "c1");
    const disabled = await w.stores.clusters.update("", "c1", { enabled: false }, cluster.etag);
    expect(await fullPass).toEqual([]);
    const next = nextPass(w.loop, "c1");
    await w.stores.clusters.update("", "c1", { enabled: true }, disabled.etag);
    expect((await next).outcome).toMatchObject({ full: true, applied: 6, unchanged: 0 });
  });
});

describe("cancellation", () => {
  it("stop() returns within the grace while a black-holed cluster holds a request, and leaves no timer armed", async () => {
    const w = await world({ settings: { requestTimeoutMs: 120_000 }, stopGraceMs: 5_000 });
    const hole = await standIn();
    await hole.setFault({ kind: "blackhole" });
    await w.register("c1");
    await w.register("hole", { api: hole });
    const timersBefore = process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length;
    w.loop.start();
    await waitFor("the healthy cluster provisioned", async () => (await w.stores.sync.provisioned("", "c1")).length === 3, 30_000);
    await waitFor("a request held by the black hole", () => hole.requestCount > 0 && hole.openConnections > 0, 30_000);
    const started = performance.now();
    await w.loop.stop();
    expect(performance.now() - started).toBeLessThan(5_000);
    // The request was cancelled, not left to the 120 s timeout: its connection is closed.
    await waitFor("the held connection closed", () => hole.openConnections === 0, 30_000);
    expect(process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length).toBeLessThanOrEqual(timersBefore);
    expect(await w.stores.sync.status("", "hole")).toBeNull();
  });

  it("a cluster deleted mid-pass leaves no status, hashes, provisioning or connection behind", async () => {
    const w = await world();
    await w.addProject("p2");
    await w.register("c1");
    // Every namespace but one is applied; that one holds the pass open until it is cancelled.
    w.api.failRequests({ resource: "namespaces", name: "p2-production", answer: "hold" });
    const reports: ClusterReport[] = [];
    w.loop.onPass((report) => reports.push(report));
    w.loop.start();
    await waitFor("five namespaces applied, the sixth held", () => w.api.listObjects("namespaces").filter((ns) => /^p\d-/.test(String((ns.metadata as { name: string }).name))).length === 5, 30_000);
    const cluster = await w.stores.clusters.setState("", "c1", "DRAINED");
    await w.stores.clusters.delete("", "c1", cluster.etag);
    await w.loop.idle();
    expect(reports).toEqual([]);
    expect(await w.stores.sync.status("", "c1")).toBeNull();
    expect((await w.stores.sync.appliedHashes("", "c1")).size).toBe(0);
    expect(await w.stores.sync.provisioned("", "c1")).toEqual([]);
    await waitFor("the cluster's connections closed", () => w.api.openConnections === 0, 30_000);

    // Registered again under the same name, it is a new cluster: everything is applied afresh.
    await w.api.clearFault();
    const next = nextPass(w.loop, "c1");
    await w.register("c1");
    expect(await next).toMatchObject({ ok: true, applied: 12 });
    expect(await w.provisioned()).toEqual(pairsOf("p1", "p2"));
  });
});
