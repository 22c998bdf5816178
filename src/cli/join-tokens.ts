import { Option } from "commander";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { CreateJoinTokenResponse } from "../../gen/clusterplane/v1/cluster_pb.js";
import { parseDuration } from "../core/duration.js";
import { CliError } from "./exit.js";
import type { Verbs } from "./verbs.js";

/** The join-token block `create cluster` (pull mode) and `create join-token` print. */
export function joinTokenText(cluster: string, join: CreateJoinTokenResponse): string {
  const until = join.expireTime ? timestampDate(join.expireTime).toISOString() : "its expiry";
  return [
    `Join token for cluster ${cluster} (shown once; single-use; valid until ${until}):`,
    `  ${join.joinToken}`,
    "Start the agent inside the cluster (or with --kubeconfig from anywhere that reaches its API):",
    `  ${join.agentCommand}`,
    "",
  ].join("\n");
}

/**
 * `create join-token --cluster NAME [--ttl 24h]` issues another join token for a pull-mode
 * cluster; `delete join-token --cluster NAME` revokes every unused one and the agent's credentials.
 */
export function registerJoinTokens(verbs: Verbs): void {
  verbs.create
    .command("join-token")
    .description("issue a one-time join token for a pull-mode cluster's agent")
    .addOption(new Option("--cluster <name>", "the pull-mode cluster").makeOptionMandatory())
    .addOption(new Option("--ttl <duration>", "how long it may be used, e.g. 1h or 7d (default 24h, at most 30d)"))
    .action(async (flags: { cluster: string; ttl?: string }) => {
      const { api, org } = verbs.session();
      const ttlSeconds = flags.ttl === undefined ? 0 : ttlOf(flags.ttl);
      const join = await api.clusters.createJoinToken({ org, cluster: flags.cluster, ttlSeconds });
      process.stdout.write(joinTokenText(flags.cluster, join));
    });
  verbs.delete
    .command("join-token")
    .description("revoke a pull-mode cluster's unused join tokens and its agent's credentials (its agent must join again)")
    .addOption(new Option("--cluster <name>", "the pull-mode cluster").makeOptionMandatory())
    .action(async (flags: { cluster: string }) => {
      const { api, org } = verbs.session();
      const revoked = await api.clusters.revokeAgentAccess({ org, cluster: flags.cluster });
      process.stdout.write(
        `revoked ${revoked.joinTokensRevoked} join token(s) and ${revoked.agentCredentialsRevoked} agent credential(s) of cluster ${flags.cluster}; ` +
          "its agent's streams ended: issue a new join token (create join-token) to let it join again\n",
      );
    });
}

function ttlOf(text: string): number {
  const days = /^(\d+)d$/.exec(text.trim());
  const ms = days ? Number(days[1]) * 24 * 3600_000 : parseDuration(text);
  if (ms === null) throw new CliError(`--ttl "${text}" must be a duration such as 30m, 24h or 7d`);
  return Math.round(ms / 1000);
}
