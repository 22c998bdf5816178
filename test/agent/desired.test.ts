import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { WatchDesiredStateResponseSchema, type WatchDesiredStateResponse } from "../../gen/clusterplane/v1/agent_pb.js";
import { receivedState } from "../../src/agent/desired.js";
import { DEFAULT_PROVISIONING, renderProjectDomain, type ProvisioningSpec } from "../../src/core/desired-state.js";
import type { DesiredState } from "../../src/sync/desired-cache.js";

const SPEC: ProvisioningSpec = {
  ...DEFAULT_PROVISIONING,
  templates: [
    {
      source: "quota.yaml",
      text: "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\nspec:\n  hard:\n    pods: '10'\n",
    },
  ],
};

/** The desired state as the server's cache builds it (src/sync/desired-cache.ts), for the same pairs. */
function serverSide(pairs: { project: string; domain: string }[]): DesiredState {
  const state: DesiredState = { objects: [], errors: [], pairs: [], provisioning: [] };
  for (const pair of pairs) {
    const rendered = renderProjectDomain(SPEC, pair);
    state.pairs.push(pair);
    state.provisioning.push({ pair, core: rendered.objects.filter((object) => object.role !== "template") });
    state.objects.push(...rendered.objects);
    state.errors.push(...rendered.errors);
  }
  return state;
}

/** The stream message the server sends for `state` (src/services/agent-service.ts messageOf). */
function messageOf(state: DesiredState, applied: Record<string, string> = {}): WatchDesiredStateResponse {
  return create(WatchDesiredStateResponseSchema, {
    revision: 42n,
    digest: "digest-1",
    objects: state.objects.map((object) => ({
      key: object.key,
      manifestJson: JSON.stringify(object.object),
      hash: object.hash,
      project: object.project,
      domain: object.domain,
      role: object.role,
      source: object.source,
    })),
    projectDomains: state.pairs,
    templateErrors: state.errors,
    appliedHashes: applied,
  });
}

describe("the desired-state message in the reconciler's terms", () => {
  const pairs = [
    { project: "team1", domain: "development" },
    { project: "team1", domain: "production" },
  ];

  it("gives back exactly the DesiredState the server built: objects, pairs, provisioning from roles, errors", () => {
    const state = serverSide(pairs);
    state.errors.push("quota.yaml: something (for team2/staging)");
    const received = receivedState(messageOf(state, { "v1/Namespace//team1-development": "h1" }));
    expect(received.problems).toEqual([]);
    expect(received.desired).toEqual(state);
    expect(received.digest).toBe("digest-1");
    expect(received.revision).toBe(42n);
    expect([...received.appliedHashes]).toEqual([["v1/Namespace//team1-development", "h1"]]);
    // Provisioning of a pair is its namespace and service account, not the templated quota.
    expect(received.desired.provisioning[0]!.core.map((object) => object.key)).toEqual([
      "v1/Namespace//team1-development",
      "v1/ServiceAccount/team1-development/default",
    ]);
    expect(received.desired.objects.find((object) => object.role === "template")!.namespace).toBe("team1-development");
  });

  it("keeps a pair whose objects could not be rendered, with nothing that provisions it", () => {
    const message = messageOf(serverSide(pairs));
    message.projectDomains.push({ $typeName: "clusterplane.v1.ProjectDomain", project: "broken", domain: "staging" });
    const received = receivedState(message);
    expect(received.desired.pairs).toHaveLength(3);
    expect(received.desired.provisioning[2]).toEqual({ pair: { project: "broken", domain: "staging" }, core: [] });
  });

  it("leaves out objects it cannot use, naming them; a broken namespace or service account unprovisions its pair", () => {
    const message = messageOf(serverSide(pairs));
    message.objects[0]!.manifestJson = "{not json";
    message.objects[5]!.manifestJson = JSON.stringify({ apiVersion: "v1", kind: "ResourceQuota", metadata: {} });
    message.objects[4]!.role = "owner";
    const received = receivedState(message);
    expect(received.problems).toEqual([
      "v1/Namespace//team1-development: manifest_json is not JSON",
      "v1/ServiceAccount/team1-production/default: has role \"owner\", not one of namespace, service-account, template",
      "v1/ResourceQuota/team1-production/quota: manifest_json has no metadata.name",
    ]);
    expect(received.desired.objects).toHaveLength(3);
    expect(received.desired.provisioning.map((p) => p.core.length)).toEqual([0, 0]);
  });

  it("turns an empty state into an empty DesiredState", () => {
    const received = receivedState(create(WatchDesiredStateResponseSchema, { digest: "d" }));
    expect(received.desired).toEqual({ objects: [], errors: [], pairs: [], provisioning: [] });
    expect(received.appliedHashes.size).toBe(0);
  });
});
