import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
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
    await clusters.createCluster({ cluster: seedCluster("prod-1", "prod") });
    await clusters.createCluster({ cluster: seedCluster("prod-2", "prod") });
    await clusters.createCluster({ cluster: seedCluster("dev-1") });
  });
  afterEach(() => stores.cleanup());

  const rejectedUnchanged = (call: () => Promise<unknown>, code: Code) => rejectedUnchangedIn(stores, call, code);

  describe("QueueService", () => {
    it("creates a queue over every cluster of a pool, or over named clusters of it", async () => {
      const all = await queues.createQueue({ queue: { name: "prod-all", pool: "prod", clusters: ["*"] } });
      expect(all.queue).toMatchObject({ pool: "prod", clusters: ["*"], state: QueueState.ACTIVE, clusterManaged: false });
      const some = await queues.createQueue({ queue: { name: "prod-gpu", pool: "prod", clusters: ["prod-2"] } });
      expect(some.queue?.clusters).toEqual(["prod-2"]);
      const dflt = await queues.createQueue({ queue: { name: "batch", clusters: ["*"] } });
      expect(dflt.queue?.pool).toBe("default");
    });

    it("never reaches outside its pool", async () => {
      const error = await rejectedUnchanged(
        () => queues.createQueue({ queue: { name: "mixed", pool: "prod", clusters: ["prod-1", "dev-1"] } }),
        Code.FailedPrecondition,
      );
      expect(error.rawMessage).toContain('cluster "dev-1" is in pool "default"');
      await queues.createQueue({ queue: { name: "gpu", pool: "prod", clusters: ["prod-1"] } });
      await rejectedUnchanged(
        () => queues.updateQueue({ queue: { name: "gpu", clusters: ["dev-1"] } }),
        Code.FailedPrecondition,
      );
      await rejectedUnchanged(
        () => queues.updateQueue({ queue: { name: "gpu", pool: "default", clusters: ["*"] } }),
        Code.FailedPrecondition,
      );
    });

    it("rejects unregistered clusters and unknown pools", async () => {
      const error = await rejectedUnchanged(
        () => queues.createQueue({ queue: { name: "q", pool: "prod", clusters: ["ghost"] } }),
        Code.FailedPrecondition,
      );
      expect(error.rawMessage).toContain('"ghost"');
      await rejectedUnchanged(() => queues.createQueue({ queue: { name: "q", pool: "nowhere", clusters: ["*"] } }), Code.FailedPrecondition);
    });

    it.each([
      ["no queue", {}, ["queue"]],
      ["no clusters", { queue: { name: "q", clusters: [] } }, ["queue.clusters"]],
      ["* with others", { queue: { name: "q", clusters: ["*", "prod-1"] } }, ["queue.clusters"]],
      ["duplicates", { queue: { name: "q", clusters: ["prod-1", "prod-1"] } }, ["queue.clusters[1]"]],
      ["bad cluster name", { queue: { name: "q", clusters: ["Prod 1"] } }, ["queue.clusters[0]"]],
      ["bad queue name", { queue: { name: "Q!", clusters: ["*"] } }, ["queue.name"]],
      ["bad pool", { queue: { name: "q", pool: "P", clusters: ["*"] } }, ["queue.pool"]],
    ])("rejects bad input (%s) with INVALID_ARGUMENT", async (_, request, fields) => {
      const error = await rejectedUnchanged(() => queues.createQueue(request), Code.InvalidArgument);
      expect(fieldsOf(error)).toEqual(fields);
    });

    it("replaces the selector on update, with etag checks", async () => {
      const created = (await queues.createQueue({ queue: { name: "gpu", pool: "prod", clusters: ["prod-1"] } })).queue!;
      const updated = (await queues.updateQueue({ queue: { name: "gpu", clusters: ["prod-1", "prod-2"], etag: created.etag } })).queue!;
      expect(updated.clusters).toEqual(["prod-1", "prod-2"]);
      await rejectedUnchanged(() => queues.updateQueue({ queue: { name: "gpu", clusters: ["*"], etag: created.etag } }), Code.Aborted);
    });

    it("leaves cluster-managed queues to their cluster", async () => {
      for (const call of [
        () => queues.updateQueue({ queue: { name: "prod-1", clusters: ["*"] } }),
        () => queues.drainQueue({ name: "prod-1" }),
        () => queues.activateQueue({ name: "prod-1" }),
        () => queues.deleteQueue({ name: "prod-1" }),
      ]) {
        const error = await rejectedUnchanged(call, Code.FailedPrecondition);
        expect(error.rawMessage).toContain('implicit queue of cluster "prod-1"');
      }
    });

    it("deletes a queue only once drained", async () => {
      await queues.createQueue({ queue: { name: "batch", pool: "prod", clusters: ["*"] } });
      const error = await rejectedUnchanged(() => queues.deleteQueue({ name: "batch" }), Code.FailedPrecondition);
      expect(error.rawMessage).toContain("DrainQueue");
      expect((await queues.drainQueue({ name: "batch" })).queue?.state).toBe(QueueState.DRAINED);
      expect((await queues.activateQueue({ name: "batch" })).queue?.state).toBe(QueueState.ACTIVE);
      await queues.drainQueue({ name: "batch" });
      await queues.deleteQueue({ name: "batch" });
      expect((await failure(queues.getQueue({ name: "batch" }))).code).toBe(Code.NotFound);
    });

    it("lists with pool and state filters, paged", async () => {
      await queues.createQueue({ queue: { name: "batch", pool: "prod", clusters: ["*"] } });
      await queues.drainQueue({ name: "batch" });
      const names = async (request: Parameters<typeof queues.listQueues>[0]) =>
        (await queues.listQueues(request)).queues.map((q) => q.name);
      expect(await names({})).toEqual(["batch", "dev-1", "prod-1", "prod-2"]);
      expect(await names({ pool: "prod" })).toEqual(["batch", "prod-1", "prod-2"]);
      expect(await names({ state: QueueState.DRAINED })).toEqual(["batch"]);
      const first = await queues.listQueues({ pageSize: 3 });
      expect((await queues.listQueues({ pageSize: 3, pageToken: first.nextPageToken })).queues.map((q) => q.name)).toEqual(["prod-2"]);
    });

    it("keeps a pool while a queue references it; deletes it once the queue is gone", async () => {
      await pools.createClusterPool({ clusterPool: seedProdPool({ name: "empty" }) });
      await queues.createQueue({ queue: { name: "waiting", pool: "empty", clusters: ["*"] } });
      const error = await rejectedUnchanged(() => pools.deleteClusterPool({ name: "empty" }), Code.FailedPrecondition);
      expect(error.rawMessage).toContain('queue(s) "waiting"');
      await queues.drainQueue({ name: "waiting" });
      await queues.deleteQueue({ name: "waiting" });
      await pools.deleteClusterPool({ name: "empty" });
    });
  });
});
