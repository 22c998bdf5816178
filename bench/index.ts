/**
 * `npm run bench`: speed goals as ratios against a baseline measured in the same run, so a
 * shared, noisy machine changes both sides alike. Not a test: it prints, it does not fail.
 * `npm run bench -- startup` (or select, grpc, sync, log, replicas, agents) runs only those.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStores } from "../src/store/stores.js";
import { populate } from "./fixture.js";
import { agentsBench } from "./agents.js";
import { changeLogBench } from "./change-log.js";
import { grpcThroughputBench } from "./grpc-throughput.js";
import { replicasBench } from "./replicas.js";
import { selectInProcessBench } from "./select-in-process.js";
import { startupBench } from "./startup.js";
import { syncBench } from "./sync.js";

const only = new Set(process.argv.slice(2));
const wanted = (name: string) => only.size === 0 || only.has(name);

// First, while nothing else of this run has warmed or loaded the machine.
if (wanted("startup")) await startupBench();

if (wanted("select")) {
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-bench-"));
  const stores = await openStores({ path: join(dir, "bench.db") });
  try {
    await populate(stores);
    await selectInProcessBench(stores);
  } finally {
    await stores.engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
// Servers in processes of their own, loaded from another (it starts and stops them itself).
if (wanted("grpc")) await grpcThroughputBench();
if (wanted("sync")) await syncBench();
if (wanted("log")) await changeLogBench();
if (wanted("replicas")) await replicasBench();
if (wanted("agents")) await agentsBench();
