import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadProvisioning, parseSyncSettings, DEFAULT_SYNC_SETTINGS } from "../../src/sync/sync-settings.js";

describe("sync settings", () => {
  it("defaults when nothing is configured", () => {
    expect(parseSyncSettings(undefined, "sync")).toEqual(DEFAULT_SYNC_SETTINGS);
  });

  it("reads flyteadmin-style keys: templatePath, templateData (value, env, file) and customData", () => {
    const dir = mkdtempSync(join(tmpdir(), "sync-settings-"));
    writeFileSync(join(dir, "account"), "123456789012\n");
    const settings = parseSyncSettings(
      {
        interval: "30s",
        fullResyncInterval: "5m",
        concurrency: 4,
        templatePath: dir,
        serviceAccount: { annotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::{{ account }}:role/{{ role }}" } },
        templateData: { role: { value: "flyte-dataplane" }, account: { valueFrom: { filePath: join(dir, "account") } }, region: { valueFrom: { env: "REGION" } } },
        customData: { production: { role: "flyte-prod" } },
      },
      "sync",
      { REGION: "us-east-1" },
    );
    expect(settings).toMatchObject({ intervalMs: 30_000, fullResyncIntervalMs: 300_000, concurrency: 4, templatePath: dir });
    expect(settings.provisioning.templateData).toEqual({ role: "flyte-dataplane", account: "123456789012", region: "us-east-1" });
    expect(settings.provisioning.domainData).toEqual({ production: { role: "flyte-prod" } });
  });

  it("names every wrong key and why", () => {
    expect(() =>
      parseSyncSettings({ interval: "soon", concurrency: 0, templateData: { x: { valueFrom: { env: "MISSING" } } } }, "sync", {}),
    ).toThrow(/sync\.interval: "soon" must be a positive duration.*sync\.concurrency: 0 must be a whole number.*sync\.templateData\.x/);
  });

  it("reads *.yaml and *.yml templates of the directory in name order", () => {
    const dir = mkdtempSync(join(tmpdir(), "templates-"));
    writeFileSync(join(dir, "b.yml"), "b");
    writeFileSync(join(dir, "a.yaml"), "a");
    writeFileSync(join(dir, "notes.txt"), "ignored");
    const spec = loadProvisioning({ ...DEFAULT_SYNC_SETTINGS, templatePath: dir });
    expect(spec.templates).toEqual([{ source: "a.yaml", text: "a" }, { source: "b.yml", text: "b" }]);
  });
});

describe("sync settings keys", () => {
  it("refuses unknown keys and accepts flyteadmin's refreshInterval", () => {
    expect(() => parseSyncSettings({ intervall: "1m" }, "sync")).toThrow(/sync\.intervall: unknown key; did you mean interval\?/);
    expect(parseSyncSettings({ refreshInterval: "2m" }, "sync").intervalMs).toBe(120_000);
  });
});

describe("sync settings bounds", () => {
  it("refuses durations a timer cannot hold and periods in the wrong order", () => {
    expect(() => parseSyncSettings({ interval: "1000h" }, "sync")).toThrow(/sync\.interval: "1000h" must be a positive duration of at most 24 days/);
    expect(() => parseSyncSettings({ interval: "10m", fullResyncInterval: "1m" }, "sync")).toThrow(/sync\.fullResyncInterval: must not be shorter than interval/);
    expect(() => parseSyncSettings({ initialBackoff: "10s", maxBackoff: "1s" }, "sync")).toThrow(/sync\.maxBackoff: must not be shorter than initialBackoff/);
  });
});

describe("sync settings defaults that a configured value overtakes", () => {
  it("stretch the full resync to a longer interval", () => {
    expect(parseSyncSettings({ interval: "15m" }, "sync")).toMatchObject({ intervalMs: 900_000, fullResyncIntervalMs: 900_000 });
  });
});
