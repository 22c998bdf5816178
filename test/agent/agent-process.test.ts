import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { ClusterService, ConditionStatus } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import packageJson from "../../package.json" with { type: "json" };
import { startServer, type RunningServer, type ServerConfig } from "../../src/server/server.js";
import { DEFAULT_SYNC_SETTINGS } from "../../src/sync/sync-settings.js";
import { bearer, newToken, writeTokensFile } from "../support/auth.js";
import { seedProdPool } from "../support/fixtures.js";
import { StandInApiServer } from "../support/kube/stand-in-apiserver.js";
import { waitFor } from "../support/wait.js";

/**
 * `clusterplane agent` as its own process, against a real server and the stand-in Kubernetes API
 * over HTTPS: join with the printed token, converge, follow new projects, survive a server restart
 * without re-applying anything, show healthy and be routed to, and refuse a used join token.
 */

const admin = newToken("admin");
const DOMAINS = ["development", "staging", "production"];

let dir: string;
let api: StandInApiServer;
let server: RunningServer | undefined;
let config: ServerConfig;
let kubeconfig: string;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "agent-process-"));
  api = await StandInApiServer.start();
  kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, kubeconfigFor(api));
  const tokensFile = join(dir, "tokens");
  writeTokensFile(tokensFile, [admin]);
  config = {
    host: "127.0.0.1",
    port: 0,
    databasePath: join(dir, "clusterplane.db"),
    shutdownGraceMs: 2_000,
    auth: { tokensFile },
    sync: { ...DEFAULT_SYNC_SETTINGS, enabled: true },
  };
  server = await startServer(config, pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }));
  // Restarts listen on the same port: the agent is given one URL, as behind a load balancer.
  config = { ...config, port: Number(new URL(server.url).port) };
});

afterAll(async () => {
  for (const agent of agents) agent.child.kill("SIGKILL");
  await server?.close();
  await api?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("clusterplane agent (a process)", () => {
  it("joins, converges, follows new projects, resumes after a server restart without re-applying, and is routed to", async () => {
    const cp = clients(server!.url);
    await cp.pools.createClusterPool({ clusterPool: seedProdPool() });
    await cp.projects.createProject({ project: { id: "team1" } });
    const created = await cp.clusters.createCluster({ cluster: { name: "edge-1", pool: "prod" } });
    const joinToken = created.join!.joinToken;
    expect(created.join!.agentCommand).toContain(`--join-token ${joinToken}`);
    await cp.ecl.createClusterLabel({ label: { name: "edge", clusters: [{ cluster: "edge-1", weight: 1 }] } });
    await cp.ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "team1", domain: "production", value: "edge" } });

    const credentialFile = join(dir, "edge-1.credential");
    const agent = startAgent("--control-plane", server!.url, "--join-token", joinToken, "--credential-file", credentialFile, "--heartbeat", "1s");

    // Join: the credential is kept in a file only the agent's user may read.
    await agent.waitForLog(/agent: joined cluster edge-1/);
    expect(statSync(credentialFile).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(credentialFile, "utf8")) as Record<string, string>;
    expect(stored).toMatchObject({ cluster: "edge-1", controlPlane: server!.url });
    expect(Date.parse(stored.expireTime!)).toBeGreaterThan(Date.now());

    // Converge: the existing project's namespaces and service accounts.
    await waitFor("team1's namespaces on the cluster", () => DOMAINS.every((d) => api.getObject("namespaces", "", `team1-${d}`)), 20_000);
    expect(agent.log.some((line) => /agent: connected; desired state 6 objects/.test(line.msg))).toBe(true);

    // Healthy, reported in the same terms as push mode, and routed to.
    await waitFor("edge-1 healthy and provisioned", async () => {
      const cluster = (await cp.clusters.getCluster({ name: "edge-1" })).cluster!;
      const reachable = cluster.conditions.find((c) => c.type === "Reachable");
      return reachable?.status === ConditionStatus.TRUE && cluster.syncStatus?.projectDomainsProvisioned === 3;
    }, 20_000);
    const edge = (await cp.clusters.getCluster({ name: "edge-1" })).cluster!;
    expect(edge.agent?.version).toBe(packageJson.version);
    expect(edge.syncStatus?.objectsApplied).toBe(6);
    const select = () => cp.ecl.selectCluster({ project: "team1", domain: "production", executionId: "e1", target: { case: undefined } });
    await waitFor("SelectCluster to route to edge-1", async () => (await select().catch(() => null))?.cluster === "edge-1", 10_000);

    // A new project's namespaces arrive within seconds, over the open stream.
    const before = Date.now();
    await cp.projects.createProject({ project: { id: "team2" } });
    await waitFor("team2's namespaces", () => DOMAINS.every((d) => api.getObject("namespaces", "", `team2-${d}`)), 10_000);
    expect(Date.now() - before).toBeLessThan(10_000);
    await waitFor("team2 reported provisioned", async () => (await cp.clusters.getCluster({ name: "edge-1" })).cluster!.syncStatus?.projectDomainsProvisioned === 6, 10_000);

    // Restart the server (same database, same URL): the agent reconnects with backoff and resumes
    // by digest; nothing unchanged is sent to the cluster again.
    api.resetCounters();
    await server!.close();
    server = undefined;
    await agent.waitForLog(/agent: control plane unreachable; retrying in/);
    const restartedAt = Date.now();
    server = await startServer(config, pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }));
    const again = clients(server.url);
    await waitFor("the agent's heartbeat on the restarted server", async () => {
      const heartbeat = (await again.clusters.getCluster({ name: "edge-1" })).cluster!.agent?.lastHeartbeatTime;
      return heartbeat !== undefined && timestampDate(heartbeat).getTime() >= restartedAt;
    }, 30_000);
    await agent.waitForLog(/agent: connected; desired state unchanged \(12 objects\)/);
    expect(api.writeCount).toBe(0);
    // The stream is back: a project created now reaches the cluster, and only its objects are written.
    await again.projects.createProject({ project: { id: "team3" } });
    await waitFor("team3's namespaces after the restart", () => DOMAINS.every((d) => api.getObject("namespaces", "", `team3-${d}`)), 30_000);
    // (The stand-in API makes each namespace's default service account itself: wait for the report.)
    await waitFor("team3 reported provisioned", async () => (await again.clusters.getCluster({ name: "edge-1" })).cluster!.syncStatus?.projectDomainsProvisioned === 9, 10_000);
    const written = api.requestLog.filter((entry) => !["GET", "HEAD"].includes(entry.method)).map((entry) => entry.path);
    expect(written.length).toBe(6);
    expect(written.every((path) => path.includes("team3-"))).toBe(true);
    await waitFor("routing to edge-1 after the restart", async () => {
      const answer = await again.ecl.selectCluster({ project: "team1", domain: "production", executionId: "e2", target: { case: undefined } }).catch(() => null);
      return answer?.cluster === "edge-1";
    }, 10_000);

    // SIGTERM: a graceful stop, exit 0.
    agent.child.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
    expect(agent.log.some((line) => line.msg === "agent: stopped")).toBe(true);

    // Started again without a join token, it uses its kept credential.
    const resumed = startAgent("--control-plane", server.url, "--credential-file", credentialFile, "--heartbeat", "1s");
    await resumed.waitForLog(/agent: using the agent credential of cluster edge-1/);
    const heartbeatBefore = Date.now();
    await waitFor("the resumed agent's heartbeat", async () => {
      const heartbeat = (await again.clusters.getCluster({ name: "edge-1" })).cluster!.agent?.lastHeartbeatTime;
      return heartbeat !== undefined && timestampDate(heartbeat).getTime() >= heartbeatBefore;
    }, 20_000);

    // Revoked: the stream ends with UNAUTHENTICATED and the agent exits 1, saying what to do.
    await again.clusters.revokeAgentAccess({ cluster: "edge-1" });
    expect(await resumed.exited).toBe(1);
    expect(resumed.log.some((line) => line.level === 60 && /refused the agent credential .*revoked.*new join token/.test(line.msg))).toBe(true);
  }, 150_000);

  it("rotates an ageing credential in place; refuses a used join token with the server's message (exit 1); starts nothing without a token, a credential or a writable credential file (exit 2)", async () => {
    const cp = clients(server!.url);
    const created = await cp.clusters.createCluster({ cluster: { name: "edge-2", pool: "prod" } });
    const joinToken = created.join!.joinToken;
    const first = startAgent("--control-plane", server!.url, "--join-token", joinToken, "--credential-file", join(dir, "edge-2.credential"));
    await first.waitForLog(/agent: joined cluster edge-2/);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    // A credential with less than a third of its life left is rotated at the first heartbeat,
    // the file rewritten in place (still 0600), and the agent goes on with the new one.
    const credentialFile = join(dir, "edge-2.credential");
    const kept = JSON.parse(readFileSync(credentialFile, "utf8")) as Record<string, string>;
    const lifetimeMs = 100 * 24 * 3600_000;
    writeFileSync(credentialFile, JSON.stringify({ ...kept, issueTime: new Date(Date.parse(kept.expireTime!) - lifetimeMs).toISOString() }), { mode: 0o600 });
    const rotating = startAgent("--control-plane", server!.url, "--credential-file", credentialFile, "--heartbeat", "500ms");
    await rotating.waitForLog(/agent: rotated the agent credential/);
    const rotated = JSON.parse(readFileSync(credentialFile, "utf8")) as Record<string, string>;
    expect(rotated.token).not.toBe(kept.token);
    expect(rotated.cluster).toBe("edge-2");
    expect(statSync(credentialFile).mode & 0o777).toBe(0o600);
    await rotating.waitForLog(/agent: pass done/);
    rotating.child.kill("SIGTERM");
    expect(await rotating.exited).toBe(0);
    expect(rotating.log.filter((line) => line.level >= 50)).toEqual([]);

    const second = startAgent("--control-plane", server!.url, "--join-token", joinToken, "--credential-file", join(dir, "other.credential"));
    expect(await second.exited).toBe(1);
    const refusal = second.log.find((line) => line.level === 60)?.msg ?? "";
    expect(refusal).toMatch(/the control plane refused the join token: .*already used/);
    expect(refusal).toMatch(/create join-token --cluster edge-2/);

    const nothing = startAgent("--control-plane", server!.url, "--credential-file", join(dir, "none.credential"));
    expect(await nothing.exited).toBe(2);
    expect(nothing.log.find((line) => line.level === 60)?.msg).toMatch(/no agent credential in .* and no join token was given/);

    const unwritable = startAgent("--control-plane", server!.url, "--join-token", "cpjoin_unused", "--credential-file", "/nonexistent-dir/agent.credential");
    expect(await unwritable.exited).toBe(2);
    expect(unwritable.log.find((line) => line.level === 60)?.msg).toMatch(/cannot write the credential file .*the join token was not used/);

    const plain = startAgent("--control-plane", "http://clusterplane.example.com", "--join-token", "cpjoin_x");
    expect(await plain.exited).toBe(2);
    expect(plain.stderr()).toMatch(/plain http to another host/);
  }, 180_000);

  it("a killed agent takes its cluster out of routing after the grace; restarted, it brings it back", async () => {
    // The same database, served with a short grace.
    await server!.close();
    server = await startServer({ ...config, agents: { leaseGraceMs: 3_000 } }, pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }));
    const cp = clients(server.url);
    const created = await cp.clusters.createCluster({ cluster: { name: "edge-3", pool: "prod" } });
    await cp.ecl.createClusterLabel({ label: { name: "three", clusters: [{ cluster: "edge-3", weight: 1 }] } });
    await cp.ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "team1", domain: "staging", value: "three" } });
    const select = () => cp.ecl.selectCluster({ project: "team1", domain: "staging", executionId: "e3", target: { case: undefined } });
    const credentialFile = join(dir, "edge-3.credential");
    const agentArgs = ["--control-plane", server.url, "--credential-file", credentialFile, "--heartbeat", "500ms"];
    const first = startAgent(...agentArgs, "--join-token", created.join!.joinToken);
    await waitFor("routing to edge-3", async () => (await select().catch(() => null))?.cluster === "edge-3", 30_000);

    first.child.kill("SIGKILL");
    await first.exited;
    await waitFor("edge-3 out of routing (agent silent)", async () => {
      const refused = await select().then(() => null, (error: Error) => error);
      return refused !== null && /agent silent since/.test(refused.message);
    }, 30_000);
    const reachable = (await cp.clusters.getCluster({ name: "edge-3" })).cluster!.conditions.find((c) => c.type === "Reachable");
    expect(reachable).toMatchObject({ status: ConditionStatus.FALSE, reason: "AgentSilent" });

    startAgent(...agentArgs);
    await waitFor("routing to edge-3 again", async () => (await select().catch(() => null))?.cluster === "edge-3", 30_000);
  }, 90_000);
});

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

interface AgentProcess {
  child: ChildProcess;
  log: LogLine[];
  exited: Promise<number | null>;
  stderr(): string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<LogLine>;
}

function startAgent(...args: string[]): AgentProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, CLUSTERPLANE_LOG_LEVEL: "info" };
  for (const name of ["KUBECONFIG", "KUBERNETES_SERVICE_HOST", "CLUSTERPLANE_JOIN_TOKEN", "CLUSTERPLANE_CONTROL_PLANE", "CLUSTERPLANE_AGENT_CREDENTIAL_FILE"]) delete env[name];
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "agent", "--kubeconfig", kubeconfig, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const log: LogLine[] = [];
  let stderr = "";
  let partial = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === "") continue;
      try {
        log.push(JSON.parse(line) as LogLine);
      } catch {
        log.push({ level: 0, msg: line });
      }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const agent: AgentProcess = {
    child,
    log,
    exited,
    stderr: () => stderr,
    async waitForLog(pattern, timeoutMs = 30_000) {
      let found: LogLine | undefined;
      await waitFor(`agent log ${pattern} (log so far: ${JSON.stringify(log.map((l) => l.msg))}; stderr: ${stderr})`, () => {
        found = log.find((line) => pattern.test(line.msg));
        return found !== undefined || child.exitCode !== null;
      }, timeoutMs);
      if (!found) throw new Error(`the agent exited (${child.exitCode}) before logging ${pattern}: ${JSON.stringify(log.map((l) => l.msg))} ${stderr}`);
      return found;
    },
  };
  agents.push(agent);
  return agent;
}

function clients(url: string) {
  const transport = createGrpcTransport({ baseUrl: url, interceptors: [bearer(admin.token)] });
  return {
    pools: createClient(ClusterPoolService, transport),
    clusters: createClient(ClusterService, transport),
    projects: createClient(ProjectService, transport),
    ecl: createClient(ExecutionClusterLabelService, transport),
  };
}

/** A kubeconfig as `kubectl config view --raw` writes one for a service-account token. */
function kubeconfigFor(apiServer: StandInApiServer): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: stand-in",
    "  cluster:",
    `    server: ${apiServer.url}`,
    `    certificate-authority-data: ${Buffer.from(apiServer.caCertPem).toString("base64")}`,
    "users:",
    "- name: agent",
    "  user:",
    `    token: ${apiServer.token}`,
    "contexts:",
    "- name: stand-in",
    "  context: { cluster: stand-in, user: agent }",
    "current-context: stand-in",
    "",
  ].join("\n");
}
