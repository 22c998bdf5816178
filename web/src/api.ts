/**
 * The API from the browser: @connectrpc/connect-web's Connect transport to the page's own origin,
 * with the token the user signed in with (sessionStorage: this tab only) as a bearer token.
 */
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { signal } from "@preact/signals";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import { WatchService } from "../../gen/clusterplane/v1/watch_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";

const TOKEN_KEY = "clusterplane.token";

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** The bearer token of this tab; null without one (auth off, or not signed in yet). */
export const token = signal<string | null>(storedToken());

export function setToken(value: string | null): void {
  token.value = value;
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode): the token lives as long as the page.
  }
}

const withToken: Interceptor = (next) => (request) => {
  if (token.value) request.header.set("Authorization", `Bearer ${token.value}`);
  return next(request);
};

export const transport = createConnectTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [withToken],
});

export const api = {
  clusters: createClient(ClusterService, transport),
  pools: createClient(ClusterPoolService, transport),
  labels: createClient(ExecutionClusterLabelService, transport),
  projects: createClient(ProjectService, transport),
  queues: createClient(QueueService, transport),
  watch: createClient(WatchService, transport),
};

export type Role = "admin" | "viewer" | "router" | "agent";

export interface Identity {
  authEnabled: boolean;
  name: string;
  role: Role | null;
}

/** Who the token is (GET /console/identity); an Error with the server's words when it is refused. */
export async function fetchIdentity(candidate: string | null): Promise<Identity> {
  const headers: Record<string, string> = {};
  if (candidate) headers.Authorization = `Bearer ${candidate}`;
  const response = await fetch("/console/identity", { headers, cache: "no-store" });
  const body = (await response.json()) as Partial<Identity> & { error?: string };
  if (!response.ok) throw Object.assign(new Error(body.error ?? `HTTP ${response.status}`), { authEnabled: body.authEnabled ?? true });
  return { authEnabled: Boolean(body.authEnabled), name: body.name ?? "", role: body.role ?? null };
}

export interface FieldProblem {
  field: string;
  description: string;
}

/** The server's field violations (google.rpc.BadRequest) of an error, if any. */
export function fieldViolations(error: unknown): FieldProblem[] {
  const connectError = ConnectError.from(error);
  return connectError.findDetails(BadRequestSchema).flatMap((detail) =>
    detail.fieldViolations.map((violation) => ({ field: violation.field, description: violation.description })),
  );
}

/** One sentence for a person: what the server said, with what it means for PERMISSION_DENIED and the like. */
export function describeError(error: unknown): string {
  const connectError = ConnectError.from(error);
  const message = connectError.rawMessage;
  switch (connectError.code) {
    case Code.PermissionDenied:
      return `Refused by the server (permission denied): ${message}`;
    case Code.Unauthenticated:
      return `Not signed in, or the token is no longer valid: ${message}`;
    case Code.FailedPrecondition:
      return `Not possible now: ${message}`;
    case Code.InvalidArgument:
      return `Invalid: ${message}`;
    case Code.NotFound:
      return `Not found: ${message}`;
    case Code.AlreadyExists:
      return `Already exists: ${message}`;
    case Code.Aborted:
      return `Changed meanwhile (reload and retry): ${message}`;
    case Code.Unavailable:
      return `The server cannot be reached: ${message}`;
    default:
      return `${Code[connectError.code] ?? "Error"}: ${message}`;
  }
}

export function isCode(error: unknown, code: Code): boolean {
  return ConnectError.from(error).code === code;
}
