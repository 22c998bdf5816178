#!/usr/bin/env node
// `npm run build` (and `npm ci`, through `prepare`): bundles the CLI and server into dist/ so that
// `bin/clusterplane.mjs` runs plain JavaScript under plain `node`. Plain .mjs so that it needs no
// TypeScript loader itself.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DIST = join(ROOT, "dist");

// Native code cannot be bundled: better-sqlite3 finds its compiled .node file relative to itself.
const EXTERNAL = ["better-sqlite3"];

// Chunks an older build wrote stay this long, so a process that started on the older main.js
// (another test run, a server starting) still finds the chunks it imports.
const STALE_MS = 10 * 60_000;

/**
 * Builds dist/. Files are written to a temporary name and renamed (atomic on one file system),
 * chunks before the entry, so a process starting meanwhile loads either the old build or the new
 * one, never half of one. Unchanged files are not rewritten.
 */
export async function build({ quiet = false, clean = false } = {}) {
  const started = performance.now();
  const consoleBuild = await buildConsole();
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { main: "src/cli/main.ts" },
    outdir: DIST,
    entryNames: "[name]",
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // Less to parse on every start (`--help` is about a tenth faster); names stay, for stack traces.
    minifyWhitespace: true,
    minifySyntax: true,
    external: EXTERNAL,
    // Bundled CommonJS packages call require() for Node built-ins; an ES module has none of its own.
    banner: { js: 'import { createRequire as __clusterplaneRequire } from "node:module"; const require = __clusterplaneRequire(import.meta.url);' },
    // Maps point at src/ (no copy of the sources): `serve` turns them on for its stack traces.
    sourcemap: "linked",
    sourcesContent: false,
    logLevel: "warning",
    write: false,
  });
  mkdirSync(join(DIST, "chunks"), { recursive: true });
  const written = new Set(consoleBuild.written);
  const entries = [];
  for (const file of result.outputFiles) {
    written.add(file.path);
    if (relative(DIST, file.path).startsWith("chunks")) writeIfChanged(file.path, file.contents);
    else entries.push(file);
  }
  for (const file of entries) writeIfChanged(file.path, file.contents);
  removeStale(written, clean ? 0 : STALE_MS);
  if (!quiet) {
    const ms = Math.round(performance.now() - started);
    process.stdout.write(`built ${relative(ROOT, DIST)}/main.js (${result.outputFiles.length} files) in ${ms} ms\n`);
    const kb = (bytes) => `${(bytes / 1024).toFixed(1)} kB`;
    process.stdout.write(
      `built ${relative(ROOT, CONSOLE_DIST)}/: JavaScript ${kb(consoleBuild.jsBytes)} (${kb(consoleBuild.jsGzipBytes)} gzipped, limit ${kb(CONSOLE_JS_GZIP_LIMIT)}), CSS ${kb(consoleBuild.cssBytes)} (${kb(consoleBuild.cssGzipBytes)} gzipped)\n`,
    );
  }
  if (consoleBuild.jsGzipBytes > CONSOLE_JS_GZIP_LIMIT) {
    throw new Error(`the console's JavaScript is ${consoleBuild.jsGzipBytes} bytes gzipped, over the ${CONSOLE_JS_GZIP_LIMIT}-byte budget`);
  }
}

export const CONSOLE_DIST = join(DIST, "console");
/** The whole console's JavaScript, gzipped. */
export const CONSOLE_JS_GZIP_LIMIT = 150 * 1024;

/**
 * The web console (web/): one minified script and one stylesheet under dist/console/assets/,
 * named by content hash, and index.html naming them (the server serves it with no-cache and the
 * assets as immutable). Returns the files written and their sizes.
 */
export async function buildConsole() {
  const assets = join(CONSOLE_DIST, "assets");
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: ["web/src/main.tsx"],
    outdir: assets,
    entryNames: "[hash]",
    assetNames: "[hash]",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    jsx: "automatic",
    jsxImportSource: "preact",
    minify: true,
    legalComments: "none",
    metafile: true,
    logLevel: "warning",
    write: false,
  });
  mkdirSync(assets, { recursive: true });
  const written = [];
  const sizes = { jsBytes: 0, jsGzipBytes: 0, cssBytes: 0, cssGzipBytes: 0 };
  const names = { js: [], css: [] };
  for (const file of result.outputFiles) {
    writeIfChanged(file.path, file.contents);
    written.push(file.path);
    const kind = file.path.endsWith(".css") ? "css" : file.path.endsWith(".js") ? "js" : undefined;
    if (!kind) continue;
    names[kind].push(`assets/${relative(assets, file.path)}`);
    sizes[`${kind}Bytes`] += file.contents.length;
    sizes[`${kind}GzipBytes`] += gzipSync(file.contents, { level: 9 }).length;
  }
  const template = readFileSync(join(ROOT, "web", "index.html"), "utf8");
  const index = template
    .replace("<!-- styles -->", names.css.map((name) => `<link rel="stylesheet" href="${name}">`).join(""))
    .replace("<!-- scripts -->", names.js.map((name) => `<script type="module" src="${name}"></script>`).join(""));
  writeIfChanged(join(CONSOLE_DIST, "index.html"), index);
  written.push(join(CONSOLE_DIST, "index.html"));
  return { written, ...sizes };
}

function writeIfChanged(path, contents) {
  try {
    if (Buffer.from(contents).equals(readFileSync(path))) return;
  } catch {
    // Not there yet.
  }
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, path);
}

/**
 * Files of older builds go once they have been unreferenced for a while: the first build that no
 * longer writes a chunk records when (dist/.superseded.json), a later one deletes it.
 */
function removeStale(keep, graceMs) {
  const ledgerPath = join(DIST, ".superseded.json");
  let ledger = {};
  try {
    ledger = JSON.parse(readFileSync(ledgerPath, "utf8"));
  } catch {
    // First build, or a ledger cut short: start a new one.
  }
  const now = Date.now();
  const next = {};
  for (const path of listFiles(DIST)) {
    if (keep.has(path) || path === ledgerPath) continue;
    const name = relative(DIST, path);
    // Another build may be about to rename its temporary file; only a forgotten one is removed.
    const grace = name.startsWith("chunks") || name.startsWith(join("console", "assets")) || name.endsWith(".tmp");
    const since = ledger[name] ?? now;
    if (grace && now - since < graceMs) next[name] = since;
    else rmSync(path, { force: true });
  }
  writeIfChanged(ledgerPath, `${JSON.stringify(next, null, 1)}\n`);
}

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    // --clean (npm pack): nothing of an older build may end up in the package.
    await build({ clean: process.argv.includes("--clean") });
  } catch (error) {
    // esbuild has already printed each problem with its file and line; its stack adds nothing.
    if (!Array.isArray(error?.errors)) throw error;
    process.exitCode = 1;
  }
}
