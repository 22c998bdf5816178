import { describe, expect, it } from "vitest";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { CLUSTERPLANE_SERVICES } from "../../src/services/index.js";
import { mayCall, procedureKind, ROLES, type ProcedureKind } from "../../src/core/roles.js";
import { READS, ROUTES } from "../support/procedures.js";

const kindOf = (service: string, method: string, sideEffectFree = false) => procedureKind({ service, method, sideEffectFree });

describe("roles: which role may call which procedure", () => {
  it("derives every clusterplane.v1 method's kind from the contract", () => {
    const kinds: Record<string, ProcedureKind> = {};
    for (const service of CLUSTERPLANE_SERVICES) {
      for (const method of service.methods) {
        kinds[`${service.typeName}/${method.name}`] = procedureKind({
          service: service.typeName,
          method: method.name,
          sideEffectFree: method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
        });
      }
    }
    const byKind = (kind: ProcedureKind) => Object.keys(kinds).filter((name) => kinds[name] === kind).sort();
    expect(byKind("read")).toEqual([...READS].sort());
    expect(byKind("route")).toEqual(ROUTES);
    expect(byKind("write")).toContain("clusterplane.v1.ClusterService/DrainCluster");
    expect(byKind("write")).toContain("clusterplane.v1.ExecutionClusterLabelService/DeleteExecutionClusterLabel");
    expect(byKind("write").length + READS.length + ROUTES.length).toBe(Object.keys(kinds).length);
  });

  it("keeps health open and reflection for any authenticated caller", () => {
    expect(kindOf("grpc.health.v1.Health", "Check", true)).toBe("open");
    expect(kindOf("grpc.health.v1.Health", "Watch")).toBe("open");
    expect(kindOf("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo")).toBe("discovery");
    expect(kindOf("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo")).toBe("discovery");
  });

  it("grants admin everything, viewer reads, router reads and routing", () => {
    const table = Object.fromEntries(
      ROLES.map((role) => [role, (["open", "discovery", "read", "route", "write"] as const).filter((kind) => mayCall(role, kind))]),
    );
    expect(table).toEqual({
      admin: ["open", "discovery", "read", "route", "write"],
      viewer: ["open", "discovery", "read"],
      router: ["open", "discovery", "read", "route"],
    });
  });
});
