/**
 * A second process on the same database, for tests of what happens between processes. Run as
 * `node --import tsx test/support/store-worker.ts MODE DB`; it talks over stdin/stdout, one line
 * per message.
 *
 * - `migrate`: for each line `go PATH` on stdin, opens (creating and migrating) the database at
 *   PATH and answers `ok PATH` or `error PATH MESSAGE`.
 * - `write-status CLUSTER`: records sync passes of CLUSTER as fast as it can; prints `writing`
 *   once started, and on stdin `stop` prints `wrote N failed M` and exits.
 * - `hang-in-transaction`: starts a unit of work that creates pool `half-written`, prints
 *   `inside` and never commits (the test kills it with SIGKILL).
 */
import { createInterface } from "node:readline";
import { openStores } from "../../src/store/stores.js";

const [mode, path, extra] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const say = (line: string) => process.stdout.write(`${line}\n`);

switch (mode) {
  case "migrate":
    say("ready");
    lines.on("line", async (line) => {
      const target = line.replace(/^go /, "");
      try {
        await (await openStores({ path: target })).engine.close();
        say(`ok ${target}`);
      } catch (error) {
        say(`error ${target} ${(error as Error).message}`);
      }
    });
    break;
  case "write-status": {
    const stores = await openStores({ path: path!, lockTimeoutMs: 5_000 });
    let wrote = 0;
    let failed = 0;
    let stopping = false;
    lines.on("line", () => (stopping = true));
    const loop = async () => {
      if (stopping) {
        say(`wrote ${wrote} failed ${failed}`);
        await stores.engine.close();
        process.exit(0);
      }
      try {
        await stores.sync.recordOutcome("", extra!, {
          startedAt: new Date(), finishedAt: new Date(), full: false, applied: wrote, unchanged: 0, failure: null,
          objectsFailed: 0, objectFailures: [], templateErrors: [], desired: [], provisioned: [],
        });
        wrote++;
      } catch (error) {
        if (failed++ === 0) process.stderr.write(`first failed write: ${(error as Error).message}\n`);
      }
      setImmediate(() => void loop());
    };
    say("writing");
    void loop();
    break;
  }
  case "hang-in-transaction": {
    const stores = await openStores({ path: path! });
    await stores.changes.write(async () => {
      await stores.pools.create("", "half-written", {
        objectStoreUri: "s3://bucket", objectStoreEndpoint: "", secretStoreType: "VAULT", secretStoreLocator: "", imageRegistryLocator: "",
      });
      say("inside");
      // Stay inside the open transaction until killed.
      await new Promise((resolve) => setTimeout(resolve, 120_000));
    });
    break;
  }
  default:
    say(`unknown mode ${mode}`);
    process.exit(2);
}
