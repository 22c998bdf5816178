import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);

const docs = parseAllDocuments(readFileSync("examples/kubernetes/agent/agent.yaml", "utf8")).map((doc) => doc.toJS() as Record<string, any>);
const byKind = (kind: string) => docs.find((doc) => doc.kind === kind)!;

describe("the agent's Kubernetes example (examples/kubernetes/agent)", () => {
  it("runs one agent under its own ServiceAccount, bound to its ClusterRole", () => {
    expect(docs.map((doc) => doc.kind)).toEqual(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret", "ConfigMap", "Deployment"]);
    const deployment = byKind("Deployment");
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy.type).toBe("Recreate");
    expect(deployment.spec.template.spec.serviceAccountName).toBe(byKind("ServiceAccount").metadata.name);
    const binding = byKind("ClusterRoleBinding");
    expect(binding.roleRef.name).toBe(byKind("ClusterRole").metadata.name);
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "clusterplane-agent", namespace: "clusterplane-agent" }]);
  });

  it("grants what server-side apply needs on namespaces, service accounts and every kind of examples/templates, and no Secrets", () => {
    const rules = byKind("ClusterRole").rules as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    const may = (group: string, resource: string, verb: string) =>
      rules.some((rule) => rule.apiGroups.includes(group) && rule.resources.includes(resource) && rule.verbs.includes(verb) && !rule.resourceNames);
    const templated = readdirSync("examples/templates").flatMap((file) =>
      parseAllDocuments(readFileSync(join("examples/templates", file), "utf8")).map((doc) => doc.toJS() as { apiVersion: string; kind: string }),
    );
    const resources: Record<string, string> = { ResourceQuota: "resourcequotas", ServiceAccount: "serviceaccounts", RoleBinding: "rolebindings" };
    const needed = [
      ["", "namespaces"],
      ["", "serviceaccounts"],
      ...templated.map((object) => [object.apiVersion.includes("/") ? object.apiVersion.split("/")[0]! : "", resources[object.kind]!]),
    ];
    for (const [group, resource] of needed) for (const verb of ["get", "create", "patch"]) expect(may(group!, resource!, verb), `${verb} ${group}/${resource}`).toBe(true);
    expect(rules.some((rule) => rule.resources.includes("secrets") || rule.resources.includes("*") || rule.verbs.includes("*"))).toBe(false);
  });

  it("passes flags the agent knows, with the credential on a writable volume and the join token from the Secret", async () => {
    const container = byKind("Deployment").spec.template.spec.containers[0];
    const args = container.args as string[];
    expect(args[0]).toBe("agent");
    const { stdout: help } = await run(process.execPath, ["--import", "tsx", "src/cli/main.ts", "agent", "--help"]);
    for (const flag of args.filter((arg) => arg.startsWith("--"))) expect(help, flag).toContain(`${flag} <`);
    const value = (flag: string) => args[args.indexOf(flag) + 1]!;
    const volumes = byKind("Deployment").spec.template.spec.volumes as Record<string, any>[];
    const mountOf = (path: string) => (container.volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[]).find((mount) => path.startsWith(`${mount.mountPath}/`))!;
    const state = mountOf(value("--credential-file"));
    expect(state.readOnly).toBeFalsy();
    expect(volumes.find((volume) => volume.name === state.name)!.emptyDir).toBeDefined();
    const join = mountOf(value("--join-token-file"));
    expect(volumes.find((volume) => volume.name === join.name)!.secret.secretName).toBe(byKind("Secret").metadata.name);
    expect(value("--join-token-file").endsWith(`/${Object.keys(byKind("Secret").stringData)[0]}`)).toBe(true);
    expect(value("--control-plane")).toMatch(/^https:\/\//);
  }, 30_000);
});
