import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import https from "node:https";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ExecutionClusterLabelService } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { bearer, newToken, writeTokensFile } from "../support/auth.js";
import { grpcJsClient, GrpcJsError } from "../support/clients.js";
import { seedProdPool } from "../support/fixtures.js";
import { testClientCertificate, testPki, type TestClientCertificate } from "../support/kube/test-ca.js";
import { startTestServer, type TestServer } from "../support/server.js";

const PKI = "clusterplane-tls";
const pki = testPki(PKI);
const opsLaptop = testClientCertificate(PKI, "ops-laptop");
const engine = testClientCertificate(PKI, "execution-engine");
const unmapped = testClientCertificate(PKI, "stranger");
const foreign = testClientCertificate("some-other-ca", "ops-laptop");
const admin = newToken("admin", "ops");

let dir: string;
const files = { cert: "", key: "", ca: "", tokens: "" };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "clusterplane-tls-"));
  files.cert = join(dir, "server.crt");
  files.key = join(dir, "server.key");
  files.ca = join(dir, "client-ca.crt");
  files.tokens = join(dir, "tokens");
  writeFileSync(files.cert, pki.serverCertPem);
  writeFileSync(files.key, pki.serverKeyPem);
  writeFileSync(files.ca, pki.caCertPem);
  writeTokensFile(files.tokens, [admin]);
});

type Client = TestClientCertificate | undefined;

/** grpc-js would otherwise send the IP address as SNI, which RFC 6066 forbids (Node warns). */
const SNI_LOCALHOST = { "grpc.ssl_target_name_override": "localhost" };

/** Every connect-node transport over TLS, trusting the test CA, presenting `client` if given. */
function tlsTransports(url: string, client: Client, ...interceptors: Interceptor[]): Record<string, Transport> {
  const identity = client ? { cert: client.certPem, key: client.keyPem } : {};
  // SNI carries host names only (RFC 6066); the certificate is valid for localhost and 127.0.0.1.
  const h2 = { ca: pki.caCertPem, servername: "localhost", ...identity };
  const h1 = { ca: pki.caCertPem, servername: "localhost", ...identity, agent: false as const };
  return {
    "gRPC (HTTP/2)": createGrpcTransport({ baseUrl: url, nodeOptions: h2, interceptors }),
    "Connect (HTTP/2)": createConnectTransport({ baseUrl: url, httpVersion: "2", nodeOptions: h2, interceptors }),
    "Connect (HTTP/1.1)": createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: h1, interceptors }),
    "gRPC-Web (HTTP/1.1)": createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: h1, interceptors }),
  };
}

async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "OK";
  } catch (error) {
    return Code[ConnectError.from(error).code];
  }
}

/** The protocol ALPN settles on when a client offers `protocols`. */
function negotiate(port: number, protocols: string[], options: tls.ConnectionOptions = {}): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ALPNProtocols: protocols, ca: pki.caCertPem, ...options }, () => {
      resolve(socket.alpnProtocol ?? false);
      socket.end();
    });
    socket.once("error", reject);
  });
}

function httpsGet(url: string, options: https.RequestOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca: pki.caCertPem, agent: false, ...options }, (response) => {
        let body = "";
        response.on("data", (chunk) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

describe("TLS: HTTP/2 via ALPN and HTTP/1.1 on one port", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ tls: { certFile: files.cert, keyFile: files.key }, auth: { tokensFile: files.tokens } });
  });
  afterAll(() => server.stop());

  it("negotiates h2 or http/1.1 and refuses clients that do not trust the certificate", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await negotiate(server.port, ["h2", "http/1.1"])).toBe("h2");
    expect(await negotiate(server.port, ["http/1.1"])).toBe("http/1.1");
    await expect(negotiate(server.port, ["h2"], { ca: testPki("some-other-ca").caCertPem })).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it("serves every connect-node protocol with a bearer token", async () => {
    for (const [name, transport] of Object.entries(tlsTransports(server.url, undefined, bearer(admin.token)))) {
      const pools = createClient(ClusterPoolService, transport);
      const list = await pools.listClusterPools({});
      expect([name, list.clusterPools.map((pool) => pool.name)]).toEqual([name, ["default"]]);
    }
    for (const [name, transport] of Object.entries(tlsTransports(server.url, undefined))) {
      expect([name, await codeOf(createClient(ClusterPoolService, transport).listClusterPools({}))]).toEqual([name, "Unauthenticated"]);
    }
  });

  it("serves grpc-js over TLS, and the probes over HTTPS", async () => {
    const client = grpcJsClient(ClusterPoolService, `127.0.0.1:${server.port}`, {
      credentials: grpc.credentials.createSsl(Buffer.from(pki.caCertPem)),
      channelOptions: SNI_LOCALHOST,
      metadata: { authorization: `Bearer ${admin.token}` },
    });
    try {
      const created = await client.call("CreateClusterPool", { clusterPool: seedProdPool({ name: "over-tls" }) });
      expect(created.clusterPool.name).toBe("over-tls");
    } finally {
      client.close();
    }
    expect(await httpsGet(`${server.url}/healthz`)).toEqual({ status: 200, body: "ok\n" });
    expect((await httpsGet(`${server.url}/readyz`)).status).toBe(200);
  });
});

describe("mutual TLS: client certificates required", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      host: "127.0.0.1",
      tls: { certFile: files.cert, keyFile: files.key, clientCaFile: files.ca, requireClientCertificate: true },
      auth: { tokensFile: files.tokens, clientCertificates: { "ops-laptop": "admin", "execution-engine": "router" } },
    });
  });
  afterAll(() => server.stop());

  it("gives a verified certificate the role mapped to its common name, over every protocol", async () => {
    for (const [name, transport] of Object.entries(tlsTransports(server.url, opsLaptop))) {
      const pools = createClient(ClusterPoolService, transport);
      const poolName = `mtls-${name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/-+$/, "")}`;
      expect([name, (await pools.createClusterPool({ clusterPool: seedProdPool({ name: poolName }) })).clusterPool?.name]).toEqual([name, poolName]);
    }
    for (const [name, transport] of Object.entries(tlsTransports(server.url, engine))) {
      expect([name, await codeOf(createClient(ClusterPoolService, transport).listClusterPools({}))]).toEqual([name, "OK"]);
      const routing = createClient(ExecutionClusterLabelService, transport);
      // Allowed (nothing is registered, so there is no cluster to pick): FAILED_PRECONDITION, not PERMISSION_DENIED.
      expect([name, await codeOf(routing.selectCluster({ project: "p", domain: "development", executionId: "e1" }))]).not.toEqual([
        name,
        "PermissionDenied",
      ]);
      expect([name, await codeOf(createClient(ClusterPoolService, transport).deleteClusterPool({ name: "x" }))]).toEqual([name, "PermissionDenied"]);
    }
  });

  it("refuses an unmapped certificate (PERMISSION_DENIED), a missing or foreign one (UNAUTHENTICATED), and bearer tokens", async () => {
    const list = (transport: Transport) => codeOf(createClient(ClusterPoolService, transport).listClusterPools({}));
    for (const [name, transport] of Object.entries(tlsTransports(server.url, unmapped))) expect([name, await list(transport)]).toEqual([name, "PermissionDenied"]);
    for (const [name, transport] of Object.entries(tlsTransports(server.url, undefined))) expect([name, await list(transport)]).toEqual([name, "Unauthenticated"]);
    for (const [name, transport] of Object.entries(tlsTransports(server.url, foreign))) expect([name, await list(transport)]).toEqual([name, "Unauthenticated"]);
    for (const [name, transport] of Object.entries(tlsTransports(server.url, undefined, bearer(admin.token)))) {
      expect([name, await list(transport)]).toEqual([name, "Unauthenticated"]);
    }
  });

  it("keeps health and probes reachable without a client certificate", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url, nodeOptions: { ca: pki.caCertPem, servername: "localhost" } }));
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await httpsGet(`${server.url}/healthz`)).status).toBe(200);
    expect((await httpsGet(`${server.url}/readyz`)).status).toBe(200);
  });

  it("completes the handshake of grpc-js with a client certificate", async () => {
    const call = async (client: Client) => {
      const credentials = client
        ? grpc.credentials.createSsl(Buffer.from(pki.caCertPem), Buffer.from(client.keyPem), Buffer.from(client.certPem))
        : grpc.credentials.createSsl(Buffer.from(pki.caCertPem));
      const grpcClient = grpcJsClient(ClusterPoolService, `127.0.0.1:${server.port}`, { credentials, channelOptions: SNI_LOCALHOST });
      try {
        await grpcClient.call("ListClusterPools", {});
        return grpc.status.OK;
      } catch (error) {
        return (error as GrpcJsError).code;
      } finally {
        grpcClient.close();
      }
    };
    expect(await call(opsLaptop)).toBe(grpc.status.OK);
    expect(await call(undefined)).toBe(grpc.status.UNAUTHENTICATED);
    expect(await call(unmapped)).toBe(grpc.status.PERMISSION_DENIED);
  });
});

describe("mutual TLS: client certificates optional beside bearer tokens", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      tls: { certFile: files.cert, keyFile: files.key, clientCaFile: files.ca },
      auth: { tokensFile: files.tokens, clientCertificates: { "ops-laptop": "admin" } },
    });
  });
  afterAll(() => server.stop());

  it("accepts either a mapped certificate or a token", async () => {
    const [, viaCertificate] = Object.entries(tlsTransports(server.url, opsLaptop))[0]!;
    const [, viaToken] = Object.entries(tlsTransports(server.url, undefined, bearer(admin.token)))[0]!;
    const [, neither] = Object.entries(tlsTransports(server.url, undefined))[0]!;
    expect(await codeOf(createClient(ClusterPoolService, viaCertificate).listClusterPools({}))).toBe("OK");
    expect(await codeOf(createClient(ClusterPoolService, viaToken).listClusterPools({}))).toBe("OK");
    expect(await codeOf(createClient(ClusterPoolService, neither).listClusterPools({}))).toBe("Unauthenticated");
  });
});

describe("TLS shutdown", () => {
  it("closes idle keep-alive HTTP/1.1 connections and HTTP/2 sessions at once, without waiting for the grace period", async () => {
    const server = await startTestServer({ shutdownGraceMs: 20_000, tls: { certFile: files.cert, keyFile: files.key } });
    const agent = new https.Agent({ keepAlive: true, ca: pki.caCertPem, servername: "localhost" });
    try {
      const pools = createClient(ClusterPoolService, tlsTransports(server.url, undefined)["gRPC (HTTP/2)"]!);
      await pools.listClusterPools({});
      expect((await httpsGet(`${server.url}/healthz`, { agent })).status).toBe(200);
      const started = Date.now();
      await server.stop();
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      agent.destroy();
    }
  });
});
