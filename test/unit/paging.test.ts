import { describe, expect, it } from "vitest";
import { Violations } from "../../src/core/errors.js";
import { DEFAULT_PAGE_SIZE, nextPageToken, parsePageRequest } from "../../src/core/paging.js";

function parse(size: number, token: string, query = "") {
  const violations = new Violations();
  const page = parsePageRequest(size, token, query, violations);
  let fields: string[] = [];
  try {
    violations.throwIfAny();
  } catch (error) {
    fields = (error as { violations: { field: string }[] }).violations.map((v) => v.field);
  }
  return { page, fields };
}

describe("paging", () => {
  it("defaults the page size and starts at the beginning", () => {
    expect(parse(0, "").page).toEqual({ size: DEFAULT_PAGE_SIZE, after: null });
  });

  it("round-trips the last key through a token", () => {
    const token = nextPageToken(true, ["prod"], "q");
    expect(parse(10, token, "q").page).toEqual({ size: 10, after: ["prod"] });
  });

  it("issues no token on the last page", () => {
    expect(nextPageToken(false, ["prod"], "")).toBe("");
  });

  it("rejects sizes out of range and foreign or replayed tokens", () => {
    expect(parse(-1, "").fields).toEqual(["page_size"]);
    expect(parse(1001, "").fields).toEqual(["page_size"]);
    expect(parse(10, "not-a-token").fields).toEqual(["page_token"]);
    expect(parse(10, nextPageToken(true, ["a"], "pool=a"), "pool=b").fields).toEqual(["page_token"]);
  });
});
