import { describe, expect, it } from "vitest";
import { resolveServerConfig } from "../../src/server/config.js";

describe("server configuration", () => {
  it("takes defaults, then environment, then flags", () => {
    expect(resolveServerConfig({}, {})).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      databasePath: "clusterplane.db",
      domains: ["development", "staging", "production"],
    });
    const env = { CLUSTERPLANE_PORT: "9000", CLUSTERPLANE_DB: "/data/a.db", CLUSTERPLANE_DOMAINS: "dev, prod" };
    expect(resolveServerConfig({}, env)).toMatchObject({ port: 9000, databasePath: "/data/a.db", domains: ["dev", "prod"] });
    expect(resolveServerConfig({ port: "7000" }, env).port).toBe(7000);
  });

  it("names every bad setting and where it came from", () => {
    expect(() => resolveServerConfig({ port: "99999" }, { CLUSTERPLANE_DOMAINS: "dev,Prod" })).toThrow(
      /--port: "99999" must be a whole number between 0 and 65535; CLUSTERPLANE_DOMAINS\[1\]/,
    );
  });
});
