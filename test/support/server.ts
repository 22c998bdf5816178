import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startServer, type RunningServer, type ServerConfig } from "../../src/server/server.js";
import type { Logger } from "../../src/server/logging.js";

export interface TestServer extends RunningServer {
  dir: string;
  /** Closes the server and removes its database. */
  stop(): Promise<void>;
}

export interface TestServerOptions {
  /** Where the server logs; silent (or TEST_LOG_LEVEL) by default. */
  logger?: Logger;
}

/**
 * A real server on a free loopback port with a fresh SQLite file; the sync loop is off unless
 * configured, and so is authentication (no tokens file, loopback only), so tests need no token.
 */
export async function startTestServer(overrides: Partial<ServerConfig> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-e2e-"));
  let server: RunningServer;
  try {
    server = await startServer(
      { host: "127.0.0.1", port: 0, databasePath: join(dir, "clusterplane.db"), shutdownGraceMs: 2_000, ...overrides },
      options.logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  // Extended in place, not spread: `sync` is a getter (the loop runs while this process leads).
  return Object.assign(server, {
    dir,
    async stop() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}
