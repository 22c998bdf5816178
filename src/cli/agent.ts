import { readFileSync } from "node:fs";
import packageJson from "../../package.json" with { type: "json" };
import { runAgent, type AgentOptions } from "../agent/agent.js";
import { DEFAULT_CREDENTIAL_FILE } from "../agent/credential-file.js";
import { parseDuration } from "../core/duration.js";
import { isLoopback } from "../core/loopback.js";
import { createLogger, LOG_LEVELS } from "../server/logging.js";
import { parseCaBundle } from "../sync/credential-files.js";
import { CliError } from "./exit.js";

/** `clusterplane agent`'s flags, as commander hands them over. */
export interface AgentFlags {
  controlPlane?: string;
  caFile?: string;
  joinToken?: string;
  joinTokenFile?: string;
  credentialFile?: string;
  kubeconfig?: string;
  interval?: string;
  heartbeat?: string;
  fullResync?: string;
  requestTimeout?: string;
  logLevel?: string;
}

/** `clusterplane agent`: runs the pull-mode agent until SIGTERM or SIGINT. */
export async function agent(flags: AgentFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const options = agentOptions(flags, env);
  const logLevel = flags.logLevel ?? env.CLUSTERPLANE_LOG_LEVEL ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new CliError(`--log-level "${logLevel}" must be one of ${LOG_LEVELS.join(", ")}`);
  const logger = createLogger(logLevel);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  try {
    process.exitCode = await runAgent(options, logger, stop.signal);
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

/** The agent's settings from flags, else the environment, else the defaults; a CliError (exit 2) names what is wrong. */
export function agentOptions(flags: AgentFlags, env: NodeJS.ProcessEnv = process.env): AgentOptions {
  const controlPlane = controlPlaneUrl(flags.controlPlane ?? env.CLUSTERPLANE_CONTROL_PLANE);
  const caFile = flags.caFile ?? env.CLUSTERPLANE_CA_FILE;
  let caPem: string | undefined;
  if (caFile) {
    if (controlPlane.startsWith("http:")) throw new CliError(`--ca-file is for an https control plane; ${controlPlane} is http`);
    try {
      caPem = parseCaBundle(readFileSync(caFile, "utf8"), caFile);
    } catch (error) {
      throw new CliError(`--ca-file ${caFile}: ${(error as Error).message}`);
    }
  }
  const inline = flags.joinToken ?? env.CLUSTERPLANE_JOIN_TOKEN;
  const tokenFile = flags.joinTokenFile ?? env.CLUSTERPLANE_JOIN_TOKEN_FILE;
  if (inline && tokenFile) throw new CliError("give the join token once: --join-token (CLUSTERPLANE_JOIN_TOKEN) or --join-token-file (CLUSTERPLANE_JOIN_TOKEN_FILE), not both");
  const joinToken = tokenFile ? () => readJoinTokenFile(tokenFile) : () => inline?.trim() || undefined;
  const intervalMs = durationOf("--interval", flags.interval ?? env.CLUSTERPLANE_AGENT_INTERVAL ?? "60s", 100);
  const heartbeatMs = durationOf("--heartbeat", flags.heartbeat ?? env.CLUSTERPLANE_AGENT_HEARTBEAT ?? "10s", 100);
  const fullResyncMs = durationOf("--full-resync", flags.fullResync ?? env.CLUSTERPLANE_AGENT_FULL_RESYNC ?? "10m", 0);
  const requestTimeoutMs = durationOf("--request-timeout", flags.requestTimeout ?? env.CLUSTERPLANE_AGENT_REQUEST_TIMEOUT ?? "10s", 100);
  return {
    controlPlane,
    caPem,
    joinToken,
    credentialFile: flags.credentialFile ?? env.CLUSTERPLANE_AGENT_CREDENTIAL_FILE ?? DEFAULT_CREDENTIAL_FILE,
    kube: { kubeconfig: flags.kubeconfig, env },
    intervalMs,
    heartbeatMs,
    fullResyncMs,
    requestTimeoutMs,
    requestsInFlight: 8,
    version: packageJson.version,
  };
}

/**
 * The control plane's URL: https, or http to a loopback address only (a join token and the agent
 * credential must not cross a network in the clear).
 */
export function controlPlaneUrl(value: string | undefined): string {
  if (!value) throw new CliError("--control-plane URL is required (or CLUSTERPLANE_CONTROL_PLANE): the URL `clusterplane create cluster` printed in the agent command");
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(`--control-plane "${value}" is not a URL; for example https://clusterplane.example.com`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new CliError(`--control-plane ${value} must be an https:// URL`);
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    throw new CliError(
      `--control-plane ${value} is plain http to another host: the join token and the agent credential would cross the network in the clear; ` +
        "serve the control plane over TLS and use https:// (with --ca-file for a private CA)",
    );
  }
  if (url.search || url.hash || url.username || url.password) throw new CliError(`--control-plane ${value} must be a plain URL, without credentials, query or fragment`);
  return url.toString().replace(/\/+$/, "");
}

function durationOf(flag: string, value: string, minMs: number): number {
  // A bare number would be milliseconds: `--interval 60` meaning 60 ms is a trap, so units are required.
  const ms = /[a-z]\s*$/i.test(value) || value.trim() === "0" ? parseDuration(value) : null;
  if (ms === null) throw new CliError(`${flag} "${value}" must be a duration with a unit, such as 500ms, 10s, 5m or 1h`);
  if (ms < minMs) throw new CliError(`${flag} ${value} is too short: at least ${minMs} ms`);
  return ms;
}

/** A join token from a file (a mounted Secret); undefined when the file is missing or empty. */
function readJoinTokenFile(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim() || undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CliError(`--join-token-file ${path}: ${(error as Error).message}`);
  }
}
