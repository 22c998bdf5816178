import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DomainError } from "../../src/core/errors.js";
import { findToken, parseTokens, TokenFile } from "../../src/server/tokens.js";
import { newToken, writeTokensFile } from "../support/auth.js";
import { waitFor } from "../support/wait.js";

const ADMIN = "a".repeat(32);
const VIEWER = "v".repeat(32);

function problems(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof DomainError) return error.violations.map((v) => `${v.field}: ${v.description}`);
    throw error;
  }
  throw new Error("expected a DomainError");
}

describe("tokens file", () => {
  it("reads '<token> <role> <name>' lines, skipping comments and blank lines, and keeps only digests", () => {
    const entries = parseTokens(`# who may call\n\n${ADMIN} admin ops team\n  ${VIEWER}\tviewer grafana  \n`, "tokens");
    expect(entries.map(({ role, name }) => ({ role, name }))).toEqual([
      { role: "admin", name: "ops team" },
      { role: "viewer", name: "grafana" },
    ]);
    expect(entries.every((entry) => entry.digest.length === 32)).toBe(true);
    expect(JSON.stringify(entries)).not.toContain(ADMIN);
    expect(findToken(entries, VIEWER)).toEqual({ name: "grafana", role: "viewer" });
    expect(findToken(entries, "v".repeat(31))).toBeUndefined();
    expect(findToken(entries, "")).toBeUndefined();
  });

  it("names every malformed line by number, without repeating the token", () => {
    const secret = "s3cr3t-".repeat(4);
    const found = problems(() =>
      parseTokens(
        [`${ADMIN} admin ops`, `${secret} superuser mallory`, "short admin x", `${secret}`, `${ADMIN} viewer again`].join("\n"),
        "tokens.txt",
      ),
    );
    expect(found).toEqual([
      `tokens.txt line 2: role "superuser" is not one of admin, viewer, router`,
      "tokens.txt line 3: the token is shorter than 16 characters; use a random one (openssl rand -hex 32)",
      `tokens.txt line 4: expected "<token> <role> <name>", found 1 field(s)`,
      "tokens.txt line 5: the same token is already on line 1; every token must be unique",
    ]);
    expect(found.join("\n")).not.toContain(secret);
    expect(found.join("\n")).not.toContain(ADMIN);
  });

  describe("re-reading on change", () => {
    const files: TokenFile[] = [];
    afterEach(() => files.splice(0).forEach((file) => file.close()));

    it("picks up a rotated file, and keeps the previous tokens when the new file is malformed", async () => {
      const path = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
      const first = newToken("admin", "ops");
      const second = newToken("router", "engine");
      writeTokensFile(path, [first]);
      const warnings: string[] = [];
      const file = new TokenFile(path, { info() {}, warn: (_fields, message) => warnings.push(message) }, 0);
      files.push(file);
      expect(file.lookup(first.token)).toEqual({ name: "ops", role: "admin" });

      writeTokensFile(path, [second]);
      await waitFor("the rotated token", () => file.lookup(second.token) !== undefined);
      expect(file.lookup(first.token)).toBeUndefined();

      writeFileSync(path, `${first.token} root ops\n`);
      await waitFor("the warning", () => warnings.length > 0);
      expect(warnings).toContain("tokens file rejected; keeping the previous tokens");
      expect(file.lookup(second.token)).toEqual({ name: "engine", role: "router" });
      expect(file.lookup(first.token)).toBeUndefined();
    });

    it("refuses to start on a missing or malformed file", () => {
      const dir = mkdtempSync(join(tmpdir(), "tokens-"));
      expect(() => new TokenFile(join(dir, "absent"), { info() {}, warn() {} })).toThrow(/cannot read tokens file/);
      writeFileSync(join(dir, "bad"), `${ADMIN} admin\n`);
      expect(() => new TokenFile(join(dir, "bad"), { info() {}, warn() {} })).toThrow(/line 1: expected "<token> <role> <name>"/);
    });
  });
});
