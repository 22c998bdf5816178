import { RoutingIndex } from "../src/routing/routing-index.js";
import { selectCluster } from "../src/routing/select-cluster.js";
import type { Stores } from "../src/store/stores.js";
import { ASSIGNMENTS, LABELS } from "./fixture.js";

const ITERATIONS = 2_000_000;

/** In-process selection cost: the routing index alone, no transport. */
export async function selectInProcessBench(stores: Stores): Promise<void> {
  const index = await RoutingIndex.open(stores);
  const requests = Array.from({ length: 1024 }, (_, i) => ({
    org: "",
    project: `project-${i % 1000}`,
    domain: "production",
    workflow: `workflow_${i % 7}`,
    launchPlan: `lp_${i % 5}`,
    executionId: `f${i.toString(16)}-execution-${i}`,
    target: null,
  }));
  let sink = 0;
  for (let i = 0; i < 200_000; i++) sink += selectCluster(index, requests[i & 1023]!).cluster.length; // warm up
  const started = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) sink += selectCluster(index, requests[i & 1023]!).cluster.length;
  const nsPerOp = Number(process.hrtime.bigint() - started) / ITERATIONS;
  index.close();
  console.log(`\nIn-process SelectCluster, ${LABELS} labels, ${ASSIGNMENTS} assignments (launch plan -> workflow -> project-domain lookups)`);
  console.log(`  ${nsPerOp.toFixed(0)} ns/op  (goal <= 2000 ns/op)  [checksum ${sink % 10}]`);
}
