import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  ClusterPoolSchema,
  SecretStoreType,
  type ClusterPool,
} from "../../gen/clusterplane/v1/cluster_pool_pb.js";

/** The pool manifest of the cluster-pools seed, as a message. */
export function seedProdPool(overrides: Omit<MessageInitShape<typeof ClusterPoolSchema>, "$typeName"> = {}): ClusterPool {
  return create(ClusterPoolSchema, {
    name: "prod",
    config: {
      objectStoreRef: { uri: "s3://my-prod-bucket/prefix", endpoint: "" },
      secretStore: { type: SecretStoreType.AWS_SECRETS_MANAGER, locator: "us-east-1" },
      imageRegistry: { locator: "123456789012.dkr.ecr.us-east-1.amazonaws.com/union" },
    },
    ...overrides,
  });
}

/** A cluster registration as in the multi-cluster seed: token and CA files mounted from a Secret. */
export function seedCluster(name: string, pool = "", overrides: Record<string, unknown> = {}) {
  return {
    name,
    pool,
    endpoint: `https://${name.replace(/_/g, "-")}.example.com:443`,
    enabled: true,
    auth: {
      method: {
        case: "bearerTokenFile" as const,
        value: { tokenPath: `/var/run/credentials/${name}_token`, caCertPath: `/var/run/credentials/${name}_cacert` },
      },
    },
    ...overrides,
  };
}
