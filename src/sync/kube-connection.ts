import https from "node:https";
import {
  ApiException,
  createConfiguration,
  KubernetesObjectApi,
  PatchStrategy,
  ServerConfiguration,
  type RequestContext,
} from "@kubernetes/client-node";
import { checkCredentialPath, type ClusterAuth } from "../core/cluster.js";
import {
  CredentialFileError,
  MAX_CA_FILE_BYTES,
  MAX_TOKEN_FILE_BYTES,
  parseCaBundle,
  readConfinedFile,
} from "../core/credential-files.js";
import type { KubeObject } from "../core/template.js";

export const FIELD_MANAGER = "clusterplane";

const IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** What a connection is made of; read from files on every pass so rotated credentials are used. */
export interface Credentials {
  endpoint: string;
  token: string;
  caPem: string;
}

/**
 * Reads a cluster's credentials. Paths outside the credential directories are refused here too,
 * whatever is stored, and again once symbolic links are followed. The CA is read first: without a
 * usable one the token is never even loaded. Throws a CredentialFileError.
 */
export function readCredentials(
  endpoint: string,
  auth: ClusterAuth,
  credentialDirectories: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Credentials {
  if (auth.kind === "bearer_token_file") {
    for (const path of [auth.tokenPath, auth.caCertPath]) {
      const problem = checkCredentialPath(path, credentialDirectories);
      if (problem) throw new CredentialFileError(path, "outside", problem);
    }
    const caPem = readCa(auth.caCertPath, credentialDirectories);
    return { endpoint, caPem, token: readToken(auth.tokenPath, credentialDirectories) };
  }
  // In-cluster auth only ever talks to the API server of the cluster the control plane runs in.
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) throw new Error("in-cluster auth needs KUBERNETES_SERVICE_HOST: the control plane is not running in a pod");
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  const caPem = readCa(`${IN_CLUSTER_DIR}/ca.crt`, [IN_CLUSTER_DIR]);
  return {
    endpoint: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    caPem,
    token: readToken(`${IN_CLUSTER_DIR}/token`, [IN_CLUSTER_DIR]),
  };
}

function readCa(path: string, directories: readonly string[]): string {
  return parseCaBundle(readConfinedFile(path, directories, MAX_CA_FILE_BYTES).toString("utf8"), path);
}

/**
 * A token file often ends with a newline, which must not reach the header. Anything else that is
 * not a visible character means the file holds more than a token, and the header would be refused
 * (or split) further down with a less useful message.
 */
function readToken(path: string, directories: readonly string[]): string {
  const token = readConfinedFile(path, directories, MAX_TOKEN_FILE_BYTES).toString("utf8").trim();
  if (token === "") throw new CredentialFileError(path, "empty", "is empty");
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new CredentialFileError(path, "malformed", "holds more than a token: whitespace, control or non-ASCII characters inside it");
  }
  return token;
}

/**
 * A server-side-apply client for one cluster. One keep-alive agent per connection (client-node's
 * own KubeConfig authentication builds a new agent, and so a new TLS handshake, per request), the
 * CA always verified, and a timeout on every request.
 */
export class KubeConnection {
  private readonly agent: https.Agent;
  private readonly api: KubernetesObjectApi;

  constructor(
    readonly credentials: Credentials,
    options: { requestTimeoutMs: number; maxSockets: number },
  ) {
    // An agent given no CA trusts the public roots: never let that be the fallback.
    parseCaBundle(credentials.caPem, "(CA of the connection)");
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: options.maxSockets,
      ca: credentials.caPem,
      rejectUnauthorized: true,
    });
    const authorization = `Bearer ${credentials.token}`;
    const agent = this.agent;
    const configuration = createConfiguration({
      baseServer: new ServerConfiguration(credentials.endpoint.replace(/\/+$/, ""), {}),
      authMethods: {
        default: {
          getName: () => "clusterplane bearer token",
          applySecurityAuthentication: async (context: RequestContext) => {
            context.setHeaderParam("Authorization", authorization);
            context.setAgent(agent);
          },
        },
      },
      promiseMiddleware: [
        {
          pre: async (context: RequestContext) => {
            context.setSignal(AbortSignal.timeout(options.requestTimeoutMs));
            return context;
          },
          post: async (response) => response,
        },
      ],
    });
    this.api = new KubernetesObjectApi(configuration);
  }

  /** Server-side apply with field manager `clusterplane`, taking ownership of conflicting fields. */
  async apply(object: KubeObject): Promise<void> {
    try {
      await this.patch(object);
    } catch (error) {
      // A kept-alive connection the server has since closed fails once; apply is idempotent, so retry.
      if (!isStaleConnection(error)) throw error;
      await this.patch(object);
    }
  }

  private async patch(object: KubeObject): Promise<void> {
    await this.api.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Whether an error condemns the whole cluster pass (unreachable, unauthorized, overloaded) or one object. */
export interface ApplyFailure {
  scope: "cluster" | "object";
  message: string;
}

export function describeFailure(error: unknown, requestTimeoutMs: number): ApplyFailure {
  if (error instanceof ApiException) {
    const status = parseStatus(error.body);
    const message = `${error.code} ${status.reason || "error"}: ${status.message || "no message"}`;
    const clusterWide = error.code === 401 || error.code === 429 || error.code >= 500;
    return { scope: clusterWide ? "cluster" : "object", message };
  }
  return { scope: "cluster", message: transportMessage(error, requestTimeoutMs) };
}

function errorChain(error: unknown): { name?: string; code?: string; message?: string }[] {
  const chain: { name?: string; code?: string; message?: string }[] = [];
  for (let e = error as { cause?: unknown } | undefined; e && chain.length < 5; e = e.cause as typeof e) chain.push(e as never);
  return chain;
}

function isStaleConnection(error: unknown): boolean {
  return !(error instanceof ApiException) && errorChain(error).some((e) => e.code === "ECONNRESET" || e.code === "EPIPE");
}

function parseStatus(body: unknown): { reason: string; message: string } {
  try {
    const status = (typeof body === "string" ? JSON.parse(body) : body) as { reason?: string; message?: string };
    return { reason: status?.reason ?? "", message: status?.message ?? "" };
  } catch {
    return { reason: "", message: String(body).slice(0, 200) };
  }
}

function transportMessage(error: unknown, requestTimeoutMs: number): string {
  const chain = errorChain(error);
  if (chain.some((e) => e.name === "AbortError" || e.name === "TimeoutError" || e.code === "ABORT_ERR")) {
    return `no answer within ${requestTimeoutMs} ms`;
  }
  const code = chain.map((e) => e.code).find((c) => typeof c === "string" && c !== "");
  const message = chain.map((e) => e.message).find(Boolean) ?? String(error);
  if (code === "ECONNREFUSED") return `connection refused: ${message}`;
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) return `TLS verification failed (${code}): check the CA certificate file`;
  return code ? `${code}: ${message}` : message;
}
