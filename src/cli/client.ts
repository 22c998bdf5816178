import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { parse as parseYaml } from "yaml";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { WatchService } from "../../gen/clusterplane/v1/watch_pb.js";
import { QueueService } from "../../gen/clusterplane/v1/queue_pb.js";
import { CliError } from "./exit.js";
import { createHttp1Client } from "./http1-client.js";
import { useLightHeaders } from "./light-headers.js";

export const DEFAULT_ENDPOINT = "http://127.0.0.1:8080";
const CALL_TIMEOUT_MS = 30_000;

/** The program-level options: where the server is and who we are. */
export interface ConnectionFlags {
  endpoint?: string;
  token?: string;
  org?: string;
}

export interface Connection {
  endpoint: string;
  token: string | undefined;
  org: string;
}

interface ConfigFile {
  endpoint?: string;
  token?: string;
  org?: string;
}

/**
 * Each setting from its flag, else its environment variable, else the config file
 * ($CLUSTERPLANE_CONFIG or ~/.config/clusterplane/cli.yaml), else the default.
 */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Connection {
  const file = readConfigFile(env);
  const endpoint = flags.endpoint ?? env.CLUSTERPLANE_ENDPOINT ?? file.endpoint ?? DEFAULT_ENDPOINT;
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new CliError(`endpoint "${endpoint}" must be an http:// or https:// URL, for example ${DEFAULT_ENDPOINT}`);
  }
  const token = flags.token ?? env.CLUSTERPLANE_TOKEN ?? file.token;
  return { endpoint: endpoint.replace(/\/+$/, ""), token: token || undefined, org: flags.org ?? env.CLUSTERPLANE_ORG ?? file.org ?? "" };
}

function readConfigFile(env: NodeJS.ProcessEnv): ConfigFile {
  const explicit = env.CLUSTERPLANE_CONFIG;
  const path = explicit ?? join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "clusterplane", "cli.yaml");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    // Only a file the operator named must exist; the default location is optional.
    if (!explicit && (error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new CliError(`cannot read the config file ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new CliError(`the config file ${path} is not valid YAML: ${(error as Error).message}`);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw new CliError(`the config file ${path} must be a mapping of endpoint, token, org`);
  const config: ConfigFile = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key !== "endpoint" && key !== "token" && key !== "org") {
      throw new CliError(`the config file ${path}: unknown key "${key}" (known: endpoint, token, org)`);
    }
    if (typeof value !== "string") throw new CliError(`the config file ${path}: ${key} must be a string`);
    config[key] = value;
  }
  return config;
}

/** One client per service, all over one Connect (HTTP/1.1) transport. */
export interface Api {
  pools: Client<typeof ClusterPoolService>;
  clusters: Client<typeof ClusterService>;
  queues: Client<typeof QueueService>;
  labels: Client<typeof ExecutionClusterLabelService>;
  projects: Client<typeof ProjectService>;
  watch: Client<typeof WatchService>;
}

export function createApi(connection: Connection): Api {
  const interceptors: Interceptor[] = [];
  const { token } = connection;
  if (token) {
    interceptors.push((next) => (request) => {
      request.header.set("Authorization", `Bearer ${token}`);
      return next(request);
    });
  }
  // The Connect protocol in binary over HTTP/1.1, as connect-node's createConnectTransport would
  // speak it, over a client that loads less (see createHttp1Client).
  const transport = createTransport({
    httpClient: createHttp1Client(),
    baseUrl: connection.endpoint,
    useBinaryFormat: true,
    interceptors,
    acceptCompression: [],
    sendCompression: null,
    defaultTimeoutMs: CALL_TIMEOUT_MS,
    ...validateReadWriteMaxBytes(undefined, undefined, undefined),
  });
  return {
    pools: createClient(ClusterPoolService, transport),
    clusters: createClient(ClusterService, transport),
    queues: createClient(QueueService, transport),
    labels: createClient(ExecutionClusterLabelService, transport),
    projects: createClient(ProjectService, transport),
    watch: createClient(WatchService, transport),
  };
}

/** A connected session: what every operator command works with. */
export interface Session {
  api: Api;
  org: string;
  endpoint: string;
}

/** One page of a list call. */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

export const MAX_PAGE_SIZE = 1000;

/**
 * Walks pages until `limit` items (all of them without a limit). `truncated` says more exist, so
 * the operator learns that the list is not the whole story.
 */
export async function collect<T>(
  fetchPage: (pageSize: number, pageToken: string) => Promise<Page<T>>,
  limit: number | undefined,
  pageSize: number | undefined,
): Promise<{ items: T[]; truncated: boolean }> {
  const items: T[] = [];
  let token = "";
  for (;;) {
    const remaining = limit === undefined ? MAX_PAGE_SIZE : limit - items.length;
    const page = await fetchPage(Math.min(pageSize ?? MAX_PAGE_SIZE, remaining, MAX_PAGE_SIZE), token);
    items.push(...page.items.slice(0, remaining));
    token = page.nextPageToken;
    if (token === "") return { items, truncated: page.items.length > remaining };
    if (limit !== undefined && items.length >= limit) return { items, truncated: true };
  }
}

export function openSession(flags: ConnectionFlags): Session {
  useLightHeaders();
  const connection = resolveConnection(flags);
  return { api: createApi(connection), org: connection.org, endpoint: connection.endpoint };
}
