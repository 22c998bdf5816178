import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import type { Browser } from "playwright-core";
import { chromiumAvailable, launch } from "./console/harness.js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterPoolService } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { bearer, newToken, writeTokensFile } from "../support/auth.js";
import { seedProdPool } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

// Debian's Chromium, launched as every browser test does (the harness refuses a CI run without it).
const available = chromiumAvailable;

interface PageServer {
  origin: string;
  close(): Promise<void>;
}

/** Serves the page and its bundle from its own port: a different origin from the API server. */
async function servePage(bundle: string): Promise<PageServer> {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>clusterplane pools</title></head>
<body><h1>Cluster pools</h1>
<p>Connect: <span id="connect"></span></p>
<p>gRPC-Web: <span id="grpc-web"></span></p>
<script type="module" src="/app.js"></script></body></html>`;
  const server = http.createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (path === "/") response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(html);
    else if (path === "/app.js") response.writeHead(200, { "Content-Type": "text/javascript; charset=utf-8" }).end(bundle);
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(!available)("a real browser: Chromium with @connectrpc/connect-web from another origin", () => {
  const admin = newToken("admin", "ops");
  const viewer = newToken("viewer", "console");
  let server: TestServer;
  let allowedPage: PageServer;
  let otherPage: PageServer;
  let browser: Browser;

  beforeAll(async () => {
    const bundled = await build({
      entryPoints: ["test/browser/page/main.ts"],
      bundle: true,
      write: false,
      platform: "browser",
      format: "esm",
      target: "es2022",
      logLevel: "silent",
    });
    const bundle = bundled.outputFiles[0]!.text;
    [allowedPage, otherPage] = await Promise.all([servePage(bundle), servePage(bundle)]);
    const tokens = join(mkdtempSync(join(tmpdir(), "tokens-")), "tokens");
    writeTokensFile(tokens, [admin, viewer]);
    server = await startTestServer({ auth: { tokensFile: tokens }, cors: { allowedOrigins: [allowedPage.origin] } });
    const pools = createClient(ClusterPoolService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [bearer(admin.token)] }));
    await pools.createClusterPool({ clusterPool: seedProdPool({ name: "browser-pool" }) });
    browser = await launch();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await Promise.all([allowedPage?.close(), otherPage?.close()]);
  });

  async function open(page: PageServer, token: string) {
    const tab = await browser.newPage();
    const query = new URLSearchParams({ server: server.url, token });
    await tab.goto(`${page.origin}/?${query}`);
    await tab.waitForSelector("body[data-done=true]", { timeout: 20_000 });
    const read = async (id: string) => ({
      state: await tab.getAttribute(`#${id}`, "data-state"),
      text: await tab.textContent(`#${id}`),
    });
    const result = { connect: await read("connect"), grpcWeb: await read("grpc-web") };
    await tab.close();
    return result;
  }

  it("lists pools over the Connect protocol and over gRPC-Web, with a bearer token, from an allowed origin", async () => {
    const seen = await open(allowedPage, viewer.token);
    expect(seen.connect).toEqual({ state: "ok", text: "browser-pool,default" });
    expect(seen.grpcWeb).toEqual({ state: "ok", text: "browser-pool,default" });
  });

  it("reports the server's refusal of a token the browser sent", async () => {
    const seen = await open(allowedPage, "not-a-valid-token-000000");
    expect(seen.connect.state).toBe("error");
    expect(seen.connect.text).toContain("unauthenticated");
    expect(seen.grpcWeb.state).toBe("error");
    expect(seen.grpcWeb.text).toContain("unauthenticated");
  });

  /** ListClusterPools calls that reached the RPC layer, whatever their outcome. */
  async function listCalls(): Promise<number> {
    const { values } = await server.metrics.rpcRequests.get();
    return values.filter((v) => v.labels.method === "ListClusterPools").reduce((sum, v) => sum + v.value, 0);
  }

  it("fails from an origin that is not on the allow-list (CORS refused)", async () => {
    const before = await listCalls();
    const seen = await open(otherPage, viewer.token);
    // Refused at the preflight: no call reached the API.
    expect(await listCalls()).toBe(before);
    expect(seen.connect.state).toBe("error");
    expect(seen.grpcWeb.state).toBe("error");
    // The browser hides the reason from the page; the fetch itself fails.
    expect(seen.connect.text).toMatch(/Failed to fetch/);
    expect(seen.grpcWeb.text).toMatch(/Failed to fetch/);
  });
});
