import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startServer, type RunningServer, type ServerConfig } from "../../src/server/server.js";

export interface TestServer extends RunningServer {
  dir: string;
  /** Closes the server and removes its database. */
  stop(): Promise<void>;
}

/** A real server on a free loopback port with a fresh SQLite file; the sync loop is off unless configured. */
export async function startTestServer(overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-e2e-"));
  const server = await startServer(
    { host: "127.0.0.1", port: 0, databasePath: join(dir, "clusterplane.db"), shutdownGraceMs: 2_000, ...overrides },
    pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
  );
  return {
    ...server,
    dir,
    async stop() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
