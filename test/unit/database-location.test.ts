import { describe, expect, it } from "vitest";
import { isPostgresUrl, redactUrl, sqlitePath } from "../../src/store/location.js";
import { MIGRATIONS, scriptFor } from "../../src/store/migrations.js";
import { isDatabaseUnavailable } from "../../src/store/database-errors.js";

describe("the --db value", () => {
  it("selects PostgreSQL by URL, and SQLite for anything else", () => {
    expect(isPostgresUrl("postgres://user@host:5432/name")).toBe(true);
    expect(isPostgresUrl("postgresql://user@host/name")).toBe(true);
    expect(isPostgresUrl("clusterplane.db")).toBe(false);
    expect(isPostgresUrl("sqlite:/var/lib/clusterplane.db")).toBe(false);
    expect(sqlitePath("sqlite:/var/lib/clusterplane.db")).toBe("/var/lib/clusterplane.db");
    expect(sqlitePath("sqlite://relative.db")).toBe("relative.db");
    expect(sqlitePath(":memory:")).toBe(":memory:");
  });

  it("never shows a URL's password", () => {
    expect(redactUrl("postgres://user:hunter2@host:5432/name")).toBe("postgres://user:***@host:5432/name");
    expect(redactUrl("postgres://user@host:5432/name")).toBe("postgres://user@host:5432/name");
    expect(redactUrl("./clusterplane.db")).toBe("./clusterplane.db");
  });
});

describe("migrations for both engines from one list", () => {
  it("keeps SQLite's scripts as written, and gives PostgreSQL its own types", () => {
    for (const migration of MIGRATIONS) {
      expect(scriptFor("sqlite", migration.sql)).toBe(migration.sql);
      const postgres = scriptFor("postgres", migration.sql);
      expect(postgres).not.toMatch(/\bSTRICT\b|WITHOUT ROWID|\bINTEGER\b|\bREAL\b/);
    }
    expect(scriptFor("postgres", "weight REAL NOT NULL, at INTEGER, name TEXT NOT NULL) STRICT, WITHOUT ROWID;")).toBe(
      'weight DOUBLE PRECISION NOT NULL, at BIGINT, name TEXT COLLATE "C" NOT NULL);',
    );
  });
});

describe("a database out of reach", () => {
  it("is told apart from a failed request, so it answers UNAVAILABLE", () => {
    const withCode = (code: string) => Object.assign(new Error("x"), { code });
    expect(isDatabaseUnavailable(withCode("57P01"))).toBe(true);
    expect(isDatabaseUnavailable(withCode("08006"))).toBe(true);
    expect(isDatabaseUnavailable(withCode("ECONNREFUSED"))).toBe(true);
    expect(isDatabaseUnavailable(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isDatabaseUnavailable(withCode("23505"))).toBe(false);
    expect(isDatabaseUnavailable(new Error("boom"))).toBe(false);
  });
});
