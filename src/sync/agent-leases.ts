import type { Stores } from "../store/stores.js";
import type { SyncLogger } from "./sync-loop.js";

/**
 * Takes pull-mode clusters whose agent stopped renewing its lease out of routing: it runs beside
 * the push loop in the one process that leads sync, so a silence is recorded once, through the
 * change log, and every replica's routing follows. The agent's next renewal puts the cluster
 * back (AgentService.RenewLease).
 */
export class AgentLeaseMonitor {
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;

  constructor(
    private readonly stores: Stores,
    private readonly graceMs: number,
    private readonly logger: SyncLogger,
  ) {}

  start(): void {
    // Checked often enough that a silence is noticed within a quarter of the grace of its end.
    const everyMs = Math.max(250, Math.min(5_000, Math.floor(this.graceMs / 4)));
    this.timer = setInterval(() => void (this.checking ??= this.check().finally(() => (this.checking = null))), everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.checking;
  }

  private async check(): Promise<void> {
    try {
      for (const silent of await this.stores.agents.silentSince(this.graceMs)) {
        if (await this.stores.sync.recordAgentSilent(silent.org, silent.cluster, silent.heartbeatAt)) {
          this.logger.warn(
            { org: silent.org, cluster: silent.cluster, lastHeartbeat: silent.heartbeatAt.toISOString() },
            "agent: the cluster's agent is silent (no lease renewal within the grace); the cluster leaves routing until it renews",
          );
        }
      }
    } catch (error) {
      this.logger.warn({ error: (error as Error).message }, "agent: cannot check agent leases now; trying again shortly");
    }
  }
}
