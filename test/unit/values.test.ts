import { describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { grpcStatusName } from "../../src/core/values.js";

describe("gRPC status names", () => {
  it("spells every code as gRPC does (CANCELLED with two Ls, as in grpc/status.h)", () => {
    const names = Object.values(Code).filter((value): value is number => typeof value === "number").map((code) => grpcStatusName(Code[code]!));
    expect(names).toEqual([
      "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED",
    ]);
  });
});
