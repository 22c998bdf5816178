import { describe, expect, it } from "vitest";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import { closestName } from "../../src/core/did-you-mean.js";
import { LightHeaders } from "../../src/cli/light-headers.js";
import { describeViolation, FIELD_TERMS, fieldName, RPC_COMMANDS, translateText } from "../../src/cli/translate.js";
import { cliAgainst } from "./run-cli.js";

const SERVICES = [ClusterPoolService, ClusterService, QueueService, ExecutionClusterLabelService, ProjectService];
const flags = (command: string) => ({ command, manifest: false });
const manifest = (command: string) => ({ command, manifest: true });

/** The command whose options set the fields under each request prefix (unprefixed: by field). */
const COMMAND_OF_PREFIX: Record<string, string> = {
  cluster_pool: "create cluster-pool",
  cluster: "create cluster",
  queue: "create queue",
  label: "create label",
  project: "create project",
  execution_cluster_label: "update execution-cluster-label",
};
const COMMAND_OF_FIELD: Record<string, string> = {
  org: "",
  name: "get cluster",
  id: "get project",
  pool: "get cluster",
  page_size: "get cluster",
  project: "get execution-cluster-label",
  domain: "get execution-cluster-label",
  workflow: "get execution-cluster-label",
  launch_plan: "get execution-cluster-label",
  execution_id: "select-cluster",
};

describe("the translation table: API words to CLI words", () => {
  it("has a command for every RPC the CLI's services offer, and every such command exists", async () => {
    const rpcs = SERVICES.flatMap((service) => service.methods.map((method) => method.name));
    expect(Object.keys(RPC_COMMANDS).sort()).toEqual([...rpcs].sort());

    const cli = cliAgainst(undefined);
    const commands = [...new Set(Object.values(RPC_COMMANDS).map((command) => command.split(" ").slice(1, 3).join(" ")))];
    const helps = await Promise.all(commands.map((command) => cli([...command.split(" "), "--help"])));
    helps.forEach((help, index) => {
      expect({ command: commands[index], code: help.code }).toEqual({ command: commands[index], code: 0 });
      expect(help.stdout).toContain(`Usage: clusterplane ${commands[index]} [options]`);
    });
  });

  it("names only flags that the command setting the field has", async () => {
    const cli = cliAgainst(undefined);
    const checks: { field: string; command: string; flag: string }[] = [];
    for (const [field, terms] of Object.entries(FIELD_TERMS)) {
      for (const term of terms) {
        const prefix = field.includes(".") ? field.slice(0, field.indexOf(".")) : undefined;
        const commands = term.commands ?? [prefix ? COMMAND_OF_PREFIX[prefix]! : COMMAND_OF_FIELD[field]!];
        for (const command of commands) {
          for (const flag of term.flag?.match(/--[a-z-]+/g) ?? []) checks.push({ field, command, flag });
        }
      }
    }
    const commands = [...new Set(checks.map((check) => check.command))];
    const helps = new Map(
      await Promise.all(commands.map(async (command) => [command, (await cli([...command.split(" ").filter(Boolean), "--help"])).stdout] as const)),
    );
    expect(checks.length).toBeGreaterThan(30);
    const missing = checks.filter(({ command, flag }) => !helps.get(command)!.includes(`${flag} `) && !helps.get(command)!.includes(`${flag},`));
    expect(missing).toEqual([]);
  });

  it("puts violations in the operator's terms: flags on a command line, keys in a manifest", () => {
    expect(describeViolation("cluster.endpoint", "must be an https URL", flags("create cluster"))).toBe("--endpoint: must be an https URL");
    expect(describeViolation("cluster.endpoint", "must be an https URL", manifest("create cluster"))).toBe("endpoint: must be an https URL");
    expect(describeViolation("cluster.auth", "is required: bearer_token_file { token_path, ca_cert_path } or in_cluster {}", flags("create cluster"))).toBe(
      "credentials are required: --token-path PATH and --ca-cert-path PATH (files mounted from a Secret), or --in-cluster; " +
        "or leave out --endpoint too, to register a pull-mode cluster whose agent connects out",
    );
    expect(describeViolation("cluster.auth", "is required: bearer_token_file { token_path, ca_cert_path } or in_cluster {}", manifest("create cluster"))).toBe(
      "auth: is required: {type: file_path, tokenPath: PATH, certPath: PATH} or {type: in_cluster}; " +
        "or leave out both endpoint and auth to register a pull-mode cluster, whose agent connects out",
    );
    expect(fieldName("cluster.auth.bearer_token_file.ca_cert_path", manifest("update cluster"))).toBe("auth.certPath");
    expect(fieldName("label.clusters[2].weight", manifest("create label"))).toBe("clusters[2].weight");
    expect(fieldName("label.clusters[2].weight", flags("create label"))).toBe("--cluster NAME=WEIGHT (the WEIGHT)");
    expect(fieldName("cluster_pool.config.secret_store.type", flags("create cluster-pool"))).toBe("--secret-store-type");
    // One name, different flags: the command decides.
    expect(fieldName("label", flags("select-cluster"))).toBe("--label");
    expect(fieldName("label", flags("update default-label"))).toBe("the LABEL argument");
    // Nothing the operator sets: the API's name stays.
    expect(fieldName("cluster_pool.etag", flags("update cluster-pool"))).toBe("cluster_pool.etag");
    expect(describeViolation("cluster.endpoint", "must be empty with in_cluster auth: it always uses …", flags("create cluster"))).toBe(
      "--endpoint: must be empty with --in-cluster: it always uses …",
    );
  });

  it("puts RPC names as the commands that make those calls", () => {
    expect(translateText('cluster pool "prod" already exists; use UpdateClusterPool to change its config')).toBe(
      'cluster pool "prod" already exists; use clusterplane update cluster-pool to change its config',
    );
    expect(translateText('cluster "a" is ACTIVE; drain it first (DrainCluster) so no new executions are routed to it')).toBe(
      'cluster "a" is ACTIVE; drain it first (clusterplane drain cluster) so no new executions are routed to it',
    );
    expect(translateText("it is the default label (SetDefaultClusterLabel with another label, or empty, first)")).toBe(
      "it is the default label (clusterplane update default-label with another label, or empty, first)",
    );
    // Only whole words: a message type that starts with an RPC's name is left alone.
    expect(translateText("CreateClusterPoolRequest")).toBe("CreateClusterPoolRequest");
  });
});

describe("did you mean", () => {
  it("suggests a known name a typo away, in any case or separator style, and nothing for another word", () => {
    const known = ["object_store_ref", "secret_store", "image_registry"];
    expect(closestName("secret_stor", known)).toBe("secret_store");
    expect(closestName("secretStore", known)).toBe("secret_store");
    expect(closestName("image-registyr", known)).toBe("image_registry");
    expect(closestName("object_store", known)).toBe("object_store_ref");
    expect(closestName("bucket", known)).toBeUndefined();
    expect(closestName("tokenPth", ["type", "tokenPath", "certPath"])).toBe("tokenPath");
  });
});

describe("LightHeaders (the CLI's stand-in for the global Headers)", () => {
  it("behaves as the built-in Headers for everything connect does with headers", () => {
    const build = (Kind: typeof Headers) => {
      const headers = new Kind({ "Content-Type": " application/proto ", "X-B": "1" });
      headers.append("x-b", "2");
      headers.append("Set-Cookie", "a=1");
      headers.append("set-cookie", "b=2");
      headers.set("Connect-Protocol-Version", "1");
      headers.append("trailer-grpc-status", "0");
      headers.delete("TRAILER-GRPC-STATUS");
      const copy = new Kind(headers);
      const fromPairs = new Kind([["A", "x"], ["a", "y"]]);
      const seen: string[] = [];
      copy.forEach((value, key, parent) => seen.push(`${key}=${value}:${parent === copy}`));
      return {
        contentType: copy.get("content-type"),
        combined: copy.get("X-B"),
        missing: copy.get("nope"),
        has: [copy.has("CONNECT-protocol-version"), copy.has("trailer-grpc-status")],
        cookies: copy.getSetCookie(),
        entries: [...copy],
        keys: [...copy.keys()],
        values: [...copy.values()],
        seen,
        fromPairs: [...fromPairs.entries()],
        tag: Object.prototype.toString.call(copy),
      };
    };
    expect(build(LightHeaders)).toEqual(build(Headers));
  });
});
