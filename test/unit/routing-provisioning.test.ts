import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DomainError } from "../../src/core/errors.js";
import type { PassOutcome } from "../../src/core/pass-outcome.js";
import { RoutingIndex } from "../../src/routing/routing-index.js";
import { selectCluster } from "../../src/routing/select-cluster.js";
import { tempStores, type TempStores } from "../support/stores.js";
import { testEngines } from "../support/engines.js";

/**
 * Routing where sync is on: by the provisioning truth the passes record, per cluster and
 * project-domain, and by the conditions of each cluster's last pass.
 */
// Every test here runs on each engine (PostgreSQL only when reachable; see test/support/engines.ts).
describe.each(testEngines())("on $name", (engine) => {
  let stores: TempStores;
  let routing: RoutingIndex;

  beforeEach(async () => {
    stores = await tempStores(engine);
    for (const name of ["dataplane_1", "dataplane_2"]) {
      await stores.clusters.create({ org: "", name, pool: "default", endpoint: `https://${name.replace("_", "-")}.example.com:443`, enabled: true, auth: { kind: "in_cluster" } });
    }
    await stores.projects.create({ org: "", id: "team1", name: "", description: "" });
    routing = await RoutingIndex.open(stores, true);
  });
  afterEach(async () => {
    routing.close();
    await stores.cleanup();
  });

  const pairs = (...names: string[]) => names.map((name) => ({ project: name.split("/")[0]!, domain: name.split("/")[1]! }));
  const ALL = pairs("team1/development", "team1/staging", "team1/production");

  async function pass(cluster: string, overrides: Partial<PassOutcome> = {}): Promise<void> {
    await stores.sync.recordOutcome("", cluster, {
      startedAt: new Date(), finishedAt: new Date(), full: false, applied: 6, unchanged: 0, failure: null,
      objectsFailed: 0, objectFailures: [], templateErrors: [], desired: ALL, provisioned: ALL, ...overrides,
    });
  }

  function select(domain: string, executionId = "exec-1") {
    return selectCluster(routing, { org: "", project: "team1", domain, workflow: "", launchPlan: "", executionId, target: null });
  }

  function refusal(domain: string): string {
    try {
      select(domain);
    } catch (error) {
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).kind).toBe("failed_precondition");
      return (error as DomainError).message;
    }
    throw new Error("expected a refusal");
  }

  const spread = (domain: string) => new Set(Array.from({ length: 200 }, (_, i) => select(domain, `e${i}`).cluster));

  describe("routing by provisioning truth", () => {
    it("waits for a cluster's first pass, then routes only the project-domains it provisioned", async () => {
      expect(refusal("development")).toContain('"dataplane_1" is not provisioned yet (waiting for its first sync pass)');
      await pass("dataplane_1", { provisioned: pairs("team1/development") });
      expect(spread("development")).toEqual(new Set(["dataplane_1"]));
      expect(refusal("staging")).toContain('"dataplane_1" is not provisioned for team1/staging yet');
      await pass("dataplane_2");
      expect(spread("staging")).toEqual(new Set(["dataplane_2"]));
      expect(spread("development")).toEqual(new Set(["dataplane_1", "dataplane_2"]));
      // A later pass that provisions more is seen at once; one that provisions the same changes nothing.
      await pass("dataplane_1");
      expect(spread("staging")).toEqual(new Set(["dataplane_1", "dataplane_2"]));
      await pass("dataplane_1", { provisioned: [...ALL].reverse() });
      expect(spread("production")).toEqual(new Set(["dataplane_1", "dataplane_2"]));
      await pass("dataplane_1", { provisioned: pairs("team1/production") });
      expect(spread("staging")).toEqual(new Set(["dataplane_2"]));
    });

    it("takes nothing to a cluster whose pass failed for the whole cluster, and says what to fix", async () => {
      await pass("dataplane_1");
      await pass("dataplane_2", {
        failure: { kind: "forbidden", message: "the identity may not create namespaces (403): grant it RBAC for namespaces and serviceaccounts" },
        provisioned: [],
      });
      expect(spread("development")).toEqual(new Set(["dataplane_1"]));
      await stores.clusters.setState("", "dataplane_1", "DRAINED");
      const message = refusal("development");
      expect(message).toContain('"dataplane_1" is drained (ActivateCluster routes to it again)');
      expect(message).toContain('"dataplane_2" is failing sync: the identity may not create namespaces (403): grant it RBAC');
      // An active cluster is never told to be activated or enabled.
      expect(message.split("; ")[1]).not.toMatch(/activate|enable/i);
    });

    it("keeps routing a degraded cluster's provisioned project-domains", async () => {
      await pass("dataplane_1", {
        objectFailures: [{ key: "v1/ResourceQuota/team1-development/quota", kind: "unsupported-kind", message: "the cluster does not serve ResourceQuota" }],
      });
      const cluster = await stores.clusters.get("", "dataplane_1");
      expect(cluster.sync?.conditions.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "ObjectsFailed" });
      expect(spread("production")).toEqual(new Set(["dataplane_1"]));
    });

    it("follows passes recorded by another process through the log", async () => {
      const other = await (await import("../../src/store/stores.js")).openStores({ path: stores.path });
      try {
        routing.close();
        routing = await RoutingIndex.open(stores, true);
        stores.changes.follow(10);
        await other.sync.recordOutcome("", "dataplane_1", {
          startedAt: new Date(), finishedAt: new Date(), full: false, applied: 6, unchanged: 0, failure: null,
          objectsFailed: 0, objectFailures: [], templateErrors: [], desired: ALL, provisioned: ALL,
        });
        const { waitFor } = await import("../support/wait.js");
        await waitFor("the other process's pass", () => routing.cluster("", "dataplane_1")?.ineligibleBecause === "");
        expect(select("staging").cluster).toBe("dataplane_1");
      } finally {
        stores.changes.unfollow();
        await other.engine.close();
      }
    });
  });

  describe("conditions", () => {
    it("keep their transition time while the status holds, and count provisioned project-domains", async () => {
      await pass("dataplane_1", { provisioned: pairs("team1/development") });
      const first = (await stores.clusters.get("", "dataplane_1")).sync!;
      expect(first.projectDomainsProvisioned).toBe(1);
      expect(first.conditions.find((c) => c.type === "Provisioned")).toMatchObject({ status: "False", message: "1 of 3 project-domains provisioned" });
      const reachableSince = first.conditions.find((c) => c.type === "Reachable")!.lastTransitionTime;
      await pass("dataplane_1", { finishedAt: new Date(Date.now() + 60_000) });
      const second = (await stores.clusters.get("", "dataplane_1")).sync!;
      expect(second.conditions.find((c) => c.type === "Reachable")!.lastTransitionTime).toEqual(reachableSince);
      expect(second.conditions.find((c) => c.type === "Provisioned")).toMatchObject({ status: "True", reason: "AllProvisioned" });
      expect(await stores.sync.provisioned("", "dataplane_1")).toHaveLength(3);

      await pass("dataplane_1", { failure: { kind: "unauthorized", message: "the API server refused the token (401)" }, provisioned: ALL });
      const third = (await stores.clusters.get("", "dataplane_1")).sync!;
      expect(third.conditions.find((c) => c.type === "Authorized")).toMatchObject({ status: "False", reason: "Unauthorized" });
      expect(third.consecutiveFailures).toBe(1);
      expect(third.failureKind).toBe("unauthorized");
    });
  });
});
