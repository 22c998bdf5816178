import { readFileSync } from "node:fs";
import {
  ApiException,
  type Configuration,
  KubeConfig,
  KubernetesObjectApi,
  Observable,
  type ObservableMiddleware,
  ServerConfiguration,
  createConfiguration,
} from "@kubernetes/client-node";

/**
 * Working recipes for @kubernetes/client-node 1.4.0 against a token + CA
 * pair (the stand-in's, or a mounted service account's). They exist because
 * several obvious ways of doing these things do not work in 1.4.0; each
 * function says which.
 */

export interface ClusterCredentials {
  server: string;
  tokenPath: string;
  caCertPath: string;
}

/**
 * A KubeConfig from a token file and a CA file.
 *
 * The token is read and trimmed here: mounted tokens usually end in "\n",
 * and 1.4.0 puts the raw text into `Authorization: Bearer …`, which
 * node-fetch rejects before sending ("… is not a legal HTTP header value").
 * The `tokenFile` auth provider has the same problem (it does not trim
 * either). `caFile` is read on every request, so a rotated CA is picked up;
 * `caData`, if used instead, must be the *base64 of the PEM*, not the PEM.
 */
export function kubeConfigFromFiles(credentials: ClusterCredentials): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "cluster", server: credentials.server, caFile: credentials.caCertPath, skipTLSVerify: false }],
    users: [{ name: "user", token: readFileSync(credentials.tokenPath, "utf8").trim() }],
    contexts: [{ name: "context", cluster: "cluster", user: "user" }],
    currentContext: "context",
  });
  return kc;
}

/**
 * Aborts each request that takes longer than `ms` (a fresh AbortSignal per
 * request, set before it is sent). 1.4.0 has no timeout option of its own and
 * node-fetch has no default timeout, so without this a black-holed apiserver
 * hangs the caller forever. An aborted request rejects with node-fetch's
 * AbortError (name "AbortError", type "aborted").
 *
 * Per call on the generated APIs (CoreV1Api, …):
 *   api.readNamespace({ name }, { middleware: [timeoutMiddleware(ms)], middlewareMergeStrategy: "append" })
 * For KubernetesObjectApi the per-call `options` argument is NOT used for
 * middleware (requestPromise reads only the client's own configuration), so
 * build the client with it: see objectApiWithTimeout().
 */
export function timeoutMiddleware(ms: number): ObservableMiddleware {
  return {
    pre(context) {
      context.setSignal(AbortSignal.timeout(ms));
      return new Observable(Promise.resolve(context));
    },
    post(response) {
      return new Observable(Promise.resolve(response));
    },
  };
}

/**
 * A KubernetesObjectApi (the one that does server-side apply) whose every
 * request — including its discovery GET /api/v1 — times out after `ms`.
 * Same as KubernetesObjectApi.makeApiClient(kc) apart from the middleware:
 * the KubeConfig is the auth method, so token and CA handling are unchanged.
 */
export function objectApiWithTimeout(kc: KubeConfig, ms: number): KubernetesObjectApi {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("KubeConfig has no current cluster");
  const configuration: Configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    middleware: [timeoutMiddleware(ms)],
  });
  return new KubernetesObjectApi(configuration);
}

/** How a Kubernetes call failed: the server answered (api), or it did not (transport). */
export type KubeFailure =
  | {
      kind: "api";
      /** HTTP status. */
      code: number;
      /** Status.reason, e.g. "NotFound", "AlreadyExists", "Conflict", "Invalid", "Forbidden"; undefined when the body is not a Status. */
      reason: string | undefined;
      message: string | undefined;
      /** The decoded Status body, when there was one. */
      status: Record<string, unknown> | undefined;
    }
  | {
      kind: "transport";
      /** node-fetch FetchError code (ECONNREFUSED, ECONNRESET, UNABLE_TO_VERIFY_LEAF_SIGNATURE, …), or "ABORTED" for a timeout. */
      code: string | undefined;
      name: string;
      message: string;
    };

/**
 * Sorts an error from client-node into "the server said no" and "could not
 * talk to the server".
 *
 * ApiException.body is the response text (a JSON Status string), not an
 * object — except that the generated APIs (CoreV1Api, …) throw 401 with
 * `body` undefined, so the reason must be inferred from the code there.
 */
export function classifyKubeError(error: unknown): KubeFailure {
  if (error instanceof ApiException) {
    const code = Number(error.code);
    const status = parseStatus(error.body);
    const reason = typeof status?.reason === "string" ? status.reason : code === 401 ? "Unauthorized" : undefined;
    const message = typeof status?.message === "string" ? status.message : undefined;
    return { kind: "api", code, reason, message, status };
  }
  const err = error as { name?: unknown; code?: unknown; type?: unknown; message?: unknown } | undefined;
  const name = typeof err?.name === "string" ? err.name : "Error";
  const code = name === "AbortError" || err?.type === "aborted" ? "ABORTED" : typeof err?.code === "string" ? err.code : undefined;
  return { kind: "transport", code, name, message: typeof err?.message === "string" ? err.message : String(error) };
}

function parseStatus(body: unknown): Record<string, unknown> | undefined {
  if (typeof body === "object" && body !== null) return body as Record<string, unknown>;
  if (typeof body !== "string") return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
