import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CredentialFileError,
  isUsable,
  needsRotation,
  readCredentialFile,
  writeCredentialFile,
  type StoredCredential,
} from "../../src/agent/credential-file.js";

const DAY = 24 * 3600_000;

function credential(overrides: Partial<StoredCredential> = {}): StoredCredential {
  return {
    token: "cpagent_abc",
    issueTime: new Date("2026-01-01T00:00:00Z"),
    expireTime: new Date("2026-01-31T00:00:00Z"),
    org: "",
    cluster: "edge-1",
    controlPlane: "https://cp.example.com",
    ...overrides,
  };
}

describe("the agent credential file", () => {
  it("is written with mode 0600 and read back as written", () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-cred-"));
    const path = join(dir, "agent.credential");
    writeCredentialFile(path, credential());
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readCredentialFile(path)).toEqual(credential());
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({
      token: "cpagent_abc",
      expireTime: "2026-01-31T00:00:00.000Z",
      issueTime: "2026-01-01T00:00:00.000Z",
      org: "",
      cluster: "edge-1",
      controlPlane: "https://cp.example.com",
    });
  });

  it("is replaced atomically on rotation: no temporary file is left, a 0644 file becomes 0600", () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-cred-"));
    const path = join(dir, "agent.credential");
    writeFileSync(path, "{}", { mode: 0o644 });
    writeCredentialFile(path, credential({ token: "cpagent_new" }));
    expect(readCredentialFile(path)!.token).toBe("cpagent_new");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["agent.credential"]);
  });

  it("is absent (null) when there is no file, and refused with a way out when it is not the agent's", () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-cred-"));
    expect(readCredentialFile(join(dir, "none"))).toBeNull();
    const bad = join(dir, "bad");
    writeFileSync(bad, "not json");
    expect(() => readCredentialFile(bad)).toThrow(CredentialFileError);
    expect(() => readCredentialFile(bad)).toThrow(/is not JSON: remove it and start the agent with a new join token/);
    writeFileSync(bad, JSON.stringify({ token: "t", cluster: "c", expireTime: "soon" }));
    expect(() => readCredentialFile(bad)).toThrow(/expireTime must be an ISO 8601 time/);
    writeFileSync(bad, JSON.stringify({ token: "t x", cluster: "c", expireTime: "2026-01-01T00:00:00Z" }));
    expect(() => readCredentialFile(bad)).toThrow(/token holds characters/);
    writeFileSync(bad, JSON.stringify({ token: "t", expireTime: "2026-01-01T00:00:00Z" }));
    expect(() => readCredentialFile(bad)).toThrow(/cluster must be a non-empty string/);
  });

  it("cannot be written where the directory does not exist, saying which file", () => {
    expect(() => writeCredentialFile("/nonexistent-dir/agent.credential", credential())).toThrow(/cannot write the credential file \/nonexistent-dir\/agent.credential/);
  });

  it("is rotated once less than a third of its lifetime is left, and unusable a minute before it expires", () => {
    const c = credential();
    expect(needsRotation(c, new Date(c.issueTime.getTime() + 19 * DAY))).toBe(false);
    expect(needsRotation(c, new Date(c.issueTime.getTime() + 21 * DAY))).toBe(true);
    expect(isUsable(c, new Date(c.expireTime.getTime() - 2 * 60_000))).toBe(true);
    expect(isUsable(c, new Date(c.expireTime.getTime() - 30_000))).toBe(false);
    expect(needsRotation(credential({ issueTime: c.expireTime }), c.issueTime)).toBe(true);
  });
});
