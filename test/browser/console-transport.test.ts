import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { newToken, writeTokensFile } from "../support/auth.js";
import { testPki } from "../support/kube/test-ca.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { chromiumAvailable, launch, openTab, signIn } from "./console/harness.js";

describe.skipIf(!chromiumAvailable)("the web console under TLS, and with auth off on loopback", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  }, 60_000);
  afterAll(() => browser?.close());

  it("works over HTTPS (HTTP/2): signs in, goes live, and its own https origin is accepted", async () => {
    const pki = testPki("clusterplane-console-tls");
    const dir = mkdtempSync(join(tmpdir(), "console-tls-"));
    const admin = newToken("admin", "ops");
    writeFileSync(join(dir, "server.crt"), pki.serverCertPem);
    writeFileSync(join(dir, "server.key"), pki.serverKeyPem);
    writeTokensFile(join(dir, "tokens"), [admin]);
    const server: TestServer = await startTestServer({
      tls: { certFile: join(dir, "server.crt"), keyFile: join(dir, "server.key") },
      auth: { tokensFile: join(dir, "tokens") },
    });
    expect(server.url).toMatch(/^https:/);
    const tab = await openTab(browser, `${server.url}/`, undefined, { ignoreHTTPSErrors: true });
    try {
      await signIn(tab.page, admin.token);
      await tab.page.waitForSelector("main h1:text('Overview')");
      expect(await tab.page.textContent('[data-testid="identity"]')).toBe("ops (admin)");
      const csp = await tab.page.evaluate(async () => (await fetch("/")).headers.get("content-security-policy"));
      expect(csp).toContain("connect-src 'self'");
      expect(tab.problems).toEqual([]);
    } finally {
      await tab.close();
      await server.stop();
    }
  });

  it("works without a token when auth is off on loopback (everyone is an admin there)", async () => {
    const server = await startTestServer();
    const tab = await openTab(browser, `${server.url}/`);
    try {
      await tab.page.waitForSelector('[data-feed="live"]', { timeout: 20_000 });
      expect(await tab.page.textContent('[data-testid="identity"]')).toBe("auth off (admin)");
      expect(await tab.page.getByLabel("Access token").count()).toBe(0);
      expect(tab.problems).toEqual([]);
      // A name that is not loopback (a rebound DNS name) gets nothing, the console included.
      const port = new URL(server.url).port;
      const status = await new Promise<number>((resolve, reject) => {
        http.get({ host: "127.0.0.1", port, path: "/", headers: { Host: `evil.example:${port}` } }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        }).on("error", reject);
      });
      expect(status).toBe(403);
    } finally {
      await tab.close();
      await server.stop();
    }
  });
});
