/**
 * How the agent reaches its own cluster's Kubernetes API: a kubeconfig (`--kubeconfig`, else
 * KUBECONFIG, as every Kubernetes tool does), else the pod's in-cluster credentials. Read again
 * before every pass, so a rotated service-account token (projected tokens last an hour) is used.
 */
import { readFileSync } from "node:fs";
import { delimiter, dirname, resolve } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { readCredentials, type Credentials } from "../sync/kube-connection.js";
import { parseCaBundle } from "../sync/credential-files.js";
import type { TargetNames } from "../sync/failures.js";

const IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface KubeTarget {
  credentials: Credentials;
  /** How failure messages name the endpoint, token and CA. */
  names: TargetNames;
  /** For the start-up log line: "kubeconfig ~/.kube/config (context kind-prod)" or "in-cluster". */
  source: string;
}

/** The Kubernetes access cannot be used as configured; the message says what to change. */
export class KubeTargetError extends Error {
  override readonly name = "KubeTargetError";
}

export interface KubeTargetOptions {
  /** --kubeconfig. */
  kubeconfig?: string;
  env?: NodeJS.ProcessEnv;
}

/** Where the credentials come from, decided once at start: a kubeconfig, or in-cluster. */
export function kubeSource(options: KubeTargetOptions): { kind: "kubeconfig"; files: string[] } | { kind: "in-cluster" } {
  const env = options.env ?? process.env;
  if (options.kubeconfig) return { kind: "kubeconfig", files: [options.kubeconfig] };
  const files = (env.KUBECONFIG ?? "").split(delimiter).filter(Boolean);
  if (files.length > 0) return { kind: "kubeconfig", files };
  if (env.KUBERNETES_SERVICE_HOST) return { kind: "in-cluster" };
  throw new KubeTargetError(
    "no Kubernetes credentials: run the agent in the cluster (a pod with a service account), " +
      "or give a kubeconfig with --kubeconfig FILE or KUBECONFIG",
  );
}

/** Reads the credentials now. Throws a KubeTargetError (or the credential files' own error) saying what is wrong. */
export function readKubeTarget(options: KubeTargetOptions): KubeTarget {
  const env = options.env ?? process.env;
  const source = kubeSource(options);
  if (source.kind === "in-cluster") {
    const credentials = readCredentials("", { kind: "in_cluster" }, [IN_CLUSTER_DIR], env);
    return {
      credentials,
      names: {
        endpoint: credentials.endpoint,
        token: `the service account token ${IN_CLUSTER_DIR}/token (the agent's ServiceAccount)`,
        ca: `the cluster CA ${IN_CLUSTER_DIR}/ca.crt`,
      },
      source: `in-cluster (${credentials.endpoint})`,
    };
  }
  return fromKubeconfig(source.files);
}

function fromKubeconfig(files: string[]): KubeTarget {
  const named = files.join(delimiter);
  const config = new KubeConfig();
  try {
    config.loadFromFile(files[0]!);
    for (const file of files.slice(1)) {
      const more = new KubeConfig();
      more.loadFromFile(file);
      config.mergeConfig(more, true);
    }
  } catch (error) {
    throw new KubeTargetError(`cannot load the kubeconfig ${named}: ${(error as Error).message}`);
  }
  const context = config.getCurrentContext();
  const cluster = config.getCurrentCluster();
  const user = config.getCurrentUser();
  const where = `the kubeconfig ${named}${context ? ` (context ${context})` : ""}`;
  if (!cluster || !user) {
    throw new KubeTargetError(`${where} names no current cluster and user: set current-context (kubectl config use-context NAME)`);
  }
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new KubeTargetError(`${where}: cluster ${cluster.name} has server "${cluster.server}", which is not a URL`);
  }
  if (server.protocol !== "https:") throw new KubeTargetError(`${where}: cluster ${cluster.name} has server ${cluster.server}; the agent speaks to Kubernetes over https only`);
  if (cluster.skipTLSVerify) {
    throw new KubeTargetError(`${where}: cluster ${cluster.name} sets insecure-skip-tls-verify; the agent always verifies the API server: give certificate-authority(-data) instead`);
  }
  let caPem: string;
  if (cluster.caData) caPem = parseCaBundle(Buffer.from(cluster.caData, "base64").toString("utf8"), `certificate-authority-data of cluster ${cluster.name} in ${named}`);
  else if (cluster.caFile) {
    let text: string;
    try {
      text = readFileSync(cluster.caFile, "utf8");
    } catch (error) {
      throw new KubeTargetError(`${where}: cannot read certificate-authority ${cluster.caFile}: ${(error as Error).message}`);
    }
    caPem = parseCaBundle(text, cluster.caFile);
  } else {
    throw new KubeTargetError(`${where}: cluster ${cluster.name} has no certificate-authority or certificate-authority-data; the agent verifies the API server against it`);
  }
  const unsupported = user.exec
    ? "an exec credential plugin"
    : user.authProvider
      ? "an auth-provider"
      : user.certData || user.certFile || user.keyData || user.keyFile
        ? "a client certificate"
        : user.username || user.password
          ? "a user name and password"
          : "";
  const token = (user.token || tokenFileOf(files, user.name) || "").trim();
  if (token === "") {
    throw new KubeTargetError(
      `${where}: user ${user.name} ${unsupported ? `authenticates with ${unsupported}, which the agent does not support` : "has no token"}: ` +
        "give the agent a kubeconfig with a bearer token (token or tokenFile), for example a ServiceAccount's, or run it in the cluster",
    );
  }
  if (!/^[\x21-\x7e]+$/.test(token)) throw new KubeTargetError(`${where}: the token of user ${user.name} holds whitespace, control or non-ASCII characters`);
  const endpoint = cluster.server.replace(/\/+$/, "");
  return {
    credentials: { endpoint, token, caPem },
    names: {
      endpoint,
      token: `the token of user ${user.name} in ${named}`,
      ca: `the certificate authority of cluster ${cluster.name} in ${named}`,
    },
    source: `kubeconfig ${named}${context ? ` (context ${context})` : ""}, API server ${endpoint}`,
  };
}

/**
 * kubectl's `tokenFile` (client-node only knows `token-file`, read relative to the working
 * directory): the token read from the file named by the first kubeconfig that defines `userName`,
 * relative to that kubeconfig, as kubectl resolves it.
 */
function tokenFileOf(files: string[], userName: string): string | undefined {
  for (const file of files) {
    let raw: { users?: { name?: string; user?: { tokenFile?: unknown; "token-file"?: unknown } }[] };
    try {
      raw = parseYaml(readFileSync(file, "utf8")) as typeof raw;
    } catch {
      continue;
    }
    const entry = raw?.users?.find((candidate) => candidate?.name === userName);
    if (!entry) continue;
    const path = entry.user?.tokenFile ?? entry.user?.["token-file"];
    if (typeof path !== "string" || path === "") return undefined;
    const absolute = resolve(dirname(file), path);
    try {
      return readFileSync(absolute, "utf8");
    } catch (error) {
      throw new KubeTargetError(`the kubeconfig ${file}: cannot read the tokenFile ${absolute} of user ${userName}: ${(error as Error).message}`);
    }
  }
  return undefined;
}
