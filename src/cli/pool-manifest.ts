/**
 * The seed's cluster-pool manifest (snake_case keys, short secret-store type names), shared by
 * the CLI (`get cluster-pool -o yaml --manifest`, `create --edit`) and the web console's editor.
 * It imports only the contract, so the console bundles it without the rest of the CLI.
 */
import { SecretStoreTypeSchema, type ClusterPool } from "../../gen/clusterplane/v1/cluster_pool_pb.js";

/** The secret-store types a manifest may name. */
export const SECRET_STORE_TYPES = SecretStoreTypeSchema.values.filter((v) => v.number !== 0).map((v) => v.localName);

/** A stored pool as the manifest shows it (without its org, which the caller adds if it wants). */
export function poolManifestOf(pool: ClusterPool) {
  const config = pool.config;
  const type = SecretStoreTypeSchema.values.find((v) => v.number === (config?.secretStore?.type ?? 0));
  return {
    name: pool.name,
    config: {
      object_store_ref: { uri: config?.objectStoreRef?.uri ?? "", endpoint: config?.objectStoreRef?.endpoint ?? "" },
      secret_store: { type: type && type.number !== 0 ? type.localName : "", locator: config?.secretStore?.locator ?? "" },
      image_registry: { locator: config?.imageRegistry?.locator ?? "" },
    },
  };
}

/** A commented manifest for a new pool. */
export function poolManifestTemplate(name: string): string {
  return `# A cluster pool: clusters sharing one object store, secret store and image registry.
name: ${name || "prod"}
config:
  object_store_ref:
    # Required. Bucket URI with a scheme: s3://, gs://, abfs://, ...
    uri: s3://my-prod-bucket/prefix
    # Custom endpoint of an S3-compatible store (MinIO); empty for the provider's own.
    endpoint: ""
  secret_store:
    # Required. One of ${SECRET_STORE_TYPES.join(", ")}.
    type: AWS_SECRETS_MANAGER
    # Region, project id, vault URI or address, or namespace, depending on the type.
    locator: us-east-1
  image_registry:
    # Optional. Registry and repository prefix workloads pull from.
    locator: 123456789012.dkr.ecr.us-east-1.amazonaws.com/union
`;
}
