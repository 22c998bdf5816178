import { create } from "@bufbuild/protobuf";
import {
  ClusterPoolSchema,
  SecretStoreType,
  type ClusterPool,
} from "../../gen/clusterplane/v1/cluster_pool_pb.js";

/** The pool manifest of the cluster-pools seed, as a message. */
export function seedProdPool(overrides: Partial<ClusterPool> = {}): ClusterPool {
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
