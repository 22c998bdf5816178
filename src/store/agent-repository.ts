import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { AGENT_CREDENTIAL_PREFIX } from "../core/credentials.js";
import { failedPrecondition, notFound, unauthenticated } from "../core/errors.js";
import type { ChangeLog } from "./changes.js";

/** A secret shown once: the text to hand over, and until when it is accepted. */
export interface IssuedSecret {
  token: string;
  expiresAt: Date;
}

/** The cluster an agent credential speaks for. */
export interface AgentBinding {
  org: string;
  cluster: string;
  credentialId: string;
  expiresAt: Date;
}

export interface AgentTimings {
  /** How long an agent credential is accepted; the agent rotates it before then. */
  credentialTtlMs: number;
}

export const DEFAULT_JOIN_TOKEN_TTL_MS = 24 * 3600_000;
export const DEFAULT_CREDENTIAL_TTL_MS = 30 * 24 * 3600_000;

const JOIN_PREFIX = "cpjoin_";

/**
 * Join tokens and agent credentials of pull-mode clusters. Only digests are stored: a stolen
 * database copy yields no usable secret. Times are the database's clock, as leases are, so
 * replicas whose clocks disagree still agree on expiry. Heartbeats update the cluster's row
 * without a change-log entry: a lease renewal every few seconds per agent is not news for Watch
 * streams; the transitions it causes (silent, back) are written through the log.
 */
export class AgentRepository {
  constructor(
    private readonly changes: ChangeLog,
    private readonly timings: AgentTimings = { credentialTtlMs: DEFAULT_CREDENTIAL_TTL_MS },
  ) {}

  /** A one-time join token for a pull-mode cluster. */
  issueJoinToken(org: string, cluster: string, ttlMs: number): Promise<IssuedSecret> {
    return this.changes.write(async () => {
      await this.requirePullCluster(org, cluster);
      const now = await this.changes.clockMs();
      const token = `${JOIN_PREFIX}${randomBytes(24).toString("base64url")}`;
      const expiresAt = now + ttlMs;
      await this.changes.db
        .insertInto("join_tokens")
        .values({ digest: digest(token), org, cluster, created_at: now, expires_at: expiresAt, used_at: null, revoked_at: null })
        .execute();
      return { token, expiresAt: new Date(expiresAt) };
    });
  }

  /** Spends a join token: the agent gets a credential bound to the token's cluster. */
  join(token: string, agentVersion: string): Promise<{ credential: IssuedSecret; org: string; cluster: string }> {
    return this.changes.write(async () => {
      const now = await this.changes.clockMs();
      const row = await this.changes.db.selectFrom("join_tokens").selectAll().where("digest", "=", digest(token)).executeTakeFirst();
      if (!row) throw unauthenticated("unknown join token: check that it was copied whole, or issue a new one with `clusterplane create join-token --cluster NAME`");
      const reissue = `issue a new one with \`clusterplane create join-token --cluster ${row.cluster}\``;
      if (row.revoked_at !== null) throw unauthenticated(`this join token was revoked; ${reissue}`);
      if (row.used_at !== null) {
        throw unauthenticated(`this join token was already used (at ${new Date(Number(row.used_at)).toISOString()}); join tokens are single-use: ${reissue}`);
      }
      if (Number(row.expires_at) <= now) throw unauthenticated(`this join token expired at ${new Date(Number(row.expires_at)).toISOString()}; ${reissue}`);
      await this.changes.db.updateTable("join_tokens").set({ used_at: now }).where("digest", "=", row.digest).execute();
      const credential = await this.insertCredential(row.org, row.cluster, now);
      await this.changes.db
        .updateTable("clusters")
        .set({ agent_version: agentVersion, agent_joined_at: now, agent_heartbeat_at: now })
        .where("org", "=", row.org)
        .where("name", "=", row.cluster)
        .execute();
      await this.changes.record({ kind: "cluster", org: row.org, name: row.cluster });
      return { credential, org: row.org, cluster: row.cluster };
    });
  }

  /** A further credential for the cluster of `binding` (rotation); the old one keeps its expiry. */
  rotate(binding: AgentBinding): Promise<IssuedSecret> {
    return this.changes.write(async () => this.insertCredential(binding.org, binding.cluster, await this.changes.clockMs()));
  }

  /** The cluster a credential speaks for; UNAUTHENTICATED saying why not when it speaks for none. */
  async verify(token: string): Promise<AgentBinding> {
    const [id, secret] = token.startsWith(AGENT_CREDENTIAL_PREFIX) ? token.slice(AGENT_CREDENTIAL_PREFIX.length).split(".", 2) : [];
    const row = id && secret ? await this.changes.db.selectFrom("agent_credentials").selectAll().where("id", "=", id).executeTakeFirst() : undefined;
    if (!row || !sameDigest(row.digest, digest(secret!))) throw unauthenticated("unknown agent credential: join again with a new join token");
    if (row.revoked_at !== null) throw unauthenticated(`the agent credential of cluster "${row.cluster}" was revoked: join again with a new join token`);
    if (Number(row.expires_at) <= (await this.changes.clockMs())) {
      throw unauthenticated(`the agent credential of cluster "${row.cluster}" expired at ${new Date(Number(row.expires_at)).toISOString()}: join again with a new join token`);
    }
    return { org: row.org, cluster: row.cluster, credentialId: row.id, expiresAt: new Date(Number(row.expires_at)) };
  }

  /** Renews the agent's lease; returns false when the cluster is gone. */
  heartbeat(binding: AgentBinding, agentVersion: string): Promise<boolean> {
    return this.changes.write(async () => {
      const now = await this.changes.clockMs();
      const set = agentVersion ? { agent_heartbeat_at: now, agent_version: agentVersion } : { agent_heartbeat_at: now };
      const result = await this.changes.db
        .updateTable("clusters")
        .set(set)
        .where("org", "=", binding.org)
        .where("name", "=", binding.cluster)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    });
  }

  /** Revokes every unused join token and every credential of the cluster; its streams end everywhere. */
  revokeAll(org: string, cluster: string): Promise<{ joinTokens: number; credentials: number }> {
    return this.changes.write(async () => {
      await this.requirePullCluster(org, cluster);
      const now = await this.changes.clockMs();
      const tokens = await this.changes.db
        .updateTable("join_tokens")
        .set({ revoked_at: now })
        .where("org", "=", org)
        .where("cluster", "=", cluster)
        .where("used_at", "is", null)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      const credentials = await this.changes.db
        .updateTable("agent_credentials")
        .set({ revoked_at: now })
        .where("org", "=", org)
        .where("cluster", "=", cluster)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      // Streams follow the cluster's changes: this entry is what ends them on every replica.
      await this.changes.record({ kind: "cluster", org, name: cluster });
      return { joinTokens: Number(tokens.numUpdatedRows), credentials: Number(credentials.numUpdatedRows) };
    });
  }

  /** Pull-mode clusters whose agent joined but has not renewed its lease for `graceMs`. */
  async silentSince(graceMs: number): Promise<{ org: string; cluster: string; heartbeatAt: Date }[]> {
    const now = await this.changes.clockMs();
    const rows = await this.changes.db
      .selectFrom("clusters")
      .select(["org", "name", "agent_heartbeat_at"])
      .where("mode", "=", "pull")
      .where("enabled", "=", 1)
      .where("agent_heartbeat_at", "<", now - graceMs)
      .execute();
    return rows.map((row) => ({ org: row.org, cluster: row.name, heartbeatAt: new Date(Number(row.agent_heartbeat_at)) }));
  }

  private async insertCredential(org: string, cluster: string, now: number): Promise<IssuedSecret> {
    const id = randomBytes(9).toString("base64url");
    const secret = randomBytes(32).toString("base64url");
    const expiresAt = now + this.timings.credentialTtlMs;
    await this.changes.db
      .insertInto("agent_credentials")
      .values({ id, digest: digest(secret), org, cluster, created_at: now, expires_at: expiresAt, revoked_at: null })
      .execute();
    return { token: `${AGENT_CREDENTIAL_PREFIX}${id}.${secret}`, expiresAt: new Date(expiresAt) };
  }

  private async requirePullCluster(org: string, cluster: string): Promise<void> {
    const row = await this.changes.db.selectFrom("clusters").select("mode").where("org", "=", org).where("name", "=", cluster).executeTakeFirst();
    if (!row) throw notFound(`cluster "${cluster}" not found`);
    if (row.mode !== "pull") {
      throw failedPrecondition(`cluster "${cluster}" is in push mode (the control plane connects to its API server): join tokens are for pull-mode clusters, registered without endpoint and auth`);
    }
  }
}

function digest(secret: string): string {
  return createHash("sha256").update(secret).digest("base64url");
}

function sameDigest(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
