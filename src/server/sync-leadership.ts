import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { LeaderElector, LeaseStore, type LeaseHolder, type LeaseTimings } from "../store/leader-lease.js";
import type { Stores } from "../store/stores.js";
import { SyncLoop, type ClusterReport } from "../sync/sync-loop.js";
import { AgentLeaseMonitor } from "../sync/agent-leases.js";
import { DEFAULT_AGENT_LEASE_GRACE_MS } from "../services/agent-service.js";
import type { SyncSettings } from "../sync/sync-settings.js";
import type { Logger } from "./logging.js";

/** The lease that says which process runs the cluster-sync loop of a database. */
export const SYNC_LEASE = "cluster-sync";

/** A process identity that is unique even for two processes started on one host in one instant. */
export function processIdentity(): string {
  return `${hostname()}/${process.pid}/${randomBytes(3).toString("hex")}`;
}

/**
 * Runs the sync loop only while this process holds the database's sync lease: a second server on
 * the same database serves the API and routing, and takes over the loop when the leader's lease
 * expires (it died) or is released (it shut down).
 */
export class SyncLeadership {
  private readonly elector: LeaderElector;
  private loop: SyncLoop | null = null;
  private readonly passListeners = new Set<(report: ClusterReport) => void>();
  private lastSeenHolder = "";
  private shuttingDown = false;
  private agentLeases: AgentLeaseMonitor | null = null;

  constructor(
    private readonly stores: Stores,
    private readonly settings: SyncSettings,
    timings: LeaseTimings,
    private readonly logger: Logger,
    identity = processIdentity(),
    private readonly agentLeaseGraceMs = DEFAULT_AGENT_LEASE_GRACE_MS,
  ) {
    this.elector = new LeaderElector(new LeaseStore(stores.changes), SYNC_LEASE, identity, timings, {
      onStartedLeading: () => this.startLoop(),
      onStoppedLeading: () => this.stopLoop(),
      onLeaderSeen: (holder) => this.noteLeader(holder),
      onError: (error) => this.logger.warn({ err: error }, "sync leadership: cannot read or renew the lease; retrying"),
    });
  }

  get identity(): string {
    return this.elector.identity;
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  /** The process holding the lease at the last look, or "" when nobody holds it. */
  get leader(): string {
    return this.elector.currentLeader?.holder ?? "";
  }

  /** The running sync loop, while this process leads. */
  get sync(): SyncLoop | null {
    return this.loop;
  }

  /** Runs for leadership; resolves after the first try, so the caller knows whether it leads. */
  start(): Promise<void> {
    return this.elector.start();
  }

  /** Stops the loop and gives the lease up so another process can lead at once. */
  stop(): Promise<void> {
    this.shuttingDown = true;
    return this.elector.stop();
  }

  /** Calls `listener` after every pass this process runs, across leadership changes. */
  onPass(listener: (report: ClusterReport) => void): () => void {
    this.passListeners.add(listener);
    return () => this.passListeners.delete(listener);
  }

  private startLoop(): void {
    this.logger.info({ holder: this.identity }, "sync leadership: this process leads the cluster-sync loop");
    this.agentLeases = new AgentLeaseMonitor(this.stores, this.agentLeaseGraceMs, this.logger);
    this.agentLeases.start();
    const loop = new SyncLoop(this.stores, this.settings, this.logger);
    loop.onPass((report) => {
      for (const listener of this.passListeners) listener(report);
    });
    this.loop = loop;
    loop.start();
  }

  private async stopLoop(): Promise<void> {
    const loop = this.loop;
    this.loop = null;
    if (this.shuttingDown) {
      this.logger.info({ holder: this.identity }, "sync leadership: shutting down; stopping the cluster-sync loop and releasing the lease");
    } else {
      this.logger.warn({ holder: this.identity }, "sync leadership: this process lost the lease (it could not renew it in time); stopping the cluster-sync loop");
    }
    await Promise.all([loop?.stop(), this.agentLeases?.stop()]);
    this.agentLeases = null;
  }

  private noteLeader(holder: LeaseHolder | undefined): void {
    const name = holder?.holder ?? "";
    if (name === this.lastSeenHolder) return;
    this.lastSeenHolder = name;
    if (name !== this.identity) {
      this.logger.info({ leader: name || null, holder: this.identity }, "sync leadership: another process leads the cluster-sync loop");
    }
  }
}
