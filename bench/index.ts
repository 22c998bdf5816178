/**
 * `npm run bench`: speed goals as ratios against a baseline measured in the same run, so a
 * shared, noisy machine changes both sides alike. Not a test: it prints, it does not fail.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startServer } from "../src/server/server.js";
import { populate } from "./fixture.js";
import { grpcThroughputBench } from "./grpc-throughput.js";
import { selectInProcessBench } from "./select-in-process.js";
import { syncBench } from "./sync.js";

const dir = mkdtempSync(join(tmpdir(), "clusterplane-bench-"));
const server = await startServer(
  { host: "127.0.0.1", port: 0, databasePath: join(dir, "bench.db"), shutdownGraceMs: 1000 },
  pino({ level: "silent" }),
);
try {
  const fixture = populate(server.stores);
  selectInProcessBench(server.stores);
  await grpcThroughputBench(server, fixture);
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
await syncBench();
