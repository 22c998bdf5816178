/**
 * What the benches that run `clusterplane serve` as a process of its own share: starting it from
 * a tree's sources, and talking to a helper process of the bench's over lines of stdin/stdout.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface Served {
  child: ChildProcess;
  url: string;
  port: number;
}

/**
 * `clusterplane serve` from the sources of `tree`, on `db`, once it listens. The sync loop is off
 * unless `sync` is set (then it runs as the server's default has it: this process leads).
 */
export async function serve(tree: string, db: string, extraArgs: string[] = [], { sync = false } = {}): Promise<Served> {
  const env = { ...process.env };
  if (sync) delete env.CLUSTERPLANE_SYNC;
  else env.CLUSTERPLANE_SYNC = "false";
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--port", "0", "--db", db, ...extraArgs], {
    cwd: tree,
    stdio: ["ignore", "pipe", "inherit"],
    env,
  });
  const url = await new Promise<string>((resolveUrl, reject) => {
    createInterface({ input: child.stdout! }).on("line", (text) => {
      let line: { url?: string; msg?: string } = {};
      try {
        line = JSON.parse(text) as typeof line;
      } catch {
        return; // not a log line (a Node warning)
      }
      if (line.url && line.msg?.includes("listening")) resolveUrl(line.url);
    });
    child.once("exit", (code) => reject(new Error(`serve in ${tree} exited with ${code}`)));
  });
  return { child, url, port: Number(new URL(url).port) };
}

/** A bench helper (`node --import tsx SCRIPT ARGS`) spoken to by lines: none is lost between reads. */
export function lineProcess(script: string, args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const queued: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  createInterface({ input: child.stdout! })
    .on("line", (line) => (waiting.length ? waiting.shift()!(line) : queued.push(line)))
    .on("close", () => waiting.splice(0).forEach((wake) => wake(undefined)));
  return {
    child,
    /** The next line, or undefined when the process closed its stdout or `timeoutMs` passed. */
    next(timeoutMs = 60_000): Promise<string | undefined> {
      if (queued.length) return Promise.resolve(queued.shift());
      return new Promise((resolveLine) => {
        const wake = (line: string | undefined) => {
          clearTimeout(timer);
          resolveLine(line);
        };
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(wake), 1);
          resolveLine(undefined);
        }, timeoutMs);
        waiting.push(wake);
      });
    },
    send(line: string): void {
      child.stdin!.write(`${line}\n`);
    },
  };
}
