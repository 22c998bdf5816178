import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type Client } from "@connectrpc/connect";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterService, ClusterState } from "../../gen/clusterplane/v1/cluster_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import { connectClient, connectTransports, grpcJsAsConnectClient } from "../support/clients.js";
import { failure } from "../support/errors.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

interface Clients {
  pools: Client<typeof ClusterPoolService>;
  clusters: Client<typeof ClusterService>;
  queues: Client<typeof QueueService>;
  /** grpc-js decodes status messages its own way, so texts are compared on the Connect stacks only. */
  comparesMessages: boolean;
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const stacks: Record<string, () => Clients> = {
  "@grpc/grpc-js": () => ({
    pools: grpcJsAsConnectClient(ClusterPoolService, `127.0.0.1:${server.port}`),
    clusters: grpcJsAsConnectClient(ClusterService, `127.0.0.1:${server.port}`),
    queues: grpcJsAsConnectClient(QueueService, `127.0.0.1:${server.port}`),
    comparesMessages: false,
  }),
};
for (const name of Object.keys(connectTransports("http://unused"))) {
  stacks[name] = () => {
    const transport = connectTransports(server.url)[name]!;
    return {
      pools: connectClient(ClusterPoolService, transport),
      clusters: connectClient(ClusterService, transport),
      queues: connectClient(QueueService, transport),
      comparesMessages: true,
    };
  };
}

describe.each(Object.entries(stacks).map(([name, make], index) => ({ name, make, org: `org-${index}` })))(
  "the cluster-pools seed, end to end over $name",
  ({ make, org }) => {
    it("creates prod, registers a cluster, refuses the wrong deletes and moves, then cleans up", async () => {
      const { pools, clusters, queues, comparesMessages } = make();

      // flyte create cluster-pool prod --file prod-pool.yaml
      await pools.createClusterPool({ clusterPool: seedProdPool({ org }) });
      // flyte create cluster prod-us-east-1 --pool prod
      await clusters.createCluster({ cluster: { ...seedCluster("prod-us-east-1", "prod"), org } });
      // flyte get cluster-pool prod
      const prod = (await pools.getClusterPool({ org, name: "prod" })).clusterPool!;
      expect(prod.memberClusters).toEqual(["prod-us-east-1"]);
      expect(prod.config?.secretStore?.locator).toBe("us-east-1");

      // flyte delete cluster-pool prod: still referenced by the cluster and its implicit queue
      const stillUsed = await failure(pools.deleteClusterPool({ org, name: "prod" }));
      expect(stillUsed.code).toBe(Code.FailedPrecondition);
      if (comparesMessages) {
        expect(stillUsed.rawMessage).toContain('cluster(s) "prod-us-east-1"');
        expect(stillUsed.rawMessage).toContain('queue(s) "prod-us-east-1"');
      }

      // A registration naming another pool is rejected: moving is drain, delete, re-register.
      const moved = await failure(clusters.createCluster({ cluster: { ...seedCluster("prod-us-east-1", "default"), org } }));
      expect(moved.code).toBe(Code.FailedPrecondition);
      if (comparesMessages) expect(moved.rawMessage).toContain("drain it (DrainCluster), delete it (DeleteCluster)");

      expect((await failure(clusters.deleteCluster({ org, name: "prod-us-east-1" }))).code).toBe(Code.FailedPrecondition);
      const drained = await clusters.drainCluster({ org, name: "prod-us-east-1" });
      expect(drained.cluster?.state).toBe(ClusterState.DRAINED);
      await clusters.deleteCluster({ org, name: "prod-us-east-1" });
      const reRegistered = await clusters.createCluster({ cluster: { ...seedCluster("prod-us-east-1", ""), org } });
      expect(reRegistered.cluster?.pool).toBe("default");
      expect((await queues.getQueue({ org, name: "prod-us-east-1" })).queue?.pool).toBe("default");

      await pools.deleteClusterPool({ org, name: "prod" });
      const remaining = (await pools.listClusterPools({ org })).clusterPools;
      expect(remaining.map((p) => [p.name, p.memberClusters])).toEqual([["default", ["prod-us-east-1"]]]);
      expect((await failure(pools.deleteClusterPool({ org, name: "default" }))).code).toBe(Code.FailedPrecondition);
    });

    it("answers bad input with INVALID_ARGUMENT and never INTERNAL", async () => {
      const { clusters, queues } = make();
      for (const call of [
        () => clusters.createCluster({ cluster: { ...seedCluster("c1"), org, endpoint: "not a url" } }),
        () => clusters.createCluster({}),
        () => clusters.listClusters({ org, pageSize: -5 }),
        () => queues.createQueue({ queue: { org, name: "q", clusters: [] } }),
        () => queues.getQueue({ org, name: "" }),
      ]) {
        expect((await failure(call())).code).toBe(Code.InvalidArgument);
      }
    });
  },
);
