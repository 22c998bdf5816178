import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
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
