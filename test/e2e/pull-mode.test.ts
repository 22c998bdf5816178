import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService, type WatchDesiredStateResponse } from "../../gen/clusterplane/v1/agent_pb.js";
import { ClusterMode, ClusterService, ConditionStatus } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import { WatchService } from "../../gen/clusterplane/v1/watch_pb.js";
import { DEFAULT_SYNC_SETTINGS } from "../../src/sync/sync-settings.js";
import { bearer, newToken, writeTokensFile } from "../support/auth.js";
import { seedProdPool } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { waitFor } from "../support/wait.js";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const admin = newToken("admin");

async function start(leaseGraceMs = 40_000): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "pull-mode-"));
  const tokensFile = join(dir, "tokens");
  writeTokensFile(tokensFile, [admin]);
  server = await startTestServer({
    auth: { tokensFile },
    sync: { ...DEFAULT_SYNC_SETTINGS, enabled: true },
    agents: { leaseGraceMs },
  });
  return server;
}

function clientsAs(url: string, token: string) {
  const interceptors: Interceptor[] = [bearer(token)];
  const transport = createGrpcTransport({ baseUrl: url, interceptors });
  return {
    pools: createClient(ClusterPoolService, transport),
    clusters: createClient(ClusterService, transport),
    queues: createClient(QueueService, transport),
    projects: createClient(ProjectService, transport),
    ecl: createClient(ExecutionClusterLabelService, transport),
    watch: createClient(WatchService, transport),
    agent: createClient(AgentService, transport),
  };
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (error: unknown) => ConnectError.from(error),
  );
}

/** Registers pull cluster `name`, joins it, and returns the agent's clients. */
async function joinedAgent(url: string, name: string) {
  const asAdmin = clientsAs(url, admin.token);
  const created = await asAdmin.clusters.createCluster({ cluster: { name, pool: "prod" } });
  const joined = await clientsAs(url, "").agent.joinCluster({ joinToken: created.join!.joinToken, agentVersion: "test-1" });
  return { created, joined, asAgent: clientsAs(url, joined.credential!.token) };
}

/** A report of a pass that provisioned every project-domain of `state`. */
function cleanReport(state: WatchDesiredStateResponse) {
  const now = new Date();
  return {
    digest: state.digest,
    startTime: timestampFromDate(now),
    finishTime: timestampFromDate(now),
    applied: state.objects.map(({ key, hash }) => ({ key, hash })),
    provisioned: state.projectDomains,
    agentVersion: "test-1",
  };
}

describe("pull-mode clusters", () => {
  it("registers with the seed's command shape, joins once, streams its desired state, reports and is routed to", async () => {
    const { url } = await start();
    const asAdmin = clientsAs(url, admin.token);
    await asAdmin.pools.createClusterPool({ clusterPool: seedProdPool() });
    await asAdmin.projects.createProject({ project: { id: "team1" } });

    const created = await asAdmin.clusters.createCluster({ cluster: { name: "prod-us-east-1", pool: "prod" } });
    expect(created.cluster!.mode).toBe(ClusterMode.PULL);
    expect(created.cluster!.auth!.method.case).toBe("agent");
    expect(created.join!.joinToken).toMatch(/^cpjoin_/);
    expect(created.join!.agentCommand).toBe(`clusterplane agent --control-plane ${url} --join-token ${created.join!.joinToken}`);
    await asAdmin.ecl.createClusterLabel({ label: { name: "east", clusters: [{ cluster: "prod-us-east-1", weight: 1 }] } });
    await asAdmin.ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "team1", domain: "production", value: "east" } });
    const select = () => asAdmin.ecl.selectCluster({ project: "team1", domain: "production", executionId: "e1", target: { case: undefined } });
    expect((await failure(select())).rawMessage).toMatch(/waiting for its agent/);

    const anonymous = clientsAs(url, "").agent;
    const joined = await anonymous.joinCluster({ joinToken: created.join!.joinToken, agentVersion: "test-1" });
    expect(joined.cluster).toBe("prod-us-east-1");
    const again = await failure(anonymous.joinCluster({ joinToken: created.join!.joinToken }));
    expect(again.code).toBe(Code.Unauthenticated);
    expect(again.rawMessage).toMatch(/already used .* join tokens are single-use: issue a new one with `clusterplane create join-token --cluster prod-us-east-1`/);

    const asAgent = clientsAs(url, joined.credential!.token);
    const abort = new AbortController();
    const stream = asAgent.agent.watchDesiredState({}, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = (await stream.next()).value as WatchDesiredStateResponse;
    expect(first.objects.map((o) => o.key)).toContain("v1/Namespace//team1-production");
    expect(first.projectDomains).toHaveLength(3);

    await asAgent.agent.reportStatus(cleanReport(first));
    const cluster = (await asAdmin.clusters.getCluster({ name: "prod-us-east-1" })).cluster!;
    expect(cluster.conditions.find((c) => c.type === "Reachable")?.status).toBe(ConditionStatus.TRUE);
    expect(cluster.agent?.version).toBe("test-1");
    expect(cluster.syncStatus?.projectDomainsProvisioned).toBe(3);
    await waitFor("routing to the pull cluster", async () => (await select().catch(() => null))?.cluster === "prod-us-east-1", 10_000);

    // A new project reaches the open stream.
    await asAdmin.projects.createProject({ project: { id: "team2" } });
    const second = (await stream.next()).value as WatchDesiredStateResponse;
    expect(second.objects.map((o) => o.key)).toContain("v1/Namespace//team2-development");
    expect(second.appliedHashes[`v1/Namespace//team1-production`]).toBe(first.objects.find((o) => o.key === "v1/Namespace//team1-production")!.hash);
    abort.abort();

    // Reconnecting with the digest it has: nothing is re-sent until something changes.
    const resumed = asAgent.agent.watchDesiredState({ knownDigest: second.digest }, { signal: AbortSignal.timeout(30_000) })[Symbol.asyncIterator]();
    const nextMessage = resumed.next();
    await asAdmin.projects.createProject({ project: { id: "team3" } });
    const third = (await nextMessage).value as WatchDesiredStateResponse;
    expect(third.projectDomains.map((p) => p.project)).toContain("team3");
    await resumed.return?.();
  });

  it("refuses used, expired, revoked and unknown join tokens with a sentence that says what to do", async () => {
    const { url, stores } = await start();
    const asAdmin = clientsAs(url, admin.token);
    const anonymous = clientsAs(url, "").agent;
    await asAdmin.clusters.createCluster({ cluster: { name: "edge-1" } });
    const expired = await stores.agents.issueJoinToken("", "edge-1", 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await failure(anonymous.joinCluster({ joinToken: expired.token }))).rawMessage).toMatch(/this join token expired at .*; issue a new one/);
    const revoked = await asAdmin.clusters.createJoinToken({ cluster: "edge-1", ttlSeconds: 600 });
    // The one CreateCluster printed, the expired one and this one.
    expect((await asAdmin.clusters.revokeAgentAccess({ cluster: "edge-1" })).joinTokensRevoked).toBe(3);
    expect((await failure(anonymous.joinCluster({ joinToken: revoked.joinToken }))).rawMessage).toMatch(/was revoked/);
    expect((await failure(anonymous.joinCluster({ joinToken: "cpjoin_nope" }))).rawMessage).toMatch(/unknown join token/);
    const missing = await failure(anonymous.joinCluster({ joinToken: "" }));
    expect(missing.code).toBe(Code.InvalidArgument);

    // Join tokens are for pull clusters only, and their lifetime is bounded.
    await asAdmin.clusters.createCluster({ cluster: { name: "pushed", auth: { method: { case: "inCluster", value: {} } } } });
    const pushed = await failure(asAdmin.clusters.createJoinToken({ cluster: "pushed" }));
    expect(pushed.code).toBe(Code.FailedPrecondition);
    expect(pushed.rawMessage).toMatch(/push mode/);
    const ttl = await failure(asAdmin.clusters.createJoinToken({ cluster: "edge-1", ttlSeconds: 5 }));
    expect(ttl.code).toBe(Code.InvalidArgument);
    expect(ttl.rawMessage).toMatch(/ttl_seconds/);
  });

  it("gives an agent credential AgentService for its own cluster and nothing else", async () => {
    const { url } = await start();
    const asAdmin = clientsAs(url, admin.token);
    await asAdmin.pools.createClusterPool({ clusterPool: seedProdPool() });
    const one = await joinedAgent(url, "one");
    const two = await joinedAgent(url, "two");

    // Every method of every other service is refused to the agent credential.
    const denied: string[] = [];
    for (const [name, client] of Object.entries(one.asAgent) as [string, Client<never>][]) {
      if (name === "agent") continue;
      for (const method of Object.keys(client)) {
        const call = (client as unknown as Record<string, (request: object, options: object) => unknown>)[method]!({}, { signal: AbortSignal.timeout(10_000) });
        const outcome = await consume(call);
        if (outcome?.code === Code.PermissionDenied && /may not call/.test(outcome.rawMessage)) denied.push(`${name}.${method}`);
        else throw new Error(`${name}.${method} answered ${outcome ? outcome.code : "OK"} to an agent credential`);
      }
    }
    expect(denied.length).toBeGreaterThan(30);

    // Its reports change its own cluster only; the other's status is untouched.
    const state = (await one.asAgent.agent.watchDesiredState({})[Symbol.asyncIterator]().next()).value as WatchDesiredStateResponse;
    await one.asAgent.agent.reportStatus(cleanReport(state));
    expect((await asAdmin.clusters.getCluster({ name: "one" })).cluster!.syncStatus?.lastAttemptTime).toBeDefined();
    expect((await asAdmin.clusters.getCluster({ name: "two" })).cluster!.syncStatus?.lastAttemptTime).toBeUndefined();

    // Another identity cannot act as an agent, even an admin.
    const asAdminAgent = await failure(asAdmin.agent.renewLease({}));
    expect(asAdminAgent.code).toBe(Code.Unauthenticated);
    expect(asAdminAgent.rawMessage).toMatch(/agent credential/);

    // Revoking ends the cluster's open stream at once, and the credential with it.
    const stream = two.asAgent.agent.watchDesiredState({})[Symbol.asyncIterator]();
    await stream.next();
    const ending = stream.next();
    await asAdmin.clusters.revokeAgentAccess({ cluster: "two" });
    const ended = await ending.then(() => null, (error: unknown) => ConnectError.from(error));
    expect(ended?.code).toBe(Code.Unauthenticated);
    expect(ended?.rawMessage).toMatch(/revoked/);
    expect((await failure(two.asAgent.agent.renewLease({}))).rawMessage).toMatch(/revoked/);
    // Deleting a cluster ends its agent's access as well.
    await asAdmin.clusters.drainCluster({ name: "one" });
    await asAdmin.clusters.deleteCluster({ name: "one" });
    expect((await failure(one.asAgent.agent.renewLease({}))).code).toBe(Code.Unauthenticated);
  });

  it("takes a silent agent's cluster out of routing after the grace, and back when it renews", async () => {
    const { url } = await start(1_500);
    const asAdmin = clientsAs(url, admin.token);
    await asAdmin.pools.createClusterPool({ clusterPool: seedProdPool() });
    await asAdmin.projects.createProject({ project: { id: "team1" } });
    const { asAgent } = await joinedAgent(url, "quiet");
    await asAdmin.ecl.createClusterLabel({ label: { name: "q", clusters: [{ cluster: "quiet", weight: 1 }] } });
    await asAdmin.ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "team1", domain: "development", value: "q" } });
    const select = () => asAdmin.ecl.selectCluster({ project: "team1", domain: "development", executionId: "e1", target: { case: undefined } });
    const state = (await asAgent.agent.watchDesiredState({})[Symbol.asyncIterator]().next()).value as WatchDesiredStateResponse;
    await asAgent.agent.reportStatus(cleanReport(state));
    await waitFor("routing to quiet", async () => (await select().catch(() => null))?.cluster === "quiet", 10_000);

    // No renewal: within the grace and a check, Reachable=False with the reason, and no routing.
    await waitFor("the silence to be noticed", async () => {
      const reachable = (await asAdmin.clusters.getCluster({ name: "quiet" })).cluster!.conditions.find((c) => c.type === "Reachable");
      return reachable?.reason === "AgentSilent";
    }, 20_000);
    const refused = await failure(select());
    expect(refused.rawMessage).toMatch(/agent silent since/);

    const renewed = await asAgent.agent.renewLease({ agentVersion: "test-2" });
    expect(renewed.leaseSeconds).toBe(1);
    await waitFor("routing to quiet again", async () => (await select().catch(() => null))?.cluster === "quiet", 10_000);
  });
});

/** Runs a unary call or drains a stream; the error it ended with, or null. */
async function consume(call: unknown): Promise<ConnectError | null> {
  try {
    if (call && typeof (call as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") {
      for await (const _ of call as AsyncIterable<unknown>) break;
    } else {
      await call;
    }
    return null;
  } catch (error) {
    return ConnectError.from(error);
  }
}
