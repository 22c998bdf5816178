import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import { startTestServer, type TestServer } from "../support/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

/** A Connect GET for a read RPC, as a page on another site could send it, with a chosen Host header. */
function listPoolsWithHost(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: "127.0.0.1",
        port: server.port,
        path: "/clusterplane.v1.ClusterPoolService/ListClusterPools?connect=v1&encoding=json&message=%7B%7D",
        headers: { host },
      },
      (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.on("error", reject);
    request.end();
  });
}

describe("a server running without authentication on loopback", () => {
  it("answers requests addressed to localhost", async () => {
    expect(await listPoolsWithHost(`127.0.0.1:${server.port}`)).toBe(200);
    expect(await listPoolsWithHost(`localhost:${server.port}`)).toBe(200);
  });

  it("refuses requests addressed to another name (DNS rebinding)", async () => {
    expect(await listPoolsWithHost("evil.example")).toBe(403);
    expect(await listPoolsWithHost(`rebound.example:${server.port}`)).toBe(403);
  });
});
