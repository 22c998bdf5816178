/**
 * The page the browser test serves from another origin: lists cluster pools through
 * @connectrpc/connect-web over the Connect protocol and over gRPC-Web, and writes what it got
 * (or the error) into the DOM for Playwright to read.
 */
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { ClusterPoolService } from "../../../gen/clusterplane/v1/cluster_pool_pb.js";

const params = new URLSearchParams(window.location.search);
const baseUrl = params.get("server") ?? "";
const token = params.get("token");

const withToken: Interceptor = (next) => (request) => {
  if (token) request.header.set("Authorization", `Bearer ${token}`);
  return next(request);
};

async function show(id: string, transport: Transport): Promise<void> {
  const element = document.getElementById(id)!;
  try {
    const { clusterPools } = await createClient(ClusterPoolService, transport).listClusterPools({});
    element.textContent = clusterPools.map((pool) => pool.name).join(",");
    element.dataset.state = "ok";
  } catch (error) {
    element.textContent = String(error);
    element.dataset.state = "error";
  }
}

await Promise.all([
  show("connect", createConnectTransport({ baseUrl, interceptors: [withToken] })),
  show("grpc-web", createGrpcWebTransport({ baseUrl, interceptors: [withToken] })),
]);
document.body.dataset.done = "true";
