import { afterEach, describe, expect, it } from "vitest";
import http2 from "node:http2";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import {
  ChangeOperation,
  ResourceKind,
  WatchRequestSchema,
  WatchResponseSchema,
  WatchService,
  type WatchResponse,
} from "../../gen/clusterplane/v1/watch_pb.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { newToken, writeTokensFile } from "../support/auth.js";
import { waitFor } from "../support/wait.js";
import { join } from "node:path";

let servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  servers = [];
});

async function server(overrides: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const started = await startTestServer(overrides);
  servers.push(started);
  return started;
}

/** Reads a watch into `events` in the background until it ends; `ended` holds how. */
function collect(stream: AsyncIterable<WatchResponse>) {
  const events: WatchResponse[] = [];
  const ended = (async () => {
    try {
      for await (const event of stream) events.push(event);
      return null;
    } catch (error) {
      return ConnectError.from(error);
    }
  })();
  return { events, ended };
}

const changes = (events: WatchResponse[]) =>
  events.flatMap((e) => (e.event.case === "change" ? [e.event.value] : []));
const names = (events: WatchResponse[]) => changes(events).map((c) => `${ResourceKind[c.kind]} ${c.name} ${ChangeOperation[c.operation]}`);

const TRANSPORTS: Record<string, (baseUrl: string) => Transport> = {
  "gRPC (HTTP/2)": (baseUrl) => createGrpcTransport({ baseUrl }),
  "Connect (HTTP/1.1)": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  "Connect (HTTP/2)": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }),
  "gRPC-Web (HTTP/1.1)": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
};

describe("Watch", () => {
  it.each(Object.keys(TRANSPORTS))("over %s: the snapshot, its revision, then live changes in commit order", async (name) => {
    const s = await server();
    const transport = TRANSPORTS[name]!(s.url);
    const pools = createClient(ClusterPoolService, transport);
    const clusters = createClient(ClusterService, transport);
    await pools.createClusterPool({ clusterPool: seedProdPool() });
    await clusters.createCluster({ cluster: seedCluster("dataplane_1", "prod") });

    const abort = new AbortController();
    const watch = createClient(WatchService, transport);
    const { events, ended } = collect(watch.watch({ kinds: [ResourceKind.CLUSTER_POOL, ResourceKind.CLUSTER] }, { signal: abort.signal }));
    await waitFor("the snapshot", () => events.some((e) => e.event.case === "snapshotComplete"));
    expect(names(events)).toEqual(["CLUSTER_POOL default PUT", "CLUSTER_POOL prod PUT", "CLUSTER dataplane_1 PUT"]);
    const marker = events.find((e) => e.event.case === "snapshotComplete")!.event.value as { revision: bigint };
    const cluster = changes(events)[2]!;
    expect(cluster.resource.case === "cluster" && cluster.resource.value.endpoint).toBe("https://dataplane-1.example.com:443");
    expect(cluster.revision).toBeGreaterThan(0n);
    expect(marker.revision).toBeGreaterThanOrEqual(cluster.revision);

    await clusters.drainCluster({ name: "dataplane_1" });
    const got = await clusters.getCluster({ name: "dataplane_1" });
    await clusters.deleteCluster({ name: "dataplane_1", etag: got.cluster!.etag });
    await waitFor("the delete", () => changes(events).length >= 6).catch((error) => {
      throw new Error(`${error.message}: ${names(events).join(", ")}`);
    });
    const live = changes(events).slice(3);
    // The pool's member clusters changed with the delete: the pool comes again.
    expect(live.map((c) => [ResourceKind[c.kind], c.name, ChangeOperation[c.operation]])).toEqual([
      ["CLUSTER", "dataplane_1", "PUT"],
      ["CLUSTER", "dataplane_1", "DELETE"],
      ["CLUSTER_POOL", "prod", "PUT"],
    ]);
    expect(live[2]!.resource.case === "clusterPool" && live[2]!.resource.value.memberClusters).toEqual([]);
    // The drain's revision is the one the API now shows; the delete carries only the key.
    expect(live[0]!.revision).toBe(got.cluster!.revision);
    expect(live[1]!.revision).toBeGreaterThan(live[0]!.revision);
    expect(live[1]!.resource.case === "cluster" && live[1]!.resource.value.name).toBe("dataplane_1");
    abort.abort();
    await ended;
  });

  it("resumes after a restart from a revision without missing or repeating a change; a compacted revision is OUT_OF_RANGE", async () => {
    const first = await server();
    const projects = createClient(ProjectService, createGrpcTransport({ baseUrl: first.url }));
    const seen = (await projects.createProject({ project: { id: "team1" } })).project!.revision;
    await projects.createProject({ project: { id: "team2" } });
    await projects.archiveProject({ id: "team1" });
    await first.close();

    // The same database, a new process state: resume from the last revision the client saw.
    const second = await server({ databasePath: join(first.dir, "clusterplane.db"), changeLog: { retainEntries: 1, compactIntervalMs: 3_600_000 } });
    const watch = createClient(WatchService, createGrpcTransport({ baseUrl: second.url }));
    const abort = new AbortController();
    const { events } = collect(watch.watch({ kinds: [ResourceKind.PROJECT], sinceRevision: seen }, { signal: abort.signal }));
    await waitFor("the two later changes", () => changes(events).length === 2);
    expect(names(events)).toEqual(["PROJECT team2 PUT", "PROJECT team1 PUT"]);
    const archived = changes(events)[1]!;
    expect(archived.resource.case === "project" && archived.resource.value.state).toBe(2);
    abort.abort();

    await second.stores.changes.compact({ maxEntries: 1, maxAgeMs: 0 }, Date.now() + 1_000);
    const error = await collect(watch.watch({ sinceRevision: seen })).ended;
    expect(error?.code).toBe(Code.OutOfRange);
    expect(error?.rawMessage).toContain(`oldest revision a watch can resume from is ${await second.stores.changes.oldestResumable()}`);
  });

  it("ends with DEADLINE_EXCEEDED, not OK, when the caller's grpc-timeout passes", async () => {
    const s = await server();
    const session = http2.connect(s.url);
    try {
      const request = toBinary(WatchRequestSchema, create(WatchRequestSchema, { kinds: [ResourceKind.CLUSTER_POOL] }));
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, request.length]), request]);
      const stream = session.request({ ":method": "POST", ":path": "/clusterplane.v1.WatchService/Watch", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "300m" });
      const status = new Promise<string | undefined>((resolve) => {
        stream.on("trailers", (trailers) => resolve(String(trailers["grpc-status"])));
        stream.on("close", () => resolve(undefined));
      });
      stream.resume();
      stream.end(frame);
      expect(await status).toBe(String(Code.DeadlineExceeded));
    } finally {
      session.close();
    }
  });

  it("sends progress markers when idle, and ends cleanly when the server shuts down", async () => {
    const s = await server({ watch: { progressIntervalMs: 200 } });
    const watch = createClient(WatchService, createGrpcTransport({ baseUrl: s.url }));
    const { events, ended } = collect(watch.watch({}));
    await waitFor("two progress markers", () => events.filter((e) => e.event.case === "progress").length >= 2);
    await s.close();
    expect(await ended).toBeNull();
  });

  it("ends a consumer that cannot keep up with RESOURCE_EXHAUSTED instead of buffering without limit", async () => {
    const s = await server({ watch: { maxQueuedChanges: 20 } });
    const pools = createClient(ClusterPoolService, createConnectTransport({ baseUrl: s.url, httpVersion: "1.1" }));
    // A raw HTTP/2 client that stops reading: flow control stops the server's writes.
    const session = http2.connect(s.url);
    const stream = session.request({
      ":method": "POST",
      ":path": "/clusterplane.v1.WatchService/Watch",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const request = toBinary(WatchRequestSchema, create(WatchRequestSchema, {}));
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    Buffer.from(request).copy(frame, 5);
    stream.end(frame);
    let received = Buffer.alloc(0);
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("trailers", (headers) => (trailers = headers));
    const ended = new Promise((resolve) => stream.on("close", resolve));
    stream.once("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      stream.pause();
    });
    await waitFor("the first event", () => received.length > 0);
    const big = "x".repeat(20_000);
    for (let i = 0; i < 60; i++) {
      const pool = seedProdPool({ name: `pool-${i}` });
      pool.config!.objectStoreRef!.uri = `s3://bucket/${big}`;
      await pools.createClusterPool({ clusterPool: pool });
    }
    stream.on("data", (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    stream.resume();
    await ended;
    session.close();
    expect(trailers["grpc-status"]).toBe(String(Code.ResourceExhausted));
    // Whatever was delivered before the end is well-formed events.
    const first = fromBinary(WatchResponseSchema, received.subarray(5, 5 + received.readUInt32BE(1)));
    expect(first.event.case).toBeDefined();
  });

  it("needs the viewer role, and limits open streams per caller", async () => {
    const viewer = newToken("viewer", "console");
    const admin = newToken("admin", "ops");
    const dir = (await import("node:fs")).mkdtempSync(join((await import("node:os")).tmpdir(), "watch-auth-"));
    const tokensFile = join(dir, "tokens");
    writeTokensFile(tokensFile, [viewer, admin]);
    const as = (token: typeof viewer) => ({ authorization: `Bearer ${token.token}` });
    const s = await server({ auth: { tokensFile }, watch: { maxStreamsPerCaller: 2 } });
    const transport = createGrpcTransport({ baseUrl: s.url });
    const watch: Client<typeof WatchService> = createClient(WatchService, transport);
    expect((await collect(watch.watch({})).ended)?.code).toBe(Code.Unauthenticated);

    const abort = new AbortController();
    const open = [1, 2].map(() => collect(watch.watch({}, { headers: as(viewer), signal: abort.signal })));
    await waitFor("two snapshots", () => open.every(({ events }) => events.some((e) => e.event.case === "snapshotComplete")));
    expect((await collect(watch.watch({}, { headers: as(viewer) })).ended)?.code).toBe(Code.ResourceExhausted);
    // Another caller has its own allowance.
    const other = collect(watch.watch({}, { headers: as(admin), signal: abort.signal }));
    await waitFor("the admin's snapshot", () => other.events.some((e) => e.event.case === "snapshotComplete"));
    abort.abort();
    await Promise.all([...open, other].map(({ ended }) => ended));
    // Closed streams give their places back.
    const again = new AbortController();
    const third = collect(watch.watch({}, { headers: as(viewer), signal: again.signal }));
    await waitFor("a snapshot once the others closed", () => third.events.some((e) => e.event.case === "snapshotComplete"));
    again.abort();
    await third.ended;
  });

  it("refuses bad requests with INVALID_ARGUMENT and a revision from the future with OUT_OF_RANGE", async () => {
    const s = await server();
    const watch = createClient(WatchService, createConnectTransport({ baseUrl: s.url, httpVersion: "1.1" }));
    expect((await collect(watch.watch({ kinds: [ResourceKind.CLUSTER, ResourceKind.CLUSTER] })).ended)?.code).toBe(Code.InvalidArgument);
    expect((await collect(watch.watch({ kinds: [99 as ResourceKind] })).ended)?.code).toBe(Code.InvalidArgument);
    expect((await collect(watch.watch({ org: "Not An Org!" })).ended)?.code).toBe(Code.InvalidArgument);
    expect((await collect(watch.watch({ sinceRevision: 1_000_000n })).ended)?.code).toBe(Code.OutOfRange);
  });

  it("follows execution cluster labels, the default label and sync status by kind", async () => {
    const s = await server();
    const transport = createGrpcTransport({ baseUrl: s.url });
    const watch = createClient(WatchService, transport);
    const abort = new AbortController();
    const { events } = collect(
      watch.watch({ kinds: [ResourceKind.EXECUTION_CLUSTER_LABEL, ResourceKind.DEFAULT_CLUSTER_LABEL, ResourceKind.CLUSTER_SYNC_STATUS] }, { signal: abort.signal }),
    );
    await waitFor("the empty snapshot", () => events.some((e) => e.event.case === "snapshotComplete"));
    await createClient(ClusterService, transport).createCluster({ cluster: seedCluster("dataplane_1") });
    await createClient(ProjectService, transport).createProject({ project: { id: "project1" } });
    const ecl = createClient(ExecutionClusterLabelService, transport);
    await ecl.createClusterLabel({ label: { name: "label1", clusters: [{ cluster: "dataplane_1", weight: 1 }] } });
    await ecl.updateExecutionClusterLabel({ executionClusterLabel: { project: "project1", domain: "development", value: "label1" } });
    await ecl.setDefaultClusterLabel({ label: "label1" });
    await s.stores.sync.recordOutcome("", "dataplane_1", {
      startedAt: new Date(), finishedAt: new Date(), full: false, applied: 6, unchanged: 0, failure: null,
      objectsFailed: 0, objectFailures: [], templateErrors: [], desired: [], provisioned: [],
    });
    await ecl.deleteExecutionClusterLabel({ project: "project1", domain: "development" });
    await waitFor("five changes", () => changes(events).length === 4);
    expect(names(events)).toEqual([
      "EXECUTION_CLUSTER_LABEL project1/development// PUT",
      "DEFAULT_CLUSTER_LABEL  PUT",
      "CLUSTER_SYNC_STATUS dataplane_1 PUT",
      "EXECUTION_CLUSTER_LABEL project1/development// DELETE",
    ]);
    const sync = changes(events)[2]!.resource;
    expect(sync.case === "clusterSyncStatus" && sync.value.status?.objectsApplied).toBe(6);
    abort.abort();
  });
});
