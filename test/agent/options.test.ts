import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kubeSource, readKubeTarget } from "../../src/agent/kube-target.js";
import { agentOptions, controlPlaneUrl } from "../../src/cli/agent.js";
import { testPki } from "../support/kube/test-ca.js";

const pki = testPki("agent-options");

function kubeconfig(cluster: string, user: string): string {
  const dir = mkdtempSync(join(tmpdir(), "agent-kubeconfig-"));
  const path = join(dir, "config");
  writeFileSync(
    path,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n${cluster}\nusers:\n- name: u\n  user:\n${user}\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u}\ncurrent-context: ctx\n`,
  );
  return path;
}

const CA_DATA = `    certificate-authority-data: ${Buffer.from(pki.caCertPem).toString("base64")}`;

describe("clusterplane agent's settings", () => {
  it("takes the control plane as https, or http to loopback only", () => {
    expect(controlPlaneUrl("https://cp.example.com/")).toBe("https://cp.example.com");
    expect(controlPlaneUrl("http://127.0.0.1:8080")).toBe("http://127.0.0.1:8080");
    expect(controlPlaneUrl("http://localhost:8080")).toBe("http://localhost:8080");
    expect(controlPlaneUrl("http://[::1]:8080")).toBe("http://[::1]:8080");
    expect(() => controlPlaneUrl("http://cp.example.com")).toThrow(/plain http to another host/);
    expect(() => controlPlaneUrl("ftp://cp.example.com")).toThrow(/must be an https:\/\/ URL/);
    expect(() => controlPlaneUrl("cp.example.com")).toThrow(/not a URL/);
    expect(() => controlPlaneUrl("https://user:pw@cp.example.com")).toThrow(/without credentials/);
    expect(() => controlPlaneUrl(undefined)).toThrow(/--control-plane URL is required/);
  });

  it("reads flags, else the environment, else the defaults; durations need a unit", () => {
    const env = { CLUSTERPLANE_CONTROL_PLANE: "https://cp.example.com", CLUSTERPLANE_JOIN_TOKEN: "cpjoin_env", CLUSTERPLANE_AGENT_HEARTBEAT: "5s" };
    const options = agentOptions({}, env);
    expect(options).toMatchObject({
      controlPlane: "https://cp.example.com",
      credentialFile: "./clusterplane-agent.credential",
      intervalMs: 60_000,
      heartbeatMs: 5_000,
      fullResyncMs: 600_000,
      requestTimeoutMs: 10_000,
    });
    expect(options.joinToken()).toBe("cpjoin_env");
    expect(agentOptions({ joinToken: "cpjoin_flag", interval: "30s", fullResync: "0" }, env)).toMatchObject({ intervalMs: 30_000, fullResyncMs: 0 });
    expect(agentOptions({ joinToken: "cpjoin_flag" }, env).joinToken()).toBe("cpjoin_flag");
    expect(() => agentOptions({ interval: "60" }, env)).toThrow(/--interval "60" must be a duration with a unit/);
    expect(() => agentOptions({ heartbeat: "1ms" }, env)).toThrow(/--heartbeat 1ms is too short/);
  });

  it("reads the join token from a file each time it is needed (a Secret may be replaced)", () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-join-"));
    const file = join(dir, "join-token");
    const options = agentOptions({ controlPlane: "https://cp.example.com", joinTokenFile: file }, {});
    expect(options.joinToken()).toBeUndefined();
    writeFileSync(file, "cpjoin_one\n");
    expect(options.joinToken()).toBe("cpjoin_one");
    writeFileSync(file, "cpjoin_two");
    expect(options.joinToken()).toBe("cpjoin_two");
    expect(() => agentOptions({ controlPlane: "https://cp.example.com", joinTokenFile: file, joinToken: "x" }, {})).toThrow(/not both/);
  });

  it("takes a private CA for the control plane, refusing a file without a certificate", () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-ca-"));
    const ca = join(dir, "ca.crt");
    writeFileSync(ca, pki.caCertPem);
    expect(agentOptions({ controlPlane: "https://cp.example.com", caFile: ca }, {}).caPem).toContain("BEGIN CERTIFICATE");
    writeFileSync(ca, "nothing");
    expect(() => agentOptions({ controlPlane: "https://cp.example.com", caFile: ca }, {})).toThrow(/holds no PEM certificate/);
  });
});

describe("the agent's Kubernetes access", () => {
  it("comes from --kubeconfig, else KUBECONFIG, else in-cluster, else says what to give", () => {
    expect(kubeSource({ kubeconfig: "/k", env: { KUBECONFIG: "/a:/b" } })).toEqual({ kind: "kubeconfig", files: ["/k"] });
    expect(kubeSource({ env: { KUBECONFIG: "/a:/b" } })).toEqual({ kind: "kubeconfig", files: ["/a", "/b"] });
    expect(kubeSource({ env: { KUBERNETES_SERVICE_HOST: "10.0.0.1" } })).toEqual({ kind: "in-cluster" });
    expect(() => kubeSource({ env: {} })).toThrow(/no Kubernetes credentials: run the agent in the cluster .* --kubeconfig FILE or KUBECONFIG/);
  });

  it("reads the server, CA data and token of the current context", () => {
    const path = kubeconfig(`    server: https://10.0.0.1:6443/\n${CA_DATA}`, "    token: abc.def");
    const target = readKubeTarget({ kubeconfig: path, env: {} });
    expect(target.credentials).toEqual({ endpoint: "https://10.0.0.1:6443", token: "abc.def", caPem: pki.caCertPem.trim() + "\n" });
    expect(target.names.token).toBe(`the token of user u in ${path}`);
    expect(target.source).toContain("(context ctx)");
  });

  it("reads a CA file and a token file relative to the kubeconfig", () => {
    const path = kubeconfig("    server: https://10.0.0.1:6443\n    certificate-authority: ca.crt", "    tokenFile: token");
    const dir = join(path, "..");
    writeFileSync(join(dir, "ca.crt"), pki.caCertPem);
    writeFileSync(join(dir, "token"), "from-file\n");
    expect(readKubeTarget({ env: { KUBECONFIG: path } }).credentials.token).toBe("from-file");
  });

  it("refuses what it cannot use, saying what to give instead", () => {
    const server = "    server: https://10.0.0.1:6443";
    expect(() => readKubeTarget({ kubeconfig: kubeconfig(`${server}\n${CA_DATA}`, "    client-certificate-data: eA==\n    client-key-data: eA=="), env: {} })).toThrow(
      /authenticates with a client certificate, which the agent does not support: give the agent a kubeconfig with a bearer token/,
    );
    expect(() => readKubeTarget({ kubeconfig: kubeconfig(`${server}\n${CA_DATA}`, "    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1beta1}"), env: {} })).toThrow(/an exec credential plugin/);
    expect(() => readKubeTarget({ kubeconfig: kubeconfig(`${server}\n    insecure-skip-tls-verify: true`, "    token: t"), env: {} })).toThrow(/insecure-skip-tls-verify/);
    expect(() => readKubeTarget({ kubeconfig: kubeconfig(server, "    token: t"), env: {} })).toThrow(/no certificate-authority/);
    expect(() => readKubeTarget({ kubeconfig: kubeconfig(`    server: http://10.0.0.1:8080\n${CA_DATA}`, "    token: t"), env: {} })).toThrow(/over https only/);
    expect(() => readKubeTarget({ kubeconfig: "/nonexistent/kubeconfig", env: {} })).toThrow(/cannot load the kubeconfig \/nonexistent\/kubeconfig/);
  });
});
