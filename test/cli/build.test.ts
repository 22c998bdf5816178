import { afterAll, describe, expect, it } from "vitest";
import { execFile, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
const packageJson = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  private: boolean;
  bin: Record<string, string>;
  files: string[];
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Runs a copy of the bin; its exit code and output, whatever the code. */
async function node(args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }) {
  try {
    const { stdout, stderr } = await run(process.execPath, args, { ...options, env: { ...process.env, ...options.env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("the compiled build (dist/, what the package ships)", () => {
  const scratch = mkdtempSync(join(tmpdir(), "clusterplane-build-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it(
    "runs under plain node from a copy of bin/ and dist/ alone: no tsx, no sources, and only better-sqlite3 installed for serve",
    async () => {
      // The globalSetup built dist/ from the current sources; the copy has nothing else to lean on.
      const copy = join(scratch, "package");
      for (const path of ["bin", "dist", "package.json"]) cpSync(join(ROOT, path), join(copy, path), { recursive: true });
      const bin = join(copy, "bin", "clusterplane.mjs");

      expect(await node([bin, "--version"], { cwd: scratch })).toMatchObject({ code: 0, stdout: `${packageJson.version}\n` });
      const help = await node([bin, "--help"], { cwd: scratch });
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("Usage: clusterplane");

      // Native code is the one thing the bundle leaves out.
      mkdirSync(join(copy, "node_modules"));
      symlinkSync(join(ROOT, "node_modules", "better-sqlite3"), join(copy, "node_modules", "better-sqlite3"), "dir");
      const server = spawn(process.execPath, [bin, "serve", "--port", "0", "--db", join(scratch, "state.db"), "--no-sync"], {
        cwd: scratch,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      server.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => server.once("exit", resolve));
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: server.stdout! }).on("line", (line) => {
          const entry = JSON.parse(line) as { msg: string; url?: string };
          if (entry.url && entry.msg.includes("listening")) resolve(entry.url);
        });
        void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
      });
      try {
        const pools = await node([bin, "get", "cluster-pool"], { cwd: scratch, env: { CLUSTERPLANE_ENDPOINT: url, XDG_CONFIG_HOME: scratch } });
        expect(pools).toMatchObject({ code: 0, stderr: "" });
        expect(pools.stdout).toMatch(/^NAME +OBJECT STORE .*\ndefault +- /);
      } finally {
        server.kill("SIGTERM");
      }
      expect(await exited).toBe(0);
    },
    60_000,
  );

  it("is one package with a working bin: npm pack holds bin/ and dist/, no sources, and needs only what the bundle leaves out", async () => {
    // --ignore-scripts: list what is built now instead of building again under a running suite.
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT });
    const [packed] = JSON.parse(stdout) as { name: string; files: { path: string }[] }[];
    const paths = packed!.files.map((file) => file.path);
    expect(paths).toEqual(expect.arrayContaining(["package.json", "README.md", "bin/clusterplane.mjs", "dist/main.js", "docs/cli.md"]));
    expect(paths.some((path) => /^dist\/chunks\/.+\.js$/.test(path))).toBe(true);
    expect(paths).toEqual(expect.arrayContaining(["dist/console/index.html"]));
    expect(paths.some((path) => /^dist\/console\/assets\/.+\.js$/.test(path))).toBe(true);
    expect(paths.filter((path) => /^(src|test|scripts|bench|gen|node_modules)\//.test(path) || path.endsWith(".ts"))).toEqual([]);

    expect(packageJson.bin).toEqual({ clusterplane: "bin/clusterplane.mjs" });
    // Not on the registry: `npx clusterplane` elsewhere would fetch someone else's package of that name.
    expect(packageJson.private).toBe(true);
    // Everything else is bundled into dist/; tsx is for development only.
    expect(Object.keys(packageJson.dependencies)).toEqual(["better-sqlite3"]);
    expect(packageJson.devDependencies.tsx).toBeDefined();
    expect(packageJson.scripts.prepare).toBe("node scripts/build.mjs");
    expect(packageJson.scripts.build).toBe("node scripts/build.mjs");
    // exec: npm's shell becomes the server, so a SIGTERM npm forwards reaches it (see serve-process.test.ts).
    expect(packageJson.scripts.start).toBe("exec node bin/clusterplane.mjs serve");
  });

  it("explains a checkout that was never built instead of failing with a module error", async () => {
    const copy = join(scratch, "unbuilt");
    cpSync(join(ROOT, "bin"), join(copy, "bin"), { recursive: true });
    cpSync(join(ROOT, "package.json"), join(copy, "package.json"));
    const result = await node([join(copy, "bin", "clusterplane.mjs"), "--help"], { cwd: scratch });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("dist/main.js is missing");
    expect(result.stderr).toContain("npm run build");
  });
});
