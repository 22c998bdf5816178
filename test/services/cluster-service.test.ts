import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import {
  ClusterService,
  ClusterState,
  GetClusterResponseSchema,
} from "../../gen/clusterplane/v1/cluster_pb.js";
import { QueueService, QueueState } from "../../gen/clusterplane/v1/queue_pb.js";
import { failure, fieldsOf } from "../support/errors.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { inMemoryClient, rejectedUnchanged as rejectedUnchangedIn, tempStores, type TempStores } from "../support/stores.js";
import { testEngines } from "../support/engines.js";

// Every test here runs on each engine (PostgreSQL only when reachable; see test/support/engines.ts).
describe.each(testEngines())("on $name", (engine) => {
  let stores: TempStores;
  let clusters: ReturnType<typeof inMemoryClient<typeof ClusterService>>;
  let pools: ReturnType<typeof inMemoryClient<typeof ClusterPoolService>>;
  let queues: ReturnType<typeof inMemoryClient<typeof QueueService>>;

  beforeEach(async () => {
    stores = await tempStores(engine);
    clusters = inMemoryClient(ClusterService, stores);
    pools = inMemoryClient(ClusterPoolService, stores);
    queues = inMemoryClient(QueueService, stores);
    await pools.createClusterPool({ clusterPool: seedProdPool() });
  });
  afterEach(() => stores.cleanup());

  const rejectedUnchanged = (call: () => Promise<unknown>, code: Code) => rejectedUnchangedIn(stores, call, code);

  describe("registering a cluster", () => {
    it("joins the default pool when no pool is named, with its implicit queue", async () => {
      const { cluster } = await clusters.createCluster({ cluster: seedCluster("dataplane_1") });
      expect(cluster?.pool).toBe("default");
      expect(cluster?.state).toBe(ClusterState.ACTIVE);
      expect(cluster?.enabled).toBe(true);
      const { queue } = await queues.getQueue({ name: "dataplane_1" });
      expect(queue).toMatchObject({ pool: "default", clusters: ["dataplane_1"], clusterManaged: true, state: QueueState.ACTIVE });
      expect((await pools.getClusterPool({ name: "default" })).clusterPool?.memberClusters).toEqual(["dataplane_1"]);
    });

    it("joins the named pool and shows up in its member clusters", async () => {
      await clusters.createCluster({ cluster: seedCluster("prod-us-east-1", "prod") });
      expect((await pools.getClusterPool({ name: "prod" })).clusterPool?.memberClusters).toEqual(["prod-us-east-1"]);
      expect((await queues.getQueue({ name: "prod-us-east-1" })).queue?.pool).toBe("prod");
    });

    it("keeps enabled: false and defaults an unset enabled to true", async () => {
      const off = await clusters.createCluster({ cluster: seedCluster("off", "", { enabled: false }) });
      expect(off.cluster?.enabled).toBe(false);
      const unset = await clusters.createCluster({ cluster: seedCluster("unset", "", { enabled: undefined }) });
      expect(unset.cluster?.enabled).toBe(true);
    });

    it("accepts in-cluster auth without an endpoint", async () => {
      const { cluster } = await clusters.createCluster({
        cluster: { name: "local", auth: { method: { case: "inCluster", value: {} } } },
      });
      expect(cluster?.auth?.method.case).toBe("inCluster");
    });

    it("registers a disabled cluster without an endpoint, but enables it only with one", async () => {
      const { cluster } = await clusters.createCluster({ cluster: seedCluster("later", "", { endpoint: "", enabled: false }) });
      expect(cluster).toMatchObject({ endpoint: "", enabled: false });
      const error = await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: { name: "later", enabled: true }, updateMask: { paths: ["enabled"] } }),
        Code.InvalidArgument,
      );
      expect(error.rawMessage).toContain("required to enable a cluster");
      const enabled = await clusters.updateCluster({
        cluster: { name: "later", enabled: true, endpoint: "https://later.example.com:443" },
        updateMask: { paths: ["enabled", "endpoint"] },
      });
      expect(enabled.cluster).toMatchObject({ enabled: true, endpoint: "https://later.example.com:443" });
    });

    it("rejects the same name in the same pool with ALREADY_EXISTS", async () => {
      await clusters.createCluster({ cluster: seedCluster("prod-us-east-1", "prod") });
      await rejectedUnchanged(() => clusters.createCluster({ cluster: seedCluster("prod-us-east-1", "prod") }), Code.AlreadyExists);
    });

    it("rejects the same name in another pool, saying how to move a cluster", async () => {
      await clusters.createCluster({ cluster: seedCluster("prod-us-east-1", "prod") });
      const error = await rejectedUnchanged(
        () => clusters.createCluster({ cluster: seedCluster("prod-us-east-1") }),
        Code.FailedPrecondition,
      );
      expect(error.rawMessage).toMatch(/drain.*delete.*register it again into pool "default"/);
    });

    it("shares one set of names with queues, both ways", async () => {
      await queues.createQueue({ queue: { name: "gpu", clusters: ["*"] } });
      await rejectedUnchanged(() => clusters.createCluster({ cluster: seedCluster("gpu") }), Code.AlreadyExists);
      await clusters.createCluster({ cluster: seedCluster("dataplane_1") });
      await rejectedUnchanged(() => queues.createQueue({ queue: { name: "dataplane_1", clusters: ["*"] } }), Code.AlreadyExists);
    });

    it("rejects a pool that does not exist", async () => {
      const error = await rejectedUnchanged(
        () => clusters.createCluster({ cluster: seedCluster("c1", "nowhere") }),
        Code.FailedPrecondition,
      );
      expect(error.rawMessage).toContain('cluster pool "nowhere" does not exist');
    });

    it.each([
      ["no cluster", {}, ["cluster"]],
      ["bad name", { cluster: seedCluster("Dataplane1") }, ["cluster.name"]],
      ["bad pool", { cluster: seedCluster("c1", "Prod") }, ["cluster.pool"]],
      ["bad org", { cluster: { ...seedCluster("c1"), org: "-x" } }, ["cluster.org"]],
      ["no auth", { cluster: seedCluster("c1", "", { auth: undefined }) }, ["cluster.auth"]],
      ["http endpoint", { cluster: seedCluster("c1", "", { endpoint: "http://k8s:6443" }) }, ["cluster.endpoint"]],
      ["no endpoint", { cluster: seedCluster("c1", "", { endpoint: "" }) }, ["cluster.endpoint"]],
      [
        "relative credential paths",
        {
          cluster: seedCluster("c1", "", {
            auth: { method: { case: "bearerTokenFile", value: { tokenPath: "token", caCertPath: "" } } },
          }),
        },
        ["cluster.auth.bearer_token_file.token_path", "cluster.auth.bearer_token_file.ca_cert_path"],
      ],
    ])("rejects bad input (%s) with INVALID_ARGUMENT naming the fields", async (_, request, fields) => {
      const error = await rejectedUnchanged(() => clusters.createCluster(request), Code.InvalidArgument);
      expect(fieldsOf(error)).toEqual(fields);
    });

    it("stores and returns credential paths, never file contents", async () => {
      const dir = mkdtempSync(join(tmpdir(), "creds-"));
      writeFileSync(join(dir, "token"), "super-secret-token\n");
      writeFileSync(join(dir, "ca.crt"), "-----BEGIN CERTIFICATE-----secret-ca");
      await clusters.createCluster({
        cluster: seedCluster("c1", "", {
          auth: { method: { case: "bearerTokenFile", value: { tokenPath: join(dir, "token"), caCertPath: join(dir, "ca.crt") } } },
        }),
      });
      const response = await clusters.getCluster({ name: "c1" });
      const json = toJsonString(GetClusterResponseSchema, response);
      expect(json).toContain(join(dir, "token"));
      expect(json).not.toContain("super-secret-token");
      expect(json).not.toContain("secret-ca");
    });
  });

  describe("updating a cluster", () => {
    beforeEach(async () => {
      await clusters.createCluster({ cluster: seedCluster("prod-us-east-1", "prod") });
    });

    it("changes only the fields in the mask", async () => {
      const { cluster } = await clusters.updateCluster({
        cluster: seedCluster("prod-us-east-1", "", { endpoint: "https://new:443", enabled: false }),
        updateMask: { paths: ["endpoint"] },
      });
      expect(cluster?.endpoint).toBe("https://new:443");
      expect(cluster?.enabled).toBe(true);
      expect(cluster?.pool).toBe("prod");
    });

    it("changes endpoint, enabled and auth when the mask is empty", async () => {
      const rotated = { tokenPath: "/var/run/credentials/rotated_token", caCertPath: "/var/run/credentials/rotated_cacert" };
      const { cluster } = await clusters.updateCluster({
        cluster: seedCluster("prod-us-east-1", "", {
          endpoint: "https://new:443",
          enabled: false,
          auth: { method: { case: "bearerTokenFile", value: rotated } },
        }),
      });
      expect(cluster).toMatchObject({ endpoint: "https://new:443", enabled: false });
      expect(cluster?.auth?.method.value).toMatchObject(rotated);
    });

    it("refuses credential files outside the credential directories, and an endpoint with in-cluster auth", async () => {
      const stolen = { tokenPath: "/var/run/secrets/kubernetes.io/serviceaccount/token", caCertPath: "/var/run/credentials/../../../etc/ssl/ca.pem" };
      const error = await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: seedCluster("prod-us-east-1", "", { auth: { method: { case: "bearerTokenFile", value: stolen } } }) }),
        Code.InvalidArgument,
      );
      expect(fieldsOf(error)).toEqual(["cluster.auth.bearer_token_file.token_path", "cluster.auth.bearer_token_file.ca_cert_path"]);
      expect(error.rawMessage).toContain("outside the credential directories");
      const inCluster = await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: seedCluster("prod-us-east-1", "", { endpoint: "https://elsewhere:443", auth: { method: { case: "inCluster", value: {} } } }) }),
        Code.InvalidArgument,
      );
      expect(fieldsOf(inCluster)).toEqual(["cluster.endpoint"]);
    });

    it("leaves enabled alone when the mask is empty and enabled is unset", async () => {
      await clusters.updateCluster({ cluster: { name: "prod-us-east-1", enabled: false }, updateMask: { paths: ["enabled"] } });
      const { cluster } = await clusters.updateCluster({ cluster: seedCluster("prod-us-east-1", "", { enabled: undefined, endpoint: "https://moved:443" }) });
      expect(cluster).toMatchObject({ enabled: false, endpoint: "https://moved:443" });
    });

    it("never changes the pool", async () => {
      const error = await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: seedCluster("prod-us-east-1", "default") }),
        Code.FailedPrecondition,
      );
      expect(error.rawMessage).toContain("cannot move");
    });

    it("rejects unknown mask paths, bad values and stale etags", async () => {
      const bad = await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: seedCluster("prod-us-east-1"), updateMask: { paths: ["pool"] } }),
        Code.InvalidArgument,
      );
      expect(fieldsOf(bad)).toEqual(["update_mask.paths[0]"]);
      await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: seedCluster("prod-us-east-1", "", { endpoint: "ftp://x" }) }),
        Code.InvalidArgument,
      );
      await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: seedCluster("prod-us-east-1", "", { etag: "stale" }) }),
        Code.Aborted,
      );
      await rejectedUnchanged(() => clusters.updateCluster({ cluster: seedCluster("nope") }), Code.NotFound);
    });

    it("requires an endpoint once auth is no longer in-cluster", async () => {
      await clusters.updateCluster({
        cluster: seedCluster("prod-us-east-1", "", { endpoint: "", auth: { method: { case: "inCluster", value: {} } } }),
        updateMask: { paths: ["auth", "endpoint"] },
      });
      await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: seedCluster("prod-us-east-1", "", { endpoint: "https://x:443" }), updateMask: { paths: ["endpoint"] } }),
        Code.InvalidArgument,
      );
      await rejectedUnchanged(
        () => clusters.updateCluster({ cluster: seedCluster("prod-us-east-1"), updateMask: { paths: ["auth"] } }),
        Code.InvalidArgument,
      );
    });
  });

  describe("drain, activate and delete", () => {
    beforeEach(async () => {
      await clusters.createCluster({ cluster: seedCluster("prod-us-east-1", "prod") });
    });

    it("refuses to delete an ACTIVE cluster, saying to drain it first", async () => {
      const error = await rejectedUnchanged(() => clusters.deleteCluster({ name: "prod-us-east-1" }), Code.FailedPrecondition);
      expect(error.rawMessage).toContain("DrainCluster");
    });

    it("drains and activates idempotently; the implicit queue follows", async () => {
      expect((await clusters.drainCluster({ name: "prod-us-east-1" })).cluster?.state).toBe(ClusterState.DRAINED);
      expect((await clusters.drainCluster({ name: "prod-us-east-1" })).cluster?.state).toBe(ClusterState.DRAINED);
      expect((await queues.getQueue({ name: "prod-us-east-1" })).queue?.state).toBe(QueueState.DRAINED);
      expect((await clusters.activateCluster({ name: "prod-us-east-1" })).cluster?.state).toBe(ClusterState.ACTIVE);
      expect((await queues.getQueue({ name: "prod-us-east-1" })).queue?.state).toBe(QueueState.ACTIVE);
    });

    it("deletes a drained cluster together with its implicit queue", async () => {
      await clusters.drainCluster({ name: "prod-us-east-1" });
      await clusters.deleteCluster({ name: "prod-us-east-1" });
      expect((await failure(clusters.getCluster({ name: "prod-us-east-1" }))).code).toBe(Code.NotFound);
      expect((await failure(queues.getQueue({ name: "prod-us-east-1" }))).code).toBe(Code.NotFound);
      expect((await pools.getClusterPool({ name: "prod" })).clusterPool?.memberClusters).toEqual([]);
    });

    it("refuses to delete a cluster another queue still routes to, naming the queue", async () => {
      await queues.createQueue({ queue: { name: "batch", pool: "prod", clusters: ["prod-us-east-1"] } });
      await clusters.drainCluster({ name: "prod-us-east-1" });
      const error = await rejectedUnchanged(() => clusters.deleteCluster({ name: "prod-us-east-1" }), Code.FailedPrecondition);
      expect(error.rawMessage).toContain('queue(s) "batch"');
    });

    it("answers NOT_FOUND for unknown clusters and INVALID_ARGUMENT for bad names", async () => {
      expect((await failure(clusters.drainCluster({ name: "nope" }))).code).toBe(Code.NotFound);
      expect((await failure(clusters.deleteCluster({ name: "nope" }))).code).toBe(Code.NotFound);
      expect(fieldsOf(await failure(clusters.getCluster({ name: "" })))).toEqual(["name"]);
    });
  });

  describe("listing clusters", () => {
    beforeEach(async () => {
      await clusters.createCluster({ cluster: seedCluster("a", "prod") });
      await clusters.createCluster({ cluster: seedCluster("b", "", { enabled: false }) });
      await clusters.createCluster({ cluster: seedCluster("c") });
      await clusters.drainCluster({ name: "c" });
    });

    it("filters by pool, enabled and state", async () => {
      const names = async (request: Parameters<typeof clusters.listClusters>[0]) =>
        (await clusters.listClusters(request)).clusters.map((c) => c.name);
      expect(await names({})).toEqual(["a", "b", "c"]);
      expect(await names({ pool: "prod" })).toEqual(["a"]);
      expect(await names({ enabled: false })).toEqual(["b"]);
      expect(await names({ enabled: true })).toEqual(["a", "c"]);
      expect(await names({ state: ClusterState.DRAINED })).toEqual(["c"]);
    });

    it("pages, and refuses a token replayed with other filters", async () => {
      const first = await clusters.listClusters({ pageSize: 2 });
      expect(first.clusters.map((c) => c.name)).toEqual(["a", "b"]);
      const second = await clusters.listClusters({ pageSize: 2, pageToken: first.nextPageToken });
      expect(second.clusters.map((c) => c.name)).toEqual(["c"]);
      expect(second.nextPageToken).toBe("");
      const error = await failure(clusters.listClusters({ pageSize: 2, pageToken: first.nextPageToken, pool: "prod" }));
      expect(fieldsOf(error)).toEqual(["page_token"]);
    });
  });
});
