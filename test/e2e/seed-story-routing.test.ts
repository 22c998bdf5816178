import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { ClusterService } from "../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { ProjectService } from "../../gen/clusterplane/v1/project_pb.js";
import { connectClient, connectTransports, grpcJsAsConnectClient } from "../support/clients.js";
import { startTestServer, type TestServer } from "../support/server.js";

interface Clients {
  clusters: Client<typeof ClusterService>;
  projects: Client<typeof ProjectService>;
  ecl: Client<typeof ExecutionClusterLabelService>;
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

const stacks: Record<string, () => Clients> = {
  "@grpc/grpc-js": () => ({
    clusters: grpcJsAsConnectClient(ClusterService, `127.0.0.1:${server.port}`),
    projects: grpcJsAsConnectClient(ProjectService, `127.0.0.1:${server.port}`),
    ecl: grpcJsAsConnectClient(ExecutionClusterLabelService, `127.0.0.1:${server.port}`),
  }),
};
for (const name of ["connect-node gRPC (HTTP/2)", "connect-node Connect (HTTP/1.1)", "connect-node gRPC-Web (HTTP/1.1)"]) {
  stacks[name] = () => {
    const transport = connectTransports(server.url)[name]!;
    return {
      clusters: connectClient(ClusterService, transport),
      projects: connectClient(ProjectService, transport),
      ecl: connectClient(ExecutionClusterLabelService, transport),
    };
  };
}

/** The clusterConfigs entry of the multi-cluster seed, under its own organization. */
function dataplane(org: string, index: number) {
  return {
    cluster: {
      org,
      name: `dataplane_${index}`,
      endpoint: `https://dataplane-${index}.example.com:443`,
      enabled: true,
      auth: {
        method: {
          case: "bearerTokenFile" as const,
          value: {
            tokenPath: `/var/run/credentials/dataplane_${index}_token`,
            caCertPath: `/var/run/credentials/dataplane_${index}_cacert`,
          },
        },
      },
    },
  };
}

describe.each(Object.entries(stacks).map(([name, make], index) => ({ name, make, org: `routing-${index}` })))(
  "the multi-cluster seed's walk-through over $name",
  ({ make, org }) => {
    it("routes project1/development to dataplane_1, one workflow and team1/production to dataplane_2", async () => {
      const { clusters, projects, ecl } = make();
      const where = async (project: string, domain: string, workflow = "", executionId = "exec-1") =>
        ecl.selectCluster({ org, project, domain, workflow, executionId });

      // clusterConfigs: dataplane_1; labelClusterMap: label1 -> dataplane_1 (weight 1)
      await clusters.createCluster(dataplane(org, 1));
      await ecl.createClusterLabel({ label: { org, name: "label1", clusters: [{ cluster: "dataplane_1", weight: 1 }] } });
      await projects.createProject({ project: { org, id: "project1" } });
      // ecl.yaml: domain: development, project: project1, value: label1
      await ecl.updateExecutionClusterLabel({ executionClusterLabel: { org, project: "project1", domain: "development", value: "label1" } });
      const first = await where("project1", "development", "my_workflow");
      expect(first).toMatchObject({ cluster: "dataplane_1", label: "label1", endpoint: "https://dataplane-1.example.com:443" });
      expect(first.reason).toBe("project-domain label label1");

      // Day 2: add dataplane_2 under label2.
      await clusters.createCluster(dataplane(org, 2));
      await ecl.createClusterLabel({ label: { org, name: "label2", clusters: [{ cluster: "dataplane_2", weight: 1 }] } });
      // workflow-ecl.yaml: one workflow of project1/development goes to label2.
      await ecl.updateExecutionClusterLabel({
        executionClusterLabel: { org, project: "project1", domain: "development", workflow: "training_workflow", value: "label2" },
      });
      expect(await where("project1", "development", "training_workflow")).toMatchObject({ cluster: "dataplane_2", reason: "workflow label label2" });
      expect((await where("project1", "development", "my_workflow")).cluster).toBe("dataplane_1");

      // ecl-production.yaml: domain: production, project: team1, value: label2
      await projects.createProject({ project: { org, id: "team1" } });
      await ecl.updateExecutionClusterLabel({ executionClusterLabel: { org, project: "team1", domain: "production", value: "label2" } });
      for (let i = 0; i < 20; i++) {
        expect((await where("team1", "production", "training_workflow", `exec-${i}`)).cluster).toBe("dataplane_2");
      }
      const effective = await ecl.getExecutionClusterLabel({ org, project: "team1", domain: "production", workflow: "training_workflow" });
      expect(effective.effectiveValue).toBe("label2");
    });
  },
);
