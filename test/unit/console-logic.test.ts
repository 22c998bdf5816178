import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ClusterMode, ClusterSchema, ClusterState, ConditionStatus, SyncHealth } from "../../gen/clusterplane/v1/cluster_pb.js";
import { SecretStoreType } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { clusterHealth, formatDuration, provisionedLabel } from "../../web/src/health.js";
import { lineOfField, NEW_POOL_TEMPLATE, parsePoolYaml, poolToYaml } from "../../web/src/pool-yaml.js";
import { seedProdPool } from "../support/fixtures.js";

const NOW = Date.parse("2026-01-01T12:00:00Z");

function cluster(init: Parameters<typeof create<typeof ClusterSchema>>[1] = {}) {
  return create(ClusterSchema, { name: "c", pool: "default", state: ClusterState.ACTIVE, mode: ClusterMode.PUSH, enabled: true, ...init });
}

const condition = (type: string, status: ConditionStatus, message = "") => ({ type, status, reason: `${type}Reason`, message, lastTransitionTime: timestampFromMs(NOW - 60_000) });

describe("the console's health of a cluster", () => {
  it("is healthy when every condition holds", () => {
    const c = cluster({
      conditions: [condition("Reachable", ConditionStatus.TRUE), condition("Authorized", ConditionStatus.TRUE), condition("Provisioned", ConditionStatus.TRUE), condition("Degraded", ConditionStatus.FALSE)],
      syncStatus: { health: SyncHealth.HEALTHY, projectDomainsProvisioned: 3, projectDomainsDesired: 3, lastAttemptTime: timestampFromMs(NOW) },
    });
    expect(clusterHealth(c, NOW)).toEqual({ level: "ok", label: "Healthy", reason: "" });
    expect(provisionedLabel(c)).toBe("3/3");
  });

  it("names the first thing wrong, in the condition's own sentence", () => {
    const c = cluster({
      conditions: [condition("Reachable", ConditionStatus.FALSE, "The API server did not answer within 10 s."), condition("Authorized", ConditionStatus.UNKNOWN)],
      syncStatus: { health: SyncHealth.FAILING, lastError: "connect ECONNREFUSED" },
    });
    expect(clusterHealth(c, NOW)).toEqual({ level: "bad", label: "Unreachable", reason: "The API server did not answer within 10 s." });
    const unauthorized = cluster({ conditions: [condition("Reachable", ConditionStatus.TRUE), condition("Authorized", ConditionStatus.FALSE, "401 from the API server.")] });
    expect(clusterHealth(unauthorized, NOW).label).toBe("Unauthorized");
    const degraded = cluster({ conditions: [condition("Degraded", ConditionStatus.TRUE, "2 objects could not be applied.")], syncStatus: { health: SyncHealth.DEGRADED, objectsFailed: 2 } });
    expect(clusterHealth(degraded, NOW)).toEqual({ level: "warn", label: "Degraded", reason: "2 objects could not be applied." });
    const partial = cluster({ conditions: [condition("Provisioned", ConditionStatus.FALSE, "1 of 3 project-domains is missing.")] });
    expect(clusterHealth(partial, NOW).level).toBe("warn");
  });

  it("tells pull-mode clusters whose agent never joined, or went silent", () => {
    expect(clusterHealth(cluster({ mode: ClusterMode.PULL }), NOW).label).toBe("Agent not joined");
    const silent = cluster({ mode: ClusterMode.PULL, agent: { version: "0.1.0", lastHeartbeatTime: timestampFromMs(NOW - 5 * 60_000) } });
    expect(clusterHealth(silent, NOW)).toMatchObject({ level: "bad", label: "Agent silent", reason: "Its agent has not renewed its lease for 5 min." });
  });

  it("shows disabled and never-synced clusters as such", () => {
    expect(clusterHealth(cluster({ enabled: false }), NOW).level).toBe("off");
    expect(clusterHealth(cluster(), NOW).level).toBe("unknown");
    expect(provisionedLabel(cluster())).toBe("–");
  });

  it("formats durations for people", () => {
    expect([formatDuration(4_000), formatDuration(90_000), formatDuration(3 * 3_600_000 + 5 * 60_000), formatDuration(5 * 86_400_000)]).toEqual(["4 s", "1 min", "3 h 5 min", "5 d"]);
  });
});

describe("the console's pool manifest editor", () => {
  it("reads the seed's manifest (snake_case keys, short secret-store types) and writes it back the same way", () => {
    const parsed = parsePoolYaml(NEW_POOL_TEMPLATE);
    expect(parsed.problems).toEqual([]);
    expect(parsed.pool?.name).toBe("prod");
    expect(parsed.pool?.config?.secretStore?.type).toBe(SecretStoreType.AWS_SECRETS_MANAGER);
    expect(parsed.pool?.config?.objectStoreRef?.uri).toBe("s3://my-prod-bucket/prefix");
    const again = parsePoolYaml(poolToYaml(seedProdPool()));
    expect(again.problems).toEqual([]);
    expect(again.pool?.config?.imageRegistry?.locator).toBe("123456789012.dkr.ecr.us-east-1.amazonaws.com/union");
  });

  it("puts YAML errors, unknown keys and bad types at their line", () => {
    expect(parsePoolYaml("name: a\nconfig: [\n").problems[0]?.line).toBeGreaterThanOrEqual(2);
    const unknown = parsePoolYaml("name: a\nconfig:\n  secret_stor:\n    type: VAULT\n");
    expect(unknown.problems).toEqual([expect.objectContaining({ line: 3, field: "config.secret_stor" })]);
    const badType = parsePoolYaml("name: a\nconfig:\n  secret_store:\n    type: VAULTX\n");
    expect(badType.problems).toEqual([expect.objectContaining({ line: 4, field: "config.secret_store.type" })]);
  });

  it("finds the line of a field the server named, or of its nearest parent when it is missing", () => {
    const text = "name: a\nconfig:\n  object_store_ref:\n    uri: nope\n";
    expect(lineOfField(text, "cluster_pool.config.object_store_ref.uri")).toBe(4);
    expect(lineOfField(text, "cluster_pool.config.secret_store.type")).toBe(2);
    expect(lineOfField(text, "cluster_pool.name")).toBe(1);
  });
});
