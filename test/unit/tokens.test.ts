import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findToken, parseTokenLines, parseTokens, TokenFile } from "../../src/server/tokens.js";
import { newToken, writeTokensFile } from "../support/auth.js";
import { waitFor } from "../support/wait.js";
import { problems } from "../support/errors.js";

const ADMIN = "a".repeat(32);
const VIEWER = "v".repeat(32);

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
      "tokens.txt line 2: the second field is not a role: use one of admin, viewer, router",
      "tokens.txt line 3: the token is shorter than 16 characters; use a random one (openssl rand -hex 32)",
      `tokens.txt line 4: expected "<token> <role> <name>", found 1 field(s)`,
      "tokens.txt line 5: the same token is already on line 1; every token must be unique, so neither line is used",
    ]);
    expect(found.join("\n")).not.toContain(secret);
    expect(found.join("\n")).not.toContain(ADMIN);
  });

  it("never quotes a field back, whichever column the token ended up in", () => {
    const secret = "Sw4pped-t0ken-" + "q".repeat(20);
    const lines = [
      `viewer ${secret} grafana`, // columns swapped
      `${secret} ${secret} grafana`, // the token pasted twice
      `${secret.slice(0, 10)} ${secret.slice(10)} viewer x`, // a space inside the token
      `${secret}`,
    ];
    const found = problems(() => parseTokens(lines.join("\n"), "tokens"));
    expect(found).toEqual([
      `tokens line 1: the columns are out of order: expected "<token> <role> <name>", the role second`,
      "tokens line 2: the second field is not a role: use one of admin, viewer, router",
      "tokens line 3: the token is shorter than 16 characters; use a random one (openssl rand -hex 32)",
      `tokens line 4: expected "<token> <role> <name>", found 1 field(s)`,
    ]);
    for (const part of [secret, secret.slice(0, 10), secret.slice(10)]) expect(found.join("\n")).not.toContain(part);
  });

  it("leaves a duplicated token out on every line it is on, and keeps the valid lines", () => {
    const { entries, problems: refused } = parseTokenLines([`${ADMIN} admin ops`, `${VIEWER} viewer grafana`, `${ADMIN} viewer ops-too`].join("\n"));
    expect(entries.map((entry) => entry.name)).toEqual(["grafana"]);
    expect(refused).toEqual([{ line: 3, description: "the same token is already on line 1; every token must be unique, so neither line is used" }]);
  });

  describe("re-reading on change", () => {
    const files: TokenFile[] = [];
    afterEach(() => files.splice(0).forEach((file) => file.close()));

    /** A TokenFile checking the file on every lookup, and everything it logged, as text. */
    function watched(path: string): { file: TokenFile; log: string[] } {
      const log: string[] = [];
      const record = (fields: object, message: string) => log.push(`${message} ${JSON.stringify(fields)}`);
      const file = new TokenFile(path, { info: record, warn: record }, 0);
      files.push(file);
      return { file, log };
    }

    it("picks up a rotated file", async () => {
      const path = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
      const first = newToken("admin", "ops");
      const second = newToken("router", "engine");
      writeTokensFile(path, [first]);
      const { file } = watched(path);
      expect(file.lookup(first.token)).toEqual({ name: "ops", role: "admin" });

      writeTokensFile(path, [second]);
      await waitFor("the rotated token", () => file.lookup(second.token) !== undefined);
      expect(file.lookup(first.token)).toBeUndefined();
    });

    it("on a reload with a malformed line applies the valid lines and keeps no token the file no longer lists", async () => {
      const path = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
      const [kept, removed, swapped] = [newToken("admin", "ops"), newToken("viewer", "grafana"), newToken("router", "engine")];
      writeTokensFile(path, [kept, removed, swapped]);
      const { file, log } = watched(path);
      expect(file.lookup(removed.token)).toBeDefined();

      // `removed` is gone, and `swapped`'s line is now malformed: neither may keep working.
      writeFileSync(path, `# tokens\n${kept.token} admin ops\n${swapped.role} ${swapped.token} ${swapped.name}\n`);
      await waitFor("the reload", () => log.some((line) => line.startsWith("tokens file reloaded; malformed lines refused")));
      expect(file.lookup(removed.token)).toBeUndefined();
      expect(file.lookup(swapped.token)).toBeUndefined();
      expect(file.lookup(kept.token)).toEqual({ name: "ops", role: "admin" });
      expect(log.join("\n")).toContain("line 3: the columns are out of order");
      for (const token of [kept, removed, swapped]) expect(log.join("\n")).not.toContain(token.token);
    });

    it("accepts no token while the file is deleted, and the file's tokens again once it is back", async () => {
      const path = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
      const [admin, viewer] = [newToken("admin", "ops"), newToken("viewer", "grafana")];
      writeTokensFile(path, [admin, viewer]);
      const { file, log } = watched(path);
      expect(file.lookup(admin.token)).toBeDefined();

      unlinkSync(path);
      await waitFor("every token refused", () => file.lookup(admin.token) === undefined && file.lookup(viewer.token) === undefined);
      expect(log.some((line) => line.startsWith("tokens file missing or unreadable; no token is accepted until it is back"))).toBe(true);

      writeTokensFile(path, [viewer]);
      await waitFor("the recreated file's token", () => file.lookup(viewer.token) !== undefined);
      expect(file.lookup(admin.token)).toBeUndefined();
    });

    it("notices a deleted file through the stat on lookup alone (no watch event needed)", () => {
      const path = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
      const admin = newToken("admin", "ops");
      writeTokensFile(path, [admin]);
      const { file } = watched(path);
      file.close(); // no watcher: only the lookup's own check remains
      unlinkSync(path);
      expect(file.lookup(admin.token)).toBeUndefined();
      writeTokensFile(path, [admin]);
      expect(file.lookup(admin.token)).toEqual({ name: "ops", role: "admin" });
    });

    it("refuses to start on a missing or malformed file", () => {
      const dir = mkdtempSync(join(tmpdir(), "tokens-"));
      expect(() => new TokenFile(join(dir, "absent"), { info() {}, warn() {} })).toThrow(/cannot read tokens file/);
      writeFileSync(join(dir, "bad"), `${ADMIN} admin\n`);
      expect(() => new TokenFile(join(dir, "bad"), { info() {}, warn() {} })).toThrow(/line 1: expected "<token> <role> <name>"/);
    });
  });
});
