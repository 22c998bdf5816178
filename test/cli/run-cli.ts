import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const FIXTURES = join(import.meta.dirname, "fixtures");
export const fixture = (name: string) => join(FIXTURES, name);

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export type Cli = (args: string[], options?: { env?: NodeJS.ProcessEnv; input?: string }) => Promise<CliResult>;

/**
 * Runs `bin/clusterplane.mjs` as its own process, asynchronously: the server answering it runs in
 * this process, so a synchronous spawn would block its event loop and hang. stdin is a pipe, not a
 * terminal, as in a script. The environment is the test's only: no CLUSTERPLANE_*, VISUAL or config
 * file of whoever runs the tests leaks in.
 */
export function cliAgainst(endpoint: string | undefined): Cli {
  // A config home that does not exist: the default config file is absent, as on a fresh machine.
  const configHome = join(tmpdir(), "clusterplane-cli-tests-no-config-home");
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("CLUSTERPLANE_") && key !== "VISUAL"));
  return (args, options = {}) =>
    new Promise((resolve, reject) => {
      const env = { ...base, XDG_CONFIG_HOME: configHome, ...(endpoint ? { CLUSTERPLANE_ENDPOINT: endpoint } : {}), ...options.env };
      const child = spawn(process.execPath, ["bin/clusterplane.mjs", ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(options.input ?? "");
    });
}

/** The rows of a table as cells, split where the header's columns start. */
export function tableRows(text: string): Record<string, string>[] {
  const [header, ...rows] = text.trimEnd().split("\n");
  const starts = [...header!.matchAll(/(?:^|\s{2,})(\S+(?: \S+)*)/g)].map((match) => ({ name: match[1]!, at: match.index! + match[0].indexOf(match[1]!) }));
  return rows.map((row) =>
    Object.fromEntries(starts.map((column, index) => [column.name, row.slice(column.at, starts[index + 1]?.at).trim()])),
  );
}
