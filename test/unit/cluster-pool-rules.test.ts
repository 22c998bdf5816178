import { describe, expect, it } from "vitest";
import { checkClusterPoolConfig, EMPTY_POOL_CONFIG, type ClusterPoolConfig } from "../../src/core/cluster-pool.js";
import { DomainError, Violations } from "../../src/core/errors.js";

const valid: ClusterPoolConfig = {
  objectStoreUri: "s3://my-prod-bucket/prefix",
  objectStoreEndpoint: "",
  secretStoreType: "AWS_SECRETS_MANAGER",
  secretStoreLocator: "us-east-1",
  imageRegistryLocator: "123456789012.dkr.ecr.us-east-1.amazonaws.com/union",
};

function violationsOf(config: ClusterPoolConfig) {
  const violations = new Violations();
  checkClusterPoolConfig(config, "config", violations);
  try {
    violations.throwIfAny();
    return [];
  } catch (error) {
    return (error as DomainError).violations;
  }
}

describe("cluster pool config rules", () => {
  it("accepts the seed's manifest", () => {
    expect(violationsOf(valid)).toEqual([]);
  });

  it.each(["s3://b", "gs://bucket/x", "abfs://c@acct.dfs.core.windows.net/p", "oci://ns/bucket"])(
    "accepts object store uri %s",
    (uri) => expect(violationsOf({ ...valid, objectStoreUri: uri })).toEqual([]),
  );

  it.each(["my-bucket", "s3:/bucket", "://bucket", "s3://"])("rejects object store uri %j", (uri) => {
    expect(violationsOf({ ...valid, objectStoreUri: uri }).map((v) => v.field)).toEqual([
      "config.object_store_ref.uri",
    ]);
  });

  it("requires a uri and a secret store type, reporting both at once", () => {
    expect(violationsOf(EMPTY_POOL_CONFIG).map((v) => v.field)).toEqual([
      "config.object_store_ref.uri",
      "config.secret_store.type",
    ]);
  });

  it("allows an empty endpoint but not a malformed one", () => {
    expect(violationsOf({ ...valid, objectStoreEndpoint: "http://minio:9000" })).toEqual([]);
    expect(violationsOf({ ...valid, objectStoreEndpoint: "minio:9000" })[0]?.field).toBe(
      "config.object_store_ref.endpoint",
    );
  });

  it("keeps the image registry optional", () => {
    expect(violationsOf({ ...valid, imageRegistryLocator: "" })).toEqual([]);
  });
});
