import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService, type SelectClusterRequestSchema } from "../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../gen/clusterplane/v1/project_pb.js";
import { DEFAULT_DOMAINS } from "../src/core/project.js";
import type { Stores } from "../src/store/stores.js";

export const LABELS = 1000;
export const ASSIGNMENTS = 10_000;
const CLUSTERS = 20;
const PROJECTS = 1000;

export interface Fixture {
  /** A request that resolves at workflow scope to a label with several weighted clusters. */
  selectRequest(): MessageInitShape<typeof SelectClusterRequestSchema>;
}

const FIXTURE: Fixture = {
  selectRequest: () => ({ project: "project-500", domain: "production", workflow: "workflow_3", executionId: "exec-0" }),
};

/** One write of the fixture, in the order they are made. */
type Write =
  | { kind: "cluster"; name: string; endpoint: string; tokenPath: string; caCertPath: string }
  | { kind: "label"; name: string; clusters: { cluster: string; weight: number }[] }
  | { kind: "project"; id: string }
  | { kind: "assignment"; project: string; domain: string; workflow: string; label: string };

/**
 * 20 clusters, 1 000 labels of 3 weighted clusters each, 1 000 projects and 10 000 assignments
 * (3 project-domain and 7 workflow assignments per project): described once, written either in
 * process (populate) or through a server's API (populateThrough).
 */
function* fixtureWrites(domains: readonly string[]): Generator<Write> {
  for (let c = 0; c < CLUSTERS; c++) {
    const credentials = `/var/run/credentials/cluster-${c}`;
    yield { kind: "cluster", name: `cluster-${c}`, endpoint: `https://cluster-${c}.example.com:443`, tokenPath: `${credentials}_token`, caCertPath: `${credentials}_cacert` };
  }
  for (let l = 0; l < LABELS; l++) {
    yield { kind: "label", name: `label-${l}`, clusters: [0, 1, 2].map((k) => ({ cluster: `cluster-${(l + k * 7) % CLUSTERS}`, weight: [0.5, 0.3, 0.2][k]! })) };
  }
  let assigned = 0;
  for (let p = 0; p < PROJECTS; p++) {
    const project = `project-${p}`;
    yield { kind: "project", id: project };
    for (const domain of domains) yield { kind: "assignment", project, domain, workflow: "", label: `label-${assigned++ % LABELS}` };
    for (let w = 0; assigned % 10 !== 0 || w === 0; w++) {
      yield { kind: "assignment", project, domain: "production", workflow: `workflow_${w}`, label: `label-${assigned++ % LABELS}` };
    }
  }
}

/** The fixture written in process, in one transaction. */
export async function populate(stores: Stores): Promise<Fixture> {
  // One unit of work: committed once, and then applied by every view that follows the log.
  await stores.changes.write(async () => {
    for (const write of fixtureWrites(stores.domains)) {
      switch (write.kind) {
        case "cluster":
          await stores.clusters.create({
            org: "",
            name: write.name,
            pool: "default",
            endpoint: write.endpoint,
            enabled: true,
            auth: { kind: "bearer_token_file", tokenPath: write.tokenPath, caCertPath: write.caCertPath },
          });
          break;
        case "label":
          await stores.labels.create("", write.name, write.clusters);
          break;
        case "project":
          await stores.projects.create({ org: "", id: write.id, name: "", description: "" });
          break;
        case "assignment":
          await stores.assignments.upsert({ org: "", project: write.project, domain: write.domain, workflow: write.workflow, launchPlan: "" }, write.label, "value");
          break;
      }
    }
  });
  return FIXTURE;
}

/**
 * The same fixture written through a running server's gRPC API (a server with the default
 * domains), one call per write: the clusters, then the labels, the projects and the assignments,
 * `concurrency` calls in flight within each kind. The state is the same; only the revisions differ.
 */
export async function populateThrough(url: string, concurrency = 16): Promise<Fixture> {
  const transport = createGrpcTransport({ baseUrl: url });
  const clusters = createClient(ClusterService, transport);
  const labels = createClient(ExecutionClusterLabelService, transport);
  const projects = createClient(ProjectService, transport);
  const call = (write: Write): Promise<unknown> => {
    switch (write.kind) {
      case "cluster":
        return clusters.createCluster({
          cluster: { name: write.name, endpoint: write.endpoint, auth: { method: { case: "bearerTokenFile", value: { tokenPath: write.tokenPath, caCertPath: write.caCertPath } } } },
        });
      case "label":
        return labels.createClusterLabel({ label: { name: write.name, clusters: write.clusters } });
      case "project":
        return projects.createProject({ project: { id: write.id } });
      case "assignment":
        return labels.updateExecutionClusterLabel({
          executionClusterLabel: { project: write.project, domain: write.domain, workflow: write.workflow, value: write.label },
        });
    }
  };
  // Labels need their clusters and assignments their projects and labels: one kind after another.
  const kinds: Write["kind"][] = ["cluster", "label", "project", "assignment"];
  const writes = [...fixtureWrites(DEFAULT_DOMAINS)];
  const steps = kinds.map((kind) => writes.filter((write) => write.kind === kind));
  for (const step of steps) {
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < step.length) await call(step[next++]!);
    }));
  }
  return FIXTURE;
}
