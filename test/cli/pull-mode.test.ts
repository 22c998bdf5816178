import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";
import { cliAgainst, fixture, tableRows, type Cli } from "./run-cli.js";

let server: TestServer;
let cli: Cli;
beforeAll(async () => {
  server = await startTestServer();
  cli = cliAgainst(server.url);
});
afterAll(() => server?.stop());

describe("clusterplane CLI: pull-mode clusters (the seed's own command)", () => {
  it("create cluster NAME --pool POOL registers a pull cluster and prints its join token and agent command once", async () => {
    expect((await cli(["create", "cluster-pool", "--file", fixture("prod-pool.yaml")])).code).toBe(0);
    const created = await cli(["create", "cluster", "prod-us-east-1", "--pool", "prod"]);
    expect(created.code).toBe(0);
    expect(created.stdout).toBe(`cluster "prod-us-east-1" created\n`);
    const token = /^  (cpjoin_\S+)$/m.exec(created.stderr)?.[1];
    expect(token, created.stderr).toBeDefined();
    expect(created.stderr).toContain(`clusterplane agent --control-plane ${server.url} --join-token ${token}`);

    const rows = tableRows((await cli(["get", "cluster"])).stdout);
    expect(rows).toEqual([expect.objectContaining({ NAME: "prod-us-east-1", MODE: "pull", ENDPOINT: "(agent not joined)" })]);

    const again = await cli(["create", "join-token", "--cluster", "prod-us-east-1", "--ttl", "2h"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^Join token for cluster prod-us-east-1 \(shown once; single-use; valid until \S+\):\n  cpjoin_/);
    const revoked = await cli(["delete", "join-token", "--cluster", "prod-us-east-1"]);
    expect(revoked.stdout).toMatch(/^revoked 2 join token\(s\) and 0 agent credential\(s\) of cluster prod-us-east-1/);
    const badTtl = await cli(["create", "join-token", "--cluster", "prod-us-east-1", "--ttl", "soon"]);
    expect(badTtl.code).toBe(2);
    expect(badTtl.stderr).toContain('--ttl "soon" must be a duration such as 30m, 24h or 7d');
  });
});
