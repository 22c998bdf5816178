import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  ClusterPoolConfigSchema,
  ClusterPoolService,
  SecretStoreType,
} from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { failure, fieldsOf } from "../support/errors.js";
import { inMemoryClient, snapshot, tempStores, type TempStores } from "../support/stores.js";
import { seedCluster, seedProdPool } from "../support/fixtures.js";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { testEngines } from "../support/engines.js";

// Every test here runs on each engine (PostgreSQL only when reachable; see test/support/engines.ts).
describe.each(testEngines())("on $name", (engine) => {
  let stores: TempStores;
  let client: ReturnType<typeof inMemoryClient<typeof ClusterPoolService>>;

  beforeEach(async () => {
    stores = await tempStores(engine);
    client = inMemoryClient(ClusterPoolService, stores);
  });
  afterEach(() => stores.cleanup());

  describe("ClusterPoolService", () => {
    it("creates the seed's pool and reads it back", async () => {
      const { clusterPool } = await client.createClusterPool({ clusterPool: seedProdPool() });
      expect(clusterPool?.name).toBe("prod");
      expect(clusterPool?.etag).not.toBe("");
      const got = await client.getClusterPool({ name: "prod" });
      expect(got.clusterPool?.config?.objectStoreRef?.uri).toBe("s3://my-prod-bucket/prefix");
      expect(got.clusterPool?.config?.secretStore?.type).toBe(SecretStoreType.AWS_SECRETS_MANAGER);
      expect(got.clusterPool?.config?.imageRegistry?.locator).toBe(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/union",
      );
      expect(got.clusterPool?.memberClusters).toEqual([]);
    });

    it("provisions the default pool of every organization on first use", async () => {
      const { clusterPools } = await client.listClusterPools({ org: "acme" });
      expect(clusterPools.map((p) => [p.org, p.name])).toEqual([["acme", "default"]]);
      expect((await client.getClusterPool({ name: "default" })).clusterPool?.name).toBe("default");
    });

    it("answers reads with the default pool without writing it; the first write stores it", async () => {
      const before = await snapshot(stores);
      expect((await client.getClusterPool({ org: "fresh", name: "default" })).clusterPool?.name).toBe("default");
      expect((await client.listClusterPools({ org: "fresh" })).clusterPools.map((p) => p.name)).toEqual(["default"]);
      await failure(client.createClusterPool({ clusterPool: seedProdPool({ org: "fresh", config: undefined }) }));
      expect(await snapshot(stores)).toEqual(before);
      await client.createClusterPool({ clusterPool: seedProdPool({ org: "fresh" }) });
      expect((await stores.pools.list("fresh", { size: 10, after: null })).items.map((pool) => pool.memberClusters.length >= 0 && pool.name)).toEqual(["default", "prod"]);
    });

    it("keeps organizations apart", async () => {
      await client.createClusterPool({ clusterPool: seedProdPool({ org: "acme" }) });
      expect((await failure(client.getClusterPool({ name: "prod" }))).code).toBe(Code.NotFound);
      expect((await client.getClusterPool({ org: "acme", name: "prod" })).clusterPool?.org).toBe("acme");
    });

    it("rejects a second pool of the same name", async () => {
      await client.createClusterPool({ clusterPool: seedProdPool() });
      const before = await snapshot(stores);
      const error = await failure(client.createClusterPool({ clusterPool: seedProdPool() }));
      expect(error.code).toBe(Code.AlreadyExists);
      expect(await snapshot(stores)).toEqual(before);
    });

    it.each([
      ["missing pool", { clusterPool: undefined }, ["cluster_pool"]],
      ["bad name", { clusterPool: seedProdPool({ name: "Prod_1" }) }, ["cluster_pool.name"]],
      ["bad org", { clusterPool: seedProdPool({ org: "ACME" }) }, ["cluster_pool.org"]],
      ["missing config", { clusterPool: seedProdPool({ config: undefined }) }, ["cluster_pool.config"]],
      [
        "uri without scheme, no secret store",
        { clusterPool: seedProdPool({ config: create(ClusterPoolConfigSchema, { objectStoreRef: { uri: "bucket" } }) }) },
        ["cluster_pool.config.object_store_ref.uri", "cluster_pool.config.secret_store.type"],
      ],
      [
        "unknown secret store type",
        {
          clusterPool: seedProdPool({
            config: create(ClusterPoolConfigSchema, {
              objectStoreRef: { uri: "s3://b" },
              secretStore: { type: 42 as SecretStoreType },
            }),
          }),
        },
        ["cluster_pool.config.secret_store.type"],
      ],
    ])("rejects bad input (%s) with INVALID_ARGUMENT naming the field, changing nothing", async (_, request, fields) => {
      const before = await snapshot(stores);
      const error = await failure(client.createClusterPool(request));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(fieldsOf(error)).toEqual(fields);
      expect(await snapshot(stores)).toEqual(before);
    });

    it("replaces the config on update and moves the etag", async () => {
      const created = (await client.createClusterPool({ clusterPool: seedProdPool() })).clusterPool!;
      const config = create(ClusterPoolConfigSchema, {
        objectStoreRef: { uri: "gs://other" },
        secretStore: { type: SecretStoreType.VAULT, locator: "https://vault:8200" },
      });
      const { clusterPool } = await client.updateClusterPool({
        clusterPool: { ...seedProdPool(), config, etag: created.etag },
      });
      expect(clusterPool?.config?.objectStoreRef?.uri).toBe("gs://other");
      expect(clusterPool?.config?.imageRegistry).toBeUndefined();
      expect(clusterPool?.etag).not.toBe(created.etag);
      expect(clusterPool?.createTime).toEqual(created.createTime);
    });

    it("rejects an update with a stale etag with ABORTED, changing nothing", async () => {
      const created = (await client.createClusterPool({ clusterPool: seedProdPool() })).clusterPool!;
      await client.updateClusterPool({ clusterPool: seedProdPool() });
      const before = await snapshot(stores);
      const error = await failure(client.updateClusterPool({ clusterPool: { ...seedProdPool(), etag: created.etag } }));
      expect(error.code).toBe(Code.Aborted);
      expect(await snapshot(stores)).toEqual(before);
    });

    it("answers NOT_FOUND for a pool that does not exist", async () => {
      expect((await failure(client.getClusterPool({ name: "nope" }))).code).toBe(Code.NotFound);
      expect((await failure(client.updateClusterPool({ clusterPool: seedProdPool({ name: "nope" }) }))).code).toBe(
        Code.NotFound,
      );
      expect((await failure(client.deleteClusterPool({ name: "nope" }))).code).toBe(Code.NotFound);
    });

    it("never deletes the default pool", async () => {
      const error = await failure(client.deleteClusterPool({ name: "default" }));
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toContain("default cluster pool cannot be deleted");
    });

    it("derives member clusters from registrations and refuses to delete a referenced pool", async () => {
      await client.createClusterPool({ clusterPool: seedProdPool() });
      const clusters = inMemoryClient(ClusterService, stores);
      await clusters.createCluster({ cluster: seedCluster("prod-us-east-1", "prod") });
      const pool = (await client.getClusterPool({ name: "prod" })).clusterPool!;
      expect(pool.memberClusters).toEqual(["prod-us-east-1"]);
      const listed = (await client.listClusterPools({})).clusterPools.find((p) => p.name === "prod");
      expect(listed?.memberClusters).toEqual(["prod-us-east-1"]);

      const before = await snapshot(stores);
      const error = await failure(client.deleteClusterPool({ name: "prod" }));
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toContain('cluster(s) "prod-us-east-1"');
      expect(error.rawMessage).toContain('queue(s) "prod-us-east-1"');
      expect(await snapshot(stores)).toEqual(before);

      await clusters.drainCluster({ name: "prod-us-east-1" });
      await clusters.deleteCluster({ name: "prod-us-east-1" });
      await client.deleteClusterPool({ name: "prod" });
      expect((await failure(client.getClusterPool({ name: "prod" }))).code).toBe(Code.NotFound);
    });

    it("deletes only with a matching etag when one is given", async () => {
      const created = (await client.createClusterPool({ clusterPool: seedProdPool() })).clusterPool!;
      expect((await failure(client.deleteClusterPool({ name: "prod", etag: "stale" }))).code).toBe(Code.Aborted);
      await client.deleteClusterPool({ name: "prod", etag: created.etag });
    });

    it("pages through pools in name order", async () => {
      for (const name of ["c", "a", "e", "b", "d"]) {
        await client.createClusterPool({ clusterPool: seedProdPool({ name }) });
      }
      const names: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = await client.listClusterPools({ pageSize: 2, pageToken });
        names.push(...page.clusterPools.map((p) => p.name));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken);
      expect(names).toEqual(["a", "b", "c", "d", "default", "e"]);
      expect(pages).toBe(3);
      const error = await failure(client.listClusterPools({ pageSize: 2, pageToken: "garbage" }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(fieldsOf(error)).toEqual(["page_token"]);
    });
  });
});
