/**
 * Start-up of the built command, as an operator meets it: whole processes, timed from spawn to
 * exit, against bare `node -e 0` measured in the same run (taken in turns, so a busy shared
 * machine slows both sides alike). Also the resident memory of an idle `clusterplane serve`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const RUNS = 15;
const GOAL_RATIO = 2.5;
const BIN = "bin/clusterplane.mjs";

/** Milliseconds from spawn to exit of one process. */
function timeProcess(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code !== 0) reject(new Error(`node ${args.join(" ")} exited with ${code}: ${stderr}`));
      else resolve(Number(process.hrtime.bigint() - started) / 1e6);
    });
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Resident set size of a process, in MB (Linux and macOS `ps`). */
function rssMb(pid: number): number {
  const kb = Number(spawnSync("ps", ["-o", "rss=", "-p", String(pid)], { encoding: "utf8" }).stdout.trim());
  return Math.round(kb / 1024);
}

/** `clusterplane serve` as its own process, resolved once it says where it listens. */
async function startServe(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, "serve", "--port", "0", "--db", join(dir, "bench.db"), "--no-sync"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: { msg?: string; url?: string } = {};
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        // Not a log line; serve only prints JSON, but a warning from Node might slip in.
      }
      if (entry.url && entry.msg?.includes("listening")) resolve(entry.url);
    });
    child.once("exit", (code) => reject(new Error(`serve exited with ${code} before listening`)));
  });
  return { child, url };
}

export async function startupBench(): Promise<void> {
  // The bench measures what `npm start` and the installed command run: dist/, built from the sources now.
  const build = spawnSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
  if (build.status !== 0) throw new Error("npm run build failed");

  const dir = mkdtempSync(join(tmpdir(), "clusterplane-bench-startup-"));
  const { child: server, url } = await startServe(dir);
  try {
    const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("CLUSTERPLANE_")));
    const env = { ...baseEnv, XDG_CONFIG_HOME: dir, CLUSTERPLANE_ENDPOINT: url };
    const rssAtStart = rssMb(server.pid!);
    const commands: Record<string, string[]> = {
      "node -e 0": ["-e", "0"],
      "clusterplane --help": [BIN, "--help"],
      "clusterplane get cluster-pool": [BIN, "get", "cluster-pool"],
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((name) => [name, []]));
    // One untimed round warms the file cache.
    for (const args of Object.values(commands)) await timeProcess(args, env);
    for (let run = 0; run < RUNS; run++) {
      for (const [name, args] of Object.entries(commands)) times[name]!.push(await timeProcess(args, env));
    }
    // The way the command ran before there was a build, for comparison.
    const tsx: number[] = [];
    for (let run = 0; run < 3; run++) tsx.push(await timeProcess(["--import", "tsx", "src/cli/main.ts", "--help"], env));
    const rssIdle = rssMb(server.pid!);

    const baseline = median(times["node -e 0"]!);
    console.log(`\nStart-up, whole processes (median of ${RUNS}, taken in turns; goal: within ${GOAL_RATIO}x of node -e 0):`);
    for (const [name, values] of Object.entries(times)) {
      const ratio = median(values) / baseline;
      const verdict = name === "node -e 0" ? "baseline" : `${ratio.toFixed(2)}x ${ratio <= GOAL_RATIO ? "(goal met)" : "(goal MISSED)"}`;
      console.log(`  ${name.padEnd(32)} ${median(values).toFixed(0).padStart(5)} ms  (min ${Math.min(...values).toFixed(0)})  ${verdict}`);
    }
    console.log(`  ${"(tsx src/cli/main.ts --help)".padEnd(32)} ${median(tsx).toFixed(0).padStart(5)} ms  ${(median(tsx) / baseline).toFixed(2)}x, how it ran before the build`);
    console.log(`Idle clusterplane serve: RSS ${rssAtStart} MB after start, ${rssIdle} MB after ${RUNS + 1} CLI calls`);
  } finally {
    if (server.exitCode === null) {
      const exited = new Promise((resolve) => server.once("exit", resolve));
      server.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
