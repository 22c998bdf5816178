import { describe, expect, it } from "vitest";
import { Violations } from "../../src/core/errors.js";
import {
  checkAssignmentKey,
  resolutionOrder,
  resolveLabel,
  scopeOf,
  type AssignmentKey,
} from "../../src/core/execution-cluster-label.js";
import { fnv1a64 } from "../../src/core/fnv.js";
import { weightedPick } from "../../src/core/weighted-pick.js";

const key = (overrides: Partial<AssignmentKey> = {}): AssignmentKey => ({
  org: "",
  project: "project1",
  domain: "",
  workflow: "",
  launchPlan: "",
  ...overrides,
});

function hex([high, low]: [number, number]): string {
  return high.toString(16).padStart(8, "0") + low.toString(16).padStart(8, "0");
}

describe("64-bit FNV-1a", () => {
  it.each([
    ["", "cbf29ce484222325"],
    ["a", "af63dc4c8601ec8c"],
    ["foobar", "85944171f73967e8"],
  ])("hashes %j to the published value", (text, expected) => {
    expect(hex(fnv1a64(text))).toBe(expected);
  });

  it("hashes the UTF-8 bytes of any text, as the BigInt definition does", () => {
    const reference = (text: string) => {
      let hash = 0xcbf29ce484222325n;
      for (const byte of new TextEncoder().encode(text)) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
      return hash.toString(16).padStart(16, "0");
    };
    for (const text of ["exec-1", "héllo wörld", "執行-42", "x".repeat(300)]) expect(hex(fnv1a64(text))).toBe(reference(text));
  });
});

describe("weighted pick", () => {
  const choices = [
    { name: "a", weight: 0.5 },
    { name: "b", weight: 0.3 },
    { name: "c", weight: 0.2 },
  ];

  it("gives one execution id the same cluster every time", () => {
    const first = weightedPick(choices, "exec-42")!.name;
    for (let i = 0; i < 100; i++) expect(weightedPick(choices, "exec-42")!.name).toBe(first);
  });

  it("keeps each cluster's share within 2 points of its weight over 20 000 executions", () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const picked = weightedPick(choices, `f${i.toString(36)}-execution`)!.name;
      counts.set(picked, (counts.get(picked) ?? 0) + 1);
    }
    for (const choice of choices) {
      expect(Math.abs((counts.get(choice.name) ?? 0) / 20_000 - choice.weight)).toBeLessThan(0.02);
    }
  });

  it("treats weights as relative, not as fractions that must add up to 1", () => {
    const counts = { x: 0, y: 0 };
    for (let i = 0; i < 20_000; i++) counts[weightedPick([{ name: "x", weight: 1 }, { name: "y", weight: 1 }], `${i}`)!.name as "x" | "y"]++;
    expect(Math.abs(counts.x / 20_000 - 0.5)).toBeLessThan(0.02);
  });

  it("returns the only choice, or nothing when there is none", () => {
    expect(weightedPick([{ name: "solo", weight: 0.1 }], "e")!.name).toBe("solo");
    expect(weightedPick([], "e")).toBeUndefined();
  });
});

describe("execution cluster label resolution", () => {
  it("looks up launch plan, workflow, project-domain, then project", () => {
    const order = resolutionOrder(key({ domain: "development", workflow: "wf", launchPlan: "lp" }));
    expect(order.map(scopeOf)).toEqual(["LAUNCH_PLAN", "WORKFLOW", "PROJECT_DOMAIN", "PROJECT"]);
    expect(resolutionOrder(key()).map(scopeOf)).toEqual(["PROJECT"]);
  });

  it("takes the most specific stored value, else the default label", () => {
    const stored = new Map([
      ["project1//", "p"],
      ["project1/development/", "pd"],
      ["project1/development/wf", "w"],
    ]);
    const lookup = (scope: AssignmentKey) => stored.get(`${scope.project}/${scope.domain}/${scope.workflow}${scope.launchPlan}`);
    expect(resolveLabel(key({ domain: "development", workflow: "wf" }), lookup, "d")).toEqual({ value: "w", scope: "WORKFLOW" });
    expect(resolveLabel(key({ domain: "development", workflow: "other" }), lookup, "d")).toEqual({ value: "pd", scope: "PROJECT_DOMAIN" });
    expect(resolveLabel(key({ domain: "staging" }), lookup, "d")).toEqual({ value: "p", scope: "PROJECT" });
    expect(resolveLabel(key({ project: "other" }), lookup, "d")).toEqual({ value: "d", scope: "DEFAULT" });
    expect(resolveLabel(key({ project: "other" }), lookup, undefined)).toBeNull();
  });

  it("checks scopes: domains are configured, workflow and launch plan need a domain and exclude each other", () => {
    const fields = (k: AssignmentKey) => {
      const violations = new Violations();
      checkAssignmentKey(k, ["development", "production"], "", violations);
      try {
        violations.throwIfAny();
        return [];
      } catch (error) {
        return (error as { violations: { field: string }[] }).violations.map((v) => v.field);
      }
    };
    expect(fields(key({ domain: "development", workflow: "core.wf_1" }))).toEqual([]);
    expect(fields(key({ domain: "staging" }))).toEqual(["domain"]);
    expect(fields(key({ workflow: "wf" }))).toEqual(["domain"]);
    expect(fields(key({ domain: "development", workflow: "wf", launchPlan: "lp" }))).toEqual(["launch_plan"]);
    expect(fields(key({ project: "" }))).toEqual(["project"]);
    expect(fields(key({ domain: "development", workflow: "bad name" }))).toEqual(["workflow"]);
  });
});
