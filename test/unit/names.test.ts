import { describe, expect, it } from "vitest";
import { checkClusterName, checkOrg, checkResourceName } from "../../src/core/names.js";

describe("resource names", () => {
  it.each(["prod", "a", "prod-us-east-1", "0abc", "a".repeat(63)])("accepts %s", (name) => {
    expect(checkResourceName(name)).toBeNull();
  });

  it.each([
    ["", "is required"],
    ["a".repeat(64), "at most 63"],
    ["Prod", "lowercase"],
    ["-prod", "start and end"],
    ["prod-", "start and end"],
    ["prod_1", "lowercase letters, digits and '-'"],
    ["pr od", "lowercase"],
    ["prod.x", "lowercase"],
  ])("rejects %j", (name, reason) => {
    expect(checkResourceName(name)).toContain(reason);
  });

  it("allows '_' in cluster names only", () => {
    expect(checkClusterName("dataplane_1")).toBeNull();
    expect(checkResourceName("dataplane_1")).not.toBeNull();
    expect(checkClusterName("_dataplane")).toContain("start and end");
  });

  it("treats an empty org as the default organization", () => {
    expect(checkOrg("")).toBeNull();
    expect(checkOrg("acme")).toBeNull();
    expect(checkOrg("Acme")).not.toBeNull();
  });
});
