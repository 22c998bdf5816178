import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SelectClusterRequestSchema } from "../gen/clusterplane/v1/execution_cluster_label_pb.js";
import type { Stores } from "../src/store/stores.js";

export const LABELS = 1000;
export const ASSIGNMENTS = 10_000;
const CLUSTERS = 20;
const PROJECTS = 1000;

export interface Fixture {
  /** A request that resolves at workflow scope to a label with several weighted clusters. */
  selectRequest(): MessageInitShape<typeof SelectClusterRequestSchema>;
}

/**
 * 20 clusters, 1 000 labels of 3 weighted clusters each, 1 000 projects and 10 000 assignments
 * (3 project-domain and 7 workflow assignments per project), written in one transaction.
 */
export async function populate(stores: Stores): Promise<Fixture> {
  // One unit of work: committed once, and then applied by every view that follows the log.
  await stores.changes.write(async () => {
    for (let c = 0; c < CLUSTERS; c++) {
      await stores.clusters.create({
        org: "",
        name: `cluster-${c}`,
        pool: "default",
        endpoint: `https://cluster-${c}.example.com:443`,
        enabled: true,
        auth: { kind: "bearer_token_file", tokenPath: `/var/run/credentials/cluster-${c}_token`, caCertPath: `/var/run/credentials/cluster-${c}_cacert` },
      });
    }
    for (let l = 0; l < LABELS; l++) {
      const clusters = [0, 1, 2].map((k) => ({ cluster: `cluster-${(l + k * 7) % CLUSTERS}`, weight: [0.5, 0.3, 0.2][k]! }));
      await stores.labels.create("", `label-${l}`, clusters);
    }
    let assigned = 0;
    for (let p = 0; p < PROJECTS; p++) {
      await stores.projects.create({ org: "", id: `project-${p}`, name: "", description: "" });
      for (const domain of stores.domains) {
        await stores.assignments.upsert({ org: "", project: `project-${p}`, domain, workflow: "", launchPlan: "" }, `label-${assigned++ % LABELS}`, "value");
      }
      for (let w = 0; assigned % 10 !== 0 || w === 0; w++) {
        await stores.assignments.upsert(
          { org: "", project: `project-${p}`, domain: "production", workflow: `workflow_${w}`, launchPlan: "" },
          `label-${assigned++ % LABELS}`,
          "value",
        );
      }
    }
  });
  return {
    selectRequest: () => ({ project: "project-500", domain: "production", workflow: "workflow_3", executionId: "exec-0" }),
  };
}

