import { afterEach, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { openStores } from "../../src/store/stores.js";
import { testEngines, type TestDatabase } from "../support/engines.js";

const run = promisify(execFile);
let database: TestDatabase | undefined;
afterEach(async () => {
  await database?.drop();
  database = undefined;
});

describe.each(testEngines())("clusterplane migrate ($name)", (engine) => {
  it("applies every migration and exits; a server opening the database after it finds nothing to do", async () => {
    database = await engine.fresh();
    const { stdout } = await run(process.execPath, ["bin/clusterplane.mjs", "migrate", "--db", database.location]);
    expect(stdout).toMatch(/schema at version 6 \((sqlite|postgres), \d+ ms\)/);
    const again = await run(process.execPath, ["bin/clusterplane.mjs", "migrate", "--db", database.location]);
    expect(again.stdout).toContain("schema at version 6");
    const stores = await openStores({ path: database.location });
    try {
      expect(await stores.changes.currentRevision()).toBe(0);
    } finally {
      await stores.engine.close();
    }
  });
});
