import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveServerConfig } from "../../src/server/config.js";
import { checkExposure, isLoopback } from "../../src/server/auth.js";
import { testPki } from "../support/kube/test-ca.js";
import { newToken, writeTokensFile } from "../support/auth.js";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "server-config-"));
}

function yamlFile(text: string): string {
  const path = join(tempDir(), "clusterplane.yaml");
  writeFileSync(path, text);
  return path;
}

function message(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected the configuration to be refused");
}

/** PEM files of the test PKI called `name`. */
function pemFiles(name: string) {
  const dir = tempDir();
  const pki = testPki(name);
  const files = { cert: join(dir, "server.crt"), key: join(dir, "server.key"), ca: join(dir, "ca.crt") };
  writeFileSync(files.cert, pki.serverCertPem);
  writeFileSync(files.key, pki.serverKeyPem);
  writeFileSync(files.ca, pki.caCertPem);
  return files;
}

describe("server configuration", () => {
  it("takes defaults, then environment, then flags", () => {
    expect(resolveServerConfig({}, {})).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      databasePath: "clusterplane.db",
      domains: ["development", "staging", "production"],
      auth: { allowUnauthenticated: false, clientCertificates: {} },
      cors: { allowedOrigins: [] },
      metrics: { public: true },
      logLevel: "info",
    });
    expect(resolveServerConfig({}, {}).tls).toBeUndefined();
    const env = { CLUSTERPLANE_PORT: "9000", CLUSTERPLANE_DB: "/data/a.db", CLUSTERPLANE_DOMAINS: "dev, prod" };
    expect(resolveServerConfig({}, env)).toMatchObject({ port: 9000, databasePath: "/data/a.db", domains: ["dev", "prod"] });
    expect(resolveServerConfig({ port: "7000" }, env).port).toBe(7000);
  });

  it("names every bad setting and where it came from", () => {
    expect(() => resolveServerConfig({ port: "99999" }, { CLUSTERPLANE_DOMAINS: "dev,Prod" })).toThrow(
      /--port: "99999" must be a whole number between 0 and 65535; CLUSTERPLANE_DOMAINS\[1\]/,
    );
  });

  it("reads every section of the YAML file; environment and flags override it", () => {
    const tokens = join(tempDir(), "tokens");
    writeTokensFile(tokens, [newToken("admin")]);
    const pem = pemFiles("config-file");
    const file = yamlFile(`
server:
  host: 0.0.0.0
  port: 8443
  database: /var/lib/clusterplane/state.db
  shutdownGrace: 30s
  domains: [development, production]
log:
  level: warn
auth:
  tokensFile: ${tokens}
  clientCertificates:
    flytepropeller: router
    ops-laptop: admin
tls:
  certFile: ${pem.cert}
  keyFile: ${pem.key}
  clientCaFile: ${pem.ca}
cors:
  allowedOrigins: ["https://console.example.com", "http://localhost:3000"]
metrics:
  public: false
sync:
  interval: 30s
  concurrency: 4
`);
    const config = resolveServerConfig({ config: file }, {});
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 8443,
      databasePath: "/var/lib/clusterplane/state.db",
      shutdownGraceMs: 30_000,
      domains: ["development", "production"],
      logLevel: "warn",
      auth: { tokensFile: tokens, allowUnauthenticated: false, clientCertificates: { flytepropeller: "router", "ops-laptop": "admin" } },
      tls: { certFile: pem.cert, keyFile: pem.key, clientCaFile: pem.ca, requireClientCertificate: false },
      cors: { allowedOrigins: ["https://console.example.com", "http://localhost:3000"] },
      metrics: { public: false },
      sync: { intervalMs: 30_000, concurrency: 4, enabled: true },
    });

    const overridden = resolveServerConfig(
      { config: undefined, port: "9443", corsOrigin: ["https://other.example.com"], sync: false },
      { CLUSTERPLANE_CONFIG_FILE: file, CLUSTERPLANE_HOST: "10.0.0.5", CLUSTERPLANE_PORT: "1", CLUSTERPLANE_LOG_LEVEL: "debug" },
    );
    expect(overridden).toMatchObject({ host: "10.0.0.5", port: 9443, logLevel: "debug", cors: { allowedOrigins: ["https://other.example.com"] } });
    expect(overridden.sync?.enabled).toBe(false);
  });

  it("refuses unknown sections and keys, suggesting the one meant", () => {
    const file = yamlFile("server:\n  prot: 8080\n  hots: 0.0.0.0\nauht:\n  tokensFile: x\ntls:\n  certfile: a\nsync:\n  intervall: 1m\n");
    const text = message(() => resolveServerConfig({ config: file }, {}));
    expect(text).toContain("server.prot: unknown key; did you mean port?");
    expect(text).toContain("server.hots: unknown key; did you mean host?");
    expect(text).toContain("auht: unknown section; did you mean auth?");
    expect(text).toContain("tls.certfile: unknown key; did you mean certFile?");
    expect(text).toContain("sync.intervall: unknown key");
    expect(message(() => resolveServerConfig({ config: yamlFile("metrics:\n  colour: blue\n") }, {}))).toContain(
      "metrics.colour: unknown key; expected one of public",
    );
  });

  it("says which key has a wrong value and why", () => {
    const file = yamlFile(`
server: { port: eighty, shutdownGrace: soon, domains: 5 }
log: { level: loud }
auth: { allowUnauthenticated: maybe, clientCertificates: { ops: root, engine: router } }
cors: { allowedOrigins: ["https://console.example.com/app", "console.example.com"] }
metrics: { public: 3 }
`);
    const text = message(() => resolveServerConfig({ config: file }, {}));
    expect(text).toContain('server.port: "eighty" must be a whole number between 0 and 65535');
    expect(text).toContain('server.shutdownGrace: "soon" must be a duration');
    expect(text).toContain("server.domains: must be a list of strings");
    expect(text).toContain('log.level: "loud" must be one of trace, debug, info, warn, error, fatal, silent');
    expect(text).toContain('auth.allowUnauthenticated: "maybe" must be true or false');
    expect(text).toContain('auth.clientCertificates.ops: "root" is not a role; use admin, viewer, router');
    expect(text).toContain('cors.allowedOrigins[0]: "https://console.example.com/app" must be an origin');
    expect(text).toContain("cors.allowedOrigins[1]");
    expect(text).toContain("metrics.public: 3 must be true or false");
    expect(text).toContain("auth.clientCertificates: needs tls.clientCaFile");
    expect(message(() => resolveServerConfig({ config: "/nonexistent/clusterplane.yaml" }, {}))).toMatch(/--config: cannot read/);
    expect(message(() => resolveServerConfig({}, { CLUSTERPLANE_CONFIG_FILE: yamlFile("server: [1, 2]\n") }))).toContain("server: must be a mapping");
  });

  it("checks the tokens file at start, naming the setting and the line", () => {
    const tokens = join(tempDir(), "tokens");
    writeFileSync(tokens, `# ops\n${"x".repeat(20)} admin ops\n${"y".repeat(20)} owner someone\n`);
    const text = message(() => resolveServerConfig({ tokensFile: tokens }, {}));
    expect(text).toContain(`--tokens-file (${tokens}) line 3: the second field is not a role: use one of admin, viewer, router`);
    expect(text).not.toContain("y".repeat(20));
    expect(message(() => resolveServerConfig({}, { CLUSTERPLANE_TOKENS_FILE: "/nonexistent" }))).toMatch(/CLUSTERPLANE_TOKENS_FILE: cannot read \/nonexistent/);
  });

  it("checks TLS settings: pairs, files, and a key that belongs to the certificate", () => {
    const mine = pemFiles("config-mine");
    const other = pemFiles("config-other");
    expect(resolveServerConfig({ tlsCert: mine.cert, tlsKey: mine.key, tlsClientCa: mine.ca }, {}).tls).toEqual({
      certFile: mine.cert,
      keyFile: mine.key,
      clientCaFile: mine.ca,
      requireClientCertificate: false,
    });
    expect(message(() => resolveServerConfig({ tlsCert: mine.cert }, {}))).toContain("tls.keyFile: required with --tls-cert");
    expect(message(() => resolveServerConfig({ tlsClientCa: mine.ca }, {}))).toContain("--tls-client-ca: client certificates need TLS");
    expect(message(() => resolveServerConfig({ tlsCert: mine.cert, tlsKey: other.key }, {}))).toMatch(
      /--tls-key: .* is not the private key of the certificate in/,
    );
    expect(message(() => resolveServerConfig({ tlsCert: mine.key, tlsKey: mine.key }, {}))).toMatch(/--tls-cert: .* is not a PEM certificate/);
    expect(message(() => resolveServerConfig({ tlsCert: "/nonexistent.crt", tlsKey: mine.key }, {}))).toContain(
      "--tls-cert: cannot read /nonexistent.crt",
    );
    expect(message(() => resolveServerConfig({ config: yamlFile(`tls:\n  certFile: ${mine.cert}\n  keyFile: ${mine.key}\n  requireClientCertificate: true\n`) }, {}))).toContain(
      "tls.requireClientCertificate: needs tls.clientCaFile",
    );
  });

  it("loads examples/clusterplane.yaml, the README's complete example (shown there verbatim)", () => {
    // The example names files under /etc; the environment points those settings at test files.
    const tokens = join(tempDir(), "tokens");
    writeTokensFile(tokens, [newToken("admin")]);
    const pem = pemFiles("example");
    const env = {
      CLUSTERPLANE_TOKENS_FILE: tokens,
      CLUSTERPLANE_TLS_CERT: pem.cert,
      CLUSTERPLANE_TLS_KEY: pem.key,
      CLUSTERPLANE_TLS_CLIENT_CA: pem.ca,
      AWS_ACCOUNT_ID: "123456789012",
    };
    const config = resolveServerConfig({ config: "examples/clusterplane.yaml" }, env);
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 8443,
      databasePath: "/var/lib/clusterplane/state.db",
      shutdownGraceMs: 10_000,
      auth: { tokensFile: tokens, clientCertificates: { flytepropeller: "router", "ops-break-glass": "admin" } },
      tls: { certFile: pem.cert, clientCaFile: pem.ca, requireClientCertificate: false },
      cors: { allowedOrigins: ["https://console.example.com"] },
      metrics: { public: true },
      sync: { intervalMs: 60_000, templatePath: "examples/templates" },
    });
    expect(config.sync?.provisioning.templateData.accountId).toBe("123456789012");
    expect(readFileSync("README.md", "utf8")).toContain("```yaml\n" + readFileSync("examples/clusterplane.yaml", "utf8") + "```");
  });

  it("keeps the legacy --sync-config file (the sync section on its own)", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "sync.yaml"), "interval: 2m\n");
    expect(resolveServerConfig({ syncConfig: join(dir, "sync.yaml") }, {}).sync?.intervalMs).toBe(120_000);
  });
});

describe("intervals and timeouts of the change log, leader election and Watch", () => {
  it("refuses 0, which would make a busy loop of a timer", () => {
    const file = yamlFile("changeLog:\n  followInterval: 0s\nleaderElection:\n  renewInterval: 0ms\nwatch:\n  progressInterval: 0\nserver:\n  lockTimeout: 0s\n");
    const text = message(() => resolveServerConfig({ config: file }, {}));
    for (const key of ["changeLog.followInterval", "leaderElection.renewInterval", "watch.progressInterval", "server.lockTimeout"]) {
      expect(text).toContain(`${key}: `);
    }
    expect(text).toContain('changeLog.followInterval: "0s" must be a positive duration such as 500ms, 10s or 1m (at most 1h)');
  });
});

describe("workers, the per-RPC log policy and the lean gRPC path", () => {
  it("defaults to one process, notable calls logged (failures, slow calls, writes) and the lean path on", () => {
    const config = resolveServerConfig({}, {});
    expect(config.workers).toBeUndefined();
    expect(config.rpcLog).toEqual({ calls: "notable", slowMs: 1000 });
    expect(config.leanGrpc).toBeUndefined();
  });

  it("reads them from flags, the environment and the file", () => {
    const file = yamlFile("server:\n  workers: 3\n  leanGrpc: false\nlog:\n  rpcCalls: all\n  slowRpc: 250ms\n");
    expect(resolveServerConfig({ config: file }, {})).toMatchObject({ workers: 3, leanGrpc: false, rpcLog: { calls: "all", slowMs: 250 } });
    expect(resolveServerConfig({ config: file, workers: "2" }, { CLUSTERPLANE_LOG_RPC_CALLS: "none" })).toMatchObject({ workers: 2, rpcLog: { calls: "none" } });
    expect(resolveServerConfig({ workers: "auto" }, {}).workers).toBeGreaterThanOrEqual(1);
  });

  it("refuses a worker count that is not one, and several workers on a private in-memory database", () => {
    expect(message(() => resolveServerConfig({ workers: "0" }, {}))).toContain("--workers: \"0\" must be a whole number between 1 and 256");
    expect(message(() => resolveServerConfig({ workers: "many" }, {}))).toContain("--workers");
    expect(message(() => resolveServerConfig({ workers: "2", db: ":memory:" }, {}))).toContain(
      "--workers: several workers need a database file they can share; :memory: is private to one process",
    );
    expect(message(() => resolveServerConfig({}, { CLUSTERPLANE_LOG_RPC_CALLS: "some" }))).toContain(
      'CLUSTERPLANE_LOG_RPC_CALLS: "some" must be one of all, notable, none',
    );
  });
});

describe("the PostgreSQL connection pool", () => {
  it("reads its size and statement timeout from flags, the environment and the file, in that order", () => {
    const file = yamlFile("server:\n  databasePoolSize: 20\n  statementTimeout: 5s\n");
    expect(resolveServerConfig({}, {}).databasePool).toBeUndefined();
    expect(resolveServerConfig({ config: file }, {}).databasePool).toEqual({ poolSize: 20, statementTimeoutMs: 5_000 });
    expect(resolveServerConfig({ config: file }, { CLUSTERPLANE_DB_POOL_SIZE: "30", CLUSTERPLANE_STATEMENT_TIMEOUT_MS: "0" }).databasePool)
      .toEqual({ poolSize: 30, statementTimeoutMs: 0 });
    expect(resolveServerConfig({ config: file, dbPoolSize: "40", statementTimeoutMs: "1500" }, { CLUSTERPLANE_DB_POOL_SIZE: "30" }).databasePool)
      .toEqual({ poolSize: 40, statementTimeoutMs: 1_500 });
  });

  it("refuses a pool of no connections and a timeout that is not a duration", () => {
    expect(message(() => resolveServerConfig({ dbPoolSize: "0" }, {}))).toContain('--db-pool-size: "0" must be a whole number between 1 and 1000');
    expect(message(() => resolveServerConfig({}, { CLUSTERPLANE_STATEMENT_TIMEOUT_MS: "soon" }))).toContain("CLUSTERPLANE_STATEMENT_TIMEOUT_MS");
  });
});

describe("the open-bind rule", () => {
  it("knows loopback addresses", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"]) expect(isLoopback(host)).toBe(true);
    for (const host of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.10", "example.com", "128.0.0.1"]) expect(isLoopback(host)).toBe(false);
  });

  it("refuses to listen beyond loopback without tokens or client certificates unless told to run open", () => {
    expect(() => checkExposure({ host: "0.0.0.0" })).toThrow(/server\.host: refusing to listen on 0\.0\.0\.0 without authentication.*auth\.tokensFile.*--allow-unauthenticated/);
    expect(() => checkExposure({ host: "127.0.0.1" })).not.toThrow();
    expect(() => checkExposure({ host: "0.0.0.0", tokensFile: "/etc/tokens" })).not.toThrow();
    expect(() => checkExposure({ host: "0.0.0.0", clientCaFile: "/etc/ca.crt" })).not.toThrow();
    expect(() => checkExposure({ host: "0.0.0.0", allowUnauthenticated: true })).not.toThrow();
  });
});
