import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ClusterPoolSchema,
  ClusterPoolService,
  SecretStoreType as SecretStoreTypeEnum,
  type ClusterPool as ClusterPoolMessage,
  type ClusterPoolConfig as ClusterPoolConfigMessage,
} from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import {
  checkClusterPoolConfig,
  type ClusterPool,
  type ClusterPoolConfig,
  type SecretStoreType,
} from "../core/cluster-pool.js";
import { Violations } from "../core/errors.js";
import { checkResourceName } from "../core/names.js";
import type { ClusterPoolRepository } from "../store/cluster-pool-repository.js";
import { checkNamedKey, checkOrgField, listPage, requireMessage, toTimestamp } from "./common.js";

/** ClusterPoolService: validates requests, then hands them to the pool repository. */
export function clusterPoolService(pools: ClusterPoolRepository): ServiceImpl<typeof ClusterPoolService> {
  return {
    async createClusterPool(request) {
      const { org, name, config } = checkPool(request.clusterPool, "cluster_pool");
      return { clusterPool: toPoolMessage(await pools.create(org, name, config)) };
    },

    async getClusterPool(request) {
      checkNamedKey(request.org, request.name);
      return { clusterPool: toPoolMessage(await pools.get(request.org, request.name)) };
    },

    async listClusterPools(request) {
      const { items, nextPageToken } = await listPage(request, {}, new Violations(), (page) => pools.list(request.org, page), toPoolMessage, (pool) => [pool.name]);
      return { clusterPools: items, nextPageToken };
    },

    async updateClusterPool(request) {
      const { org, name, config } = checkPool(request.clusterPool, "cluster_pool");
      const etag = request.clusterPool?.etag ?? "";
      return { clusterPool: toPoolMessage(await pools.update(org, name, config, etag)) };
    },

    async deleteClusterPool(request) {
      checkNamedKey(request.org, request.name);
      await pools.delete(request.org, request.name, request.etag);
      return {};
    },
  };
}

function checkPool(message: ClusterPoolMessage | undefined, field: string) {
  const pool = requireMessage(message, field);
  const violations = new Violations();
  const { org, name } = pool;
  const config = fromConfigMessage(pool.config);
  checkOrgField(org, `${field}.org`, violations);
  violations.add(`${field}.name`, checkResourceName(name));
  if (!pool.config) {
    violations.add(`${field}.config`, "is required: object_store_ref and secret_store");
  } else {
    const type = pool.config.secretStore?.type ?? SecretStoreTypeEnum.UNSPECIFIED;
    if (SecretStoreTypeEnum[type] === undefined) {
      violations.add(`${field}.config.secret_store.type`, `${type} is not a known secret store type`);
    }
    checkClusterPoolConfig(config, `${field}.config`, violations);
  }
  violations.throwIfAny();
  return { org, name, config };
}

function fromConfigMessage(config: ClusterPoolConfigMessage | undefined): ClusterPoolConfig {
  const type = config?.secretStore?.type ?? SecretStoreTypeEnum.UNSPECIFIED;
  return {
    objectStoreUri: config?.objectStoreRef?.uri ?? "",
    objectStoreEndpoint: config?.objectStoreRef?.endpoint ?? "",
    secretStoreType:
      type === SecretStoreTypeEnum.UNSPECIFIED ? "" : ((SecretStoreTypeEnum[type] ?? "") as SecretStoreType | ""),
    secretStoreLocator: config?.secretStore?.locator ?? "",
    imageRegistryLocator: config?.imageRegistry?.locator ?? "",
  };
}

export function toPoolMessage(pool: ClusterPool): ClusterPoolMessage {
  const { config } = pool;
  return create(ClusterPoolSchema, {
    org: pool.org,
    name: pool.name,
    config: {
      objectStoreRef: { uri: config.objectStoreUri, endpoint: config.objectStoreEndpoint },
      secretStore: {
        type: config.secretStoreType === "" ? SecretStoreTypeEnum.UNSPECIFIED : SecretStoreTypeEnum[config.secretStoreType],
        locator: config.secretStoreLocator,
      },
      imageRegistry: config.imageRegistryLocator ? { locator: config.imageRegistryLocator } : undefined,
    },
    memberClusters: pool.memberClusters,
    // A default pool nobody has written yet has no times of its own.
    createTime: pool.createTime.getTime() ? toTimestamp(pool.createTime) : undefined,
    updateTime: pool.updateTime.getTime() ? toTimestamp(pool.updateTime) : undefined,
    etag: pool.etag,
    revision: BigInt(pool.revision),
  });
}
