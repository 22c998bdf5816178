/**
 * The kinds of the clusterplane.v1 procedures, written out by hand: a method wrongly marked
 * NO_SIDE_EFFECTS in a proto (a write readable by viewers) fails the tests that use these.
 */
export const READS = [
  "clusterplane.v1.ClusterPoolService/GetClusterPool",
  "clusterplane.v1.ClusterPoolService/ListClusterPools",
  "clusterplane.v1.ClusterService/GetCluster",
  "clusterplane.v1.ClusterService/ListClusters",
  "clusterplane.v1.QueueService/GetQueue",
  "clusterplane.v1.QueueService/ListQueues",
  "clusterplane.v1.ExecutionClusterLabelService/GetClusterLabel",
  "clusterplane.v1.ExecutionClusterLabelService/ListClusterLabels",
  "clusterplane.v1.ExecutionClusterLabelService/GetDefaultClusterLabel",
  "clusterplane.v1.ExecutionClusterLabelService/GetExecutionClusterLabel",
  "clusterplane.v1.ExecutionClusterLabelService/ListExecutionClusterLabels",
  "clusterplane.v1.ProjectService/GetProject",
  "clusterplane.v1.ProjectService/ListProjects",
];

export const ROUTES = ["clusterplane.v1.ExecutionClusterLabelService/SelectCluster"];
