import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const BUF = "node_modules/.bin/buf";

function filesUnder(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(root, path), readFileSync(path, "utf8"));
    }
  };
  walk(root);
  return files;
}

describe("the contract", () => {
  it("passes buf lint (STANDARD)", () => {
    expect(() => execFileSync(BUF, ["lint"], { stdio: "pipe" })).not.toThrow();
  });

  it("has gen/ exactly as `npm run generate` produces it", () => {
    const out = mkdtempSync(join(tmpdir(), "clusterplane-gen-"));
    execFileSync(BUF, ["generate", "--output", out], { stdio: "pipe" });
    const regenerated = filesUnder(join(out, "gen"));
    const committed = filesUnder("gen");
    expect([...committed.keys()].sort()).toEqual([...regenerated.keys()].sort());
    for (const [path, text] of regenerated) expect(committed.get(path), path).toBe(text);
  });
});
