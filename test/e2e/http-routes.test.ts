import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { DEFAULT_SYNC_SETTINGS } from "../../src/sync/sync-settings.js";
import { bearer, newToken, writeTokensFile } from "../support/auth.js";
import { StandInApiServer } from "../support/kube/stand-in-apiserver.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? "GET", headers: options.headers, agent: false }, (response) => {
      let body = "";
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** The value of one sample line of the Prometheus text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.lastIndexOf("}"));
    const have = labelText.split(/,(?=\w+=")/);
    if (wanted.every((label) => have.includes(label))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

const ALLOWED = "http://console.example.com";
const viewer = newToken("viewer", "dashboard");
const admin = newToken("admin", "ops");

describe("probes", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it("answers /healthz and /readyz (database open, migrations applied), and /readyz 503 once shutting down", async () => {
    expect(await request(`${server.url}/healthz`)).toMatchObject({ status: 200, body: "ok\n" });
    expect((await request(`${server.url}/healthz`, { method: "HEAD" })).body).toBe("");
    const ready = await request(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({
      status: "ready",
      checks: {
        database: "open",
        migrations: expect.stringMatching(/^applied \(schema version \d+\)$/),
        serving: "serving",
        syncLeader: "sync is off",
        changeLog: expect.stringMatching(/^revision \d+$/),
      },
    });
    server.health.shutdown();
    const draining = await request(`${server.url}/readyz`);
    expect(draining.status).toBe(503);
    expect(JSON.parse(draining.body)).toMatchObject({ status: "not ready", checks: { serving: "shutting down" } });
    expect((await request(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe("metrics", () => {
  let server: TestServer;
  let api: StandInApiServer;
  let failing: StandInApiServer;
  beforeAll(async () => {
    const tokens = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
    writeTokensFile(tokens, [viewer, admin]);
    [api, failing] = await Promise.all([StandInApiServer.start(), StandInApiServer.start()]);
    await failing.setFault({ kind: "error500" });
    server = await startTestServer({
      auth: { tokensFile: tokens },
      sync: { ...DEFAULT_SYNC_SETTINGS, intervalMs: 3_600_000, fullResyncIntervalMs: 3_600_000, requestTimeoutMs: 1_000, initialBackoffMs: 60_000, credentialDirectories: [tmpdir()] },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await Promise.all([api?.stop(), failing?.stop()]);
  });

  it("counts RPCs by service, method and code, with latency histograms and process metrics", async () => {
    const pools = createClient(ClusterPoolService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(viewer.token)] }));
    await pools.listClusterPools({});
    await pools.listClusterPools({});
    await pools.getClusterPool({ name: "absent" }).catch(() => undefined);
    await pools.deleteClusterPool({ name: "default" }).catch(() => undefined);
    const anonymous = createClient(ClusterPoolService, createGrpcTransport({ baseUrl: server.url }));
    await anonymous.listClusterPools({}).catch(() => undefined);

    const answer = await request(`${server.url}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = answer.body;
    const rpc = (method: string, code: string) =>
      sample(text, "clusterplane_rpc_requests_total", { service: "clusterplane.v1.ClusterPoolService", method, code });
    expect(rpc("ListClusterPools", "OK")).toBe(2);
    expect(rpc("GetClusterPool", "NOT_FOUND")).toBe(1);
    expect(rpc("DeleteClusterPool", "PERMISSION_DENIED")).toBe(1);
    expect(rpc("ListClusterPools", "UNAUTHENTICATED")).toBe(1);
    expect(text).toContain("# TYPE clusterplane_rpc_duration_seconds histogram");
    expect(sample(text, "clusterplane_rpc_duration_seconds_count", { service: "clusterplane.v1.ClusterPoolService", method: "ListClusterPools" })).toBe(3);
    expect(sample(text, "clusterplane_rpc_duration_seconds_bucket", { method: "ListClusterPools", le: "+Inf" })).toBe(3);
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toContain("nodejs_eventloop_lag_seconds");
  });

  it("reports sync passes, objects applied and failed, and the last success per cluster", async () => {
    const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(admin.token)] });
    await createClient(ProjectService, transport).createProject({ project: { id: "metrics" } });
    const clusters = createClient(ClusterService, transport);
    for (const [name, stand] of [["healthy", api], ["broken", failing]] as const) {
      const credentials = stand.writeCredentials(mkdtempSync(join(tmpdir(), `creds-${name}-`)));
      await clusters.createCluster({
        cluster: {
          name,
          endpoint: stand.url,
          auth: { method: { case: "bearerTokenFile", value: { tokenPath: credentials.tokenPath, caCertPath: credentials.caCertPath } } },
        },
      });
    }
    const scrape = async () => (await request(`${server.url}/metrics`)).body;
    await waitFor("a pass on each cluster", async () => {
      const text = await scrape();
      return (
        sample(text, "clusterplane_sync_passes_total", { cluster: "healthy", outcome: "success" }) !== undefined &&
        sample(text, "clusterplane_sync_passes_total", { cluster: "broken", outcome: "failure" }) !== undefined
      );
    });
    const text = await scrape();
    // Three domains: a namespace and a service account each.
    expect(sample(text, "clusterplane_sync_objects_applied_total", { org: "", cluster: "healthy" })).toBe(6);
    expect(sample(text, "clusterplane_sync_objects_failed_total", { org: "", cluster: "healthy" })).toBe(0);
    expect(sample(text, "clusterplane_sync_passes_total", { cluster: "broken", outcome: "failure" })).toBeGreaterThanOrEqual(1);
    const lastSuccess = sample(text, "clusterplane_sync_last_success_timestamp_seconds", { org: "", cluster: "healthy" });
    expect(lastSuccess).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(lastSuccess).toBeLessThanOrEqual(Date.now() / 1000);
    expect(sample(text, "clusterplane_sync_last_success_timestamp_seconds", { cluster: "broken" })).toBeUndefined();
  });

  it("can require credentials for /metrics", async () => {
    const tokens = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
    writeTokensFile(tokens, [viewer]);
    const closed = await startTestServer({ auth: { tokensFile: tokens }, metrics: { public: false } });
    try {
      const refused = await request(`${closed.url}/metrics`);
      expect(refused.status).toBe(401);
      expect(refused.headers["www-authenticate"]).toBe('Bearer realm="clusterplane"');
      expect((await request(`${closed.url}/metrics`, { headers: { Authorization: "Bearer wrong-token-123456" } })).status).toBe(401);
      const allowed = await request(`${closed.url}/metrics`, { headers: { Authorization: `Bearer ${viewer.token}` } });
      expect(allowed.status).toBe(200);
      expect(allowed.body).toContain("clusterplane_rpc_requests_total");
      expect(allowed.body).not.toContain(viewer.token);
    } finally {
      await closed.stop();
    }
  });
});

describe("CORS for browser origins", () => {
  let server: TestServer;
  const listPools = "/clusterplane.v1.ClusterPoolService/ListClusterPools";
  beforeAll(async () => {
    server = await startTestServer({ cors: { allowedOrigins: [ALLOWED, "https://other.example.com:8443"] } });
  });
  afterAll(() => server.stop());

  it("answers the preflight of an allowed origin with the headers Connect and gRPC-Web need", async () => {
    const answer = await request(`${server.url}${listPools}`, {
      method: "OPTIONS",
      headers: {
        Origin: ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,connect-protocol-version,content-type",
      },
    });
    expect(answer.status).toBe(204);
    expect(answer.headers["access-control-allow-origin"]).toBe(ALLOWED);
    expect(answer.headers.vary).toBe("Origin");
    expect(answer.headers["access-control-allow-methods"]).toBe("POST, GET");
    const allowedHeaders = answer.headers["access-control-allow-headers"]!.toLowerCase().split(", ");
    for (const name of ["authorization", "content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "x-user-agent", "grpc-timeout", "x-request-id"]) {
      expect(allowedHeaders).toContain(name);
    }
    expect(answer.headers["access-control-max-age"]).toBe("7200");
  });

  it("lets an allowed origin read the answer and the headers gRPC-Web needs", async () => {
    const answer = await request(`${server.url}${listPools}`, {
      method: "POST",
      headers: { Origin: "https://other.example.com:8443", "Content-Type": "application/json" },
      body: "{}",
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).clusterPools[0].name).toBe("default");
    expect(answer.headers["access-control-allow-origin"]).toBe("https://other.example.com:8443");
    const exposed = answer.headers["access-control-expose-headers"]!.toLowerCase().split(", ");
    for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"]) expect(exposed).toContain(name);
  });

  it("refuses another origin: preflight 403 without CORS headers, and the request itself is not served", async () => {
    const preflight = await request(`${server.url}${listPools}`, {
      method: "OPTIONS",
      headers: { Origin: "http://evil.example.com", "Access-Control-Request-Method": "POST" },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers["access-control-allow-origin"]).toBeUndefined();
    expect(preflight.headers["access-control-allow-headers"]).toBeUndefined();
    const post = await request(`${server.url}${listPools}`, {
      method: "POST",
      headers: { Origin: "http://console.example.com:8080", "Content-Type": "application/json" },
      body: "{}",
    });
    expect(post.status).toBe(403);
    expect(post.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("leaves requests without an Origin (non-browser clients) alone", async () => {
    const answer = await request(`${server.url}${listPools}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    expect(answer.status).toBe(200);
    expect(answer.headers["access-control-allow-origin"]).toBeUndefined();
  });
});
