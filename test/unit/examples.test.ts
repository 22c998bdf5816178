import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { parse, parseAllDocuments } from "yaml";
import { CONFIG_KEYS } from "../../src/server/config.js";
import { desiredObjects } from "../../src/core/desired-state.js";
import { loadProvisioning, parseSyncSettings } from "../../src/sync/sync-settings.js";

describe("the README's sync example (examples/sync.yaml and examples/templates)", () => {
  it("loads and renders every object of a project-domain", () => {
    const settings = parseSyncSettings(parse(readFileSync("examples/sync.yaml", "utf8")), "examples/sync.yaml", { AWS_ACCOUNT_ID: "123456789012" });
    const objects = desiredObjects(loadProvisioning(settings), { project: "project1", domain: "production" });
    expect(objects.map((o) => o.key)).toEqual([
      "v1/Namespace//project1-production",
      "v1/ServiceAccount/project1-production/default",
      "v1/ResourceQuota/project1-production/project-quota",
      "v1/ServiceAccount/project1-production/spark",
      "rbac.authorization.k8s.io/v1/RoleBinding/project1-production/spark-edit",
    ]);
    expect(objects[1]!.object.metadata.annotations).toEqual({
      "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/flyte-dataplane-role-production",
    });
    expect(objects[2]!.object).toMatchObject({ spec: { hard: { "limits.cpu": "64" } } });
  });
});

describe("the Kubernetes example (examples/kubernetes)", () => {
  it("runs three replicas with probes, a disruption budget, a Service, and a configuration the server accepts", () => {
    const docs = parseAllDocuments(readFileSync("examples/kubernetes/clusterplane.yaml", "utf8")).map((doc) => doc.toJS() as Record<string, any>);
    expect(docs.map((doc) => doc.kind)).toEqual(["ConfigMap", "Secret", "Deployment", "PodDisruptionBudget", "Service"]);
    const deployment = docs[2]!;
    expect(deployment.spec.replicas).toBe(3);
    const [container] = deployment.spec.template.spec.containers;
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    expect(deployment.spec.template.spec.initContainers[0].args).toEqual(["migrate"]);
    // Every key of the ConfigMap's configuration is one the server knows.
    const config = parse(docs[0]!.data["clusterplane.yaml"]) as Record<string, Record<string, unknown>>;
    for (const [section, keys] of Object.entries(config)) {
      const known: readonly string[] = CONFIG_KEYS[section as keyof typeof CONFIG_KEYS];
      expect(known, section).toBeDefined();
      for (const key of Object.keys(keys)) expect(known, `${section}.${key}`).toContain(key);
    }
  });
});
