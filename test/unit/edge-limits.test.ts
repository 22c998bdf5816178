import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { parse } from "yaml";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { checkEndpoint } from "../../src/core/cluster.js";
import { invalidArgument, quoteValue, shorten, Violations } from "../../src/core/errors.js";
import { resolveServerConfig } from "../../src/server/config.js";
import { reviseStatus } from "../../src/server/bad-input.js";
import { clampDeadline, isValidAuthority } from "../../src/server/edge.js";
import { DEFAULT_LIMITS, parseLimits } from "../../src/server/limits.js";
import { protocolOf } from "../../src/server/one-port.js";
import { toConnectError } from "../../src/services/errors.js";

function configWith(yaml: string) {
  const path = join(mkdtempSync(join(tmpdir(), "edge-limits-")), "clusterplane.yaml");
  writeFileSync(path, yaml);
  return resolveServerConfig({ config: path }, {});
}

function refusal(yaml: string): string {
  try {
    configWith(yaml);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected the configuration to be refused");
}

describe("server.limits", () => {
  it("defaults when unset", () => {
    expect(configWith("server:\n  port: 1\n").limits).toEqual(DEFAULT_LIMITS);
    expect(DEFAULT_LIMITS).toEqual({
      maxRequestBytes: 4 * 1024 * 1024,
      maxConnections: 1000,
      maxConcurrentStreams: 100,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      idleTimeoutMs: 300_000,
      maxDeadlineMs: 3_600_000,
    });
  });

  it("reads sizes, counts and durations", () => {
    const yaml = [
      "server:",
      "  limits:",
      "    maxRequestSize: 512KiB",
      "    maxConnections: 50",
      "    maxConcurrentStreams: 10",
      "    headersTimeout: 2s",
      "    requestTimeout: 30s",
      "    idleTimeout: 1m",
      "    maxDeadline: 10m",
      "",
    ].join("\n");
    expect(configWith(yaml).limits).toEqual({
      maxRequestBytes: 512 * 1024,
      maxConnections: 50,
      maxConcurrentStreams: 10,
      headersTimeoutMs: 2_000,
      requestTimeoutMs: 30_000,
      idleTimeoutMs: 60_000,
      maxDeadlineMs: 600_000,
    });
    expect(configWith("server:\n  limits:\n    maxRequestSize: 1048576\n").limits?.maxRequestBytes).toBe(1024 * 1024);
  });

  it("the README's example (examples/clusterplane.yaml) shows the defaults", () => {
    const example = parse(readFileSync("examples/clusterplane.yaml", "utf8")) as { server: { limits: unknown } };
    const problems = new Violations();
    expect(parseLimits(example.server.limits, "server.limits", problems)).toEqual(DEFAULT_LIMITS);
    expect(problems.isEmpty).toBe(true);
  });

  it("refuses unknown keys and bad values, naming them", () => {
    expect(refusal("server:\n  limits:\n    maxRequestSise: 1MiB\n")).toContain("server.limits.maxRequestSise: unknown key; did you mean maxRequestSize?");
    expect(refusal("server:\n  limits:\n    maxRequestSize: 4 furlongs\n")).toContain("server.limits.maxRequestSize:");
    expect(refusal("server:\n  limits:\n    maxRequestSize: 2GiB\n")).toContain("from 1KiB to 1GiB");
    expect(refusal("server:\n  limits:\n    maxConnections: 0\n")).toContain("server.limits.maxConnections:");
    expect(refusal("server:\n  limits:\n    maxDeadline: 30d\n")).toContain("server.limits.maxDeadline:");
    expect(refusal("server:\n  limits:\n    headersTimeout: 2m\n    requestTimeout: 1m\n")).toContain("must not be longer than requestTimeout");
    expect(refusal("server:\n  limits: 5\n")).toContain("server.limits: must be a mapping");
  });
});

describe("quoting values in messages", () => {
  it("quotes short values whole and long ones as a prefix and a length", () => {
    expect(quoteValue("prod")).toBe('"prod"');
    expect(quoteValue("a\nb")).toBe('"a\\nb"');
    const quoted = quoteValue("x".repeat(17_375));
    expect(quoted).toBe(`"${"x".repeat(99)}…" (17375 characters)`);
  });

  it("never splits a surrogate pair", () => {
    expect(shorten(`${"a".repeat(8)}😀😀`, 10)).toBe(`${"a".repeat(8)}…`);
  });

  it("a validator's message about a huge value stays short", () => {
    const problems = new Violations();
    checkEndpoint(`https://${"e".repeat(20_000)}:99999`, undefined, false, "cluster.endpoint", problems);
    try {
      problems.throwIfAny();
    } catch (error) {
      expect((error as Error).message.length).toBeLessThan(400);
      return;
    }
    throw new Error("expected a violation");
  });
});

describe("toConnectError (the last bound on what an error sends)", () => {
  it("caps the message and the field violations it carries", () => {
    const violations = Array.from({ length: 500 }, (_, index) => ({ field: `items[${index}]`.padEnd(300, "f"), description: "d".repeat(5000) }));
    const error = toConnectError(invalidArgument(violations));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage.length).toBeLessThanOrEqual(1024);
    const kept = error.findDetails(BadRequestSchema)[0]!.fieldViolations;
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.reduce((sum, v) => sum + v.field.length + v.description.length, 0)).toBeLessThanOrEqual(2048);
  });
});

describe("edge helpers", () => {
  it("accepts host[:port] authorities and nothing else", () => {
    for (const good of ["localhost", "localhost:8080", "127.0.0.1:65535", "[::1]:443", "[::1]", "api.example.com", "localhost:"]) {
      expect([good, isValidAuthority(good)]).toEqual([good, true]);
    }
    for (const bad of ["localhost:99999", "127.0.0.1:65536", "[::1", "localhost:abc", "a b", "%zz", "a:b:c", "user@host", "a/b", ""]) {
      expect([bad, isValidAuthority(bad)]).toEqual([bad, false]);
    }
  });

  it("clamps deadlines beyond the maximum and leaves the rest alone", () => {
    const headers: Record<string, string> = { "grpc-timeout": "99999999S", "connect-timeout-ms": "9999999999" };
    clampDeadline(headers, 3_600_000);
    expect(headers).toEqual({ "grpc-timeout": "3600000m", "connect-timeout-ms": "3600000" });
    const short: Record<string, string> = { "grpc-timeout": "5S", "connect-timeout-ms": "100" };
    clampDeadline(short, 3_600_000);
    expect(short).toEqual({ "grpc-timeout": "5S", "connect-timeout-ms": "100" });
    const malformed: Record<string, string> = { "grpc-timeout": "soon" };
    clampDeadline(malformed, 1_000);
    expect(malformed).toEqual({ "grpc-timeout": "soon" });
  });

  it("tells HTTP/2 from HTTP/1.1 only once the bytes allow it", () => {
    expect(protocolOf(Buffer.from("PR"))).toBeUndefined();
    expect(protocolOf(Buffer.from("PRI * HTTP/2.0\r\n"))).toBeUndefined();
    expect(protocolOf(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))).toBe("h2");
    expect(protocolOf(Buffer.from("POST / HTTP/1.1\r\n"))).toBe("h1");
    expect(protocolOf(Buffer.from("G"))).toBe("h1");
  });

  it("revises only connect-node's caller faults, and shortens long messages", () => {
    expect(reviseStatus({ code: Code.Internal, message: "parse binary: premature EOF" })).toEqual({ code: Code.InvalidArgument, message: "parse binary: premature EOF" });
    expect(reviseStatus({ code: Code.Internal, message: "database is on fire" })).toBeUndefined();
    expect(reviseStatus({ code: Code.NotFound, message: "m".repeat(5000) })?.message.length).toBe(1024);
  });
});
