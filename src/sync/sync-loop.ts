import { watch, type FSWatcher } from "node:fs";
import { sameTarget, type Cluster } from "../core/cluster.js";
import type { Change } from "../store/changes.js";
import type { Stores } from "../store/stores.js";
import { runClusterPass, type ClusterPassResult } from "./cluster-pass.js";
import { DesiredStateCache } from "./desired-cache.js";
import { describeFailure, KubeConnection, readCredentials, type Credentials } from "./kube-connection.js";
import { loadProvisioning, type SyncSettings } from "./sync-settings.js";

/** The structured log lines the loop writes. */
export interface SyncLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ClusterReport extends ClusterPassResult {
  org: string;
  cluster: string;
  /** Everything was applied: no object failed and the cluster was reached. */
  ok: boolean;
  durationMs: number;
  /** `performance.now()` when the pass ended. */
  finishedAtMs: number;
}

const TEMPLATE_SETTLE_MS = 100;

interface ClusterState {
  org: string;
  name: string;
  running: boolean;
  due: boolean;
  /** Apply everything, ignoring stored hashes. */
  full: boolean;
  notBefore: number;
  retry?: NodeJS.Timeout;
  connection?: KubeConnection;
}

/**
 * The cluster-sync loop. Every cluster is scheduled on its own: a tick marks clusters due, at most
 * `concurrency` run at once, and a cluster still busy (or backing off after a failure) never holds
 * up the others. Changes in the store (a project registered or activated, a cluster registered,
 * enabled or re-pointed) make the affected clusters due at once.
 */
export class SyncLoop {
  private readonly clusters = new Map<string, ClusterState>();
  private readonly desired: DesiredStateCache;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private unsubscribe: (() => void) | null = null;
  private templateWatcher: FSWatcher | null = null;
  private running = 0;
  private stopped = false;
  private readonly passListeners = new Set<(report: ClusterReport) => void>();

  constructor(
    private readonly stores: Stores,
    private readonly settings: SyncSettings,
    private readonly logger: SyncLogger,
  ) {
    this.desired = new DesiredStateCache(stores.projects, stores.domains);
  }

  /** Starts syncing: now, on every interval, a full re-apply on the slower period, and on relevant changes. */
  start(): void {
    this.unsubscribe = this.stores.changes.subscribe((change) => this.onChange(change));
    this.timers.push(setInterval(() => this.tick(false), this.settings.intervalMs));
    this.timers.push(setInterval(() => this.tick(true), this.settings.fullResyncIntervalMs));
    this.watchTemplates();
    this.tick(false);
  }

  /** Templates changed on disk are applied at once, not at the next interval. */
  private watchTemplates(): void {
    if (!this.settings.templatePath) return;
    let debounce: NodeJS.Timeout | undefined;
    try {
      this.templateWatcher = watch(this.settings.templatePath, () => {
        // Editors write a file in several steps; act once they are done.
        clearTimeout(debounce);
        debounce = setTimeout(() => {
          if (!this.stopped && this.reloadSpec()) this.tick(false, true);
        }, TEMPLATE_SETTLE_MS);
      });
      this.templateWatcher.on("error", () => undefined);
    } catch (error) {
      this.logger.warn({ error: (error as Error).message }, "sync: cannot watch the templates directory; changes apply at the next interval");
    }
  }

  /** Stops scheduling, waits for passes in flight, and closes connections. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.templateWatcher?.close();
    for (const timer of this.timers) clearInterval(timer);
    for (const state of this.clusters.values()) clearTimeout(state.retry);
    await this.idle();
    for (const state of this.clusters.values()) state.connection?.close();
  }

  /** One pass over every enabled cluster, ignoring backoff; resolves with what each pass did. */
  async runOnce(full = false): Promise<ClusterReport[]> {
    const reports: ClusterReport[] = [];
    const unsubscribe = this.onPass((report) => reports.push(report));
    this.tick(full, true);
    await this.idle();
    unsubscribe();
    return reports;
  }

  /** Calls `listener` after every cluster pass (metrics); returns the function that unsubscribes it. */
  onPass(listener: (report: ClusterReport) => void): () => void {
    this.passListeners.add(listener);
    return () => this.passListeners.delete(listener);
  }

  /** Resolves when no cluster is running or due. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private tick(full: boolean, now = false): void {
    if (this.stopped) return;
    this.reloadSpec();
    for (const cluster of this.targets()) this.markDue(cluster, full, now);
    this.schedule();
  }

  /** Re-reads the templates directory; a changed spec invalidates the desired state. Returns whether it changed. */
  private reloadSpec(): boolean {
    try {
      const changed = this.desired.useSpec(loadProvisioning(this.settings));
      if (changed) this.logger.info({}, "sync: provisioning templates loaded");
      return changed;
    } catch (error) {
      this.logger.warn({ error: (error as Error).message }, "sync: cannot read the templates directory; keeping the previous templates");
      return false;
    }
  }

  private onChange(change: Change): void {
    if (change.kind === "project") {
      this.desired.invalidate();
      this.tickOrg(change.org);
    } else if (change.kind === "cluster") {
      const cluster = this.stores.clusters.find(change.org, change.name);
      if (cluster?.enabled) {
        this.markDue(cluster, false, true);
        this.schedule();
      } else if (!cluster) {
        this.forget(change.org, change.name);
      }
    }
  }

  private forget(org: string, name: string): void {
    const key = `${org}\0${name}`;
    const state = this.clusters.get(key);
    if (!state || state.running) return;
    clearTimeout(state.retry);
    state.connection?.close();
    this.clusters.delete(key);
  }

  private tickOrg(org: string): void {
    for (const cluster of this.targets()) if (cluster.org === org) this.markDue(cluster, false, true);
    this.schedule();
  }

  /** Registered, enabled clusters; drained ones keep being synced. */
  private targets(): Cluster[] {
    return this.stores.clusters.all().filter((cluster) => cluster.enabled);
  }

  private markDue(cluster: Cluster, full: boolean, now: boolean): void {
    const state = this.stateOf(cluster);
    state.due = true;
    state.full ||= full;
    if (now) {
      state.notBefore = 0;
      clearTimeout(state.retry);
    }
  }

  private stateOf(cluster: { org: string; name: string }): ClusterState {
    const key = `${cluster.org}\0${cluster.name}`;
    let state = this.clusters.get(key);
    if (!state) {
      state = { org: cluster.org, name: cluster.name, running: false, due: false, full: false, notBefore: 0 };
      this.clusters.set(key, state);
    }
    return state;
  }

  private schedule(): void {
    const now = Date.now();
    for (const state of this.clusters.values()) {
      if (this.running >= this.settings.concurrency) break;
      if (state.running || !state.due || state.notBefore > now) continue;
      state.due = false;
      state.running = true;
      this.running++;
      const full = state.full;
      state.full = false;
      void this.syncCluster(state, full).finally(() => {
        state.running = false;
        this.running--;
        this.schedule();
        this.notifyIdle();
      });
    }
    this.notifyIdle();
  }

  private async syncCluster(state: ClusterState, full: boolean): Promise<void> {
    const cluster = this.stores.clusters.find(state.org, state.name);
    if (!cluster?.enabled) return;
    const started = new Date();
    let result: ClusterPassResult;
    try {
      const connection = this.connectionFor(state, cluster);
      const desired = this.desired.forOrg(cluster.org);
      result = await runClusterPass(connection, desired.objects, {
        requestsInFlight: this.settings.requestsPerCluster,
        appliedHashes: full ? null : this.stores.sync.appliedHashes(cluster.org, cluster.name),
        describeFailure: (error) => describeFailure(error, this.settings.requestTimeoutMs),
        recordApplied: (objects) => this.recordApplied(cluster, objects),
      });
      if (desired.errors.length) {
        result.failed += desired.errors.length;
        result.error ||= `template: ${desired.errors[0]}`;
      }
    } catch (error) {
      result = { applied: 0, unchanged: 0, failed: 0, error: `cannot connect: ${(error as Error).message}`, aborted: true };
    }
    this.finishPass(state, cluster, started, result);
  }

  private recordApplied(cluster: Cluster, objects: { key: string; hash: string }[]): void {
    // Mid-pass the cluster may have been deleted, re-registered or re-pointed: what this pass
    // applied then says nothing about the cluster now, whose hashes were forgotten on purpose.
    if (this.isSameCluster(cluster)) this.stores.sync.recordApplied(cluster.org, cluster.name, objects);
  }

  private isSameCluster(cluster: Cluster): boolean {
    const now = this.stores.clusters.find(cluster.org, cluster.name);
    return now !== undefined && now.createTime.getTime() === cluster.createTime.getTime() && sameTarget(now, cluster);
  }

  /** A connection for the cluster's current credentials; rebuilt when the files or endpoint change. */
  private connectionFor(state: ClusterState, cluster: Cluster): KubeConnection {
    const credentials = readCredentials(cluster.endpoint, cluster.auth, this.settings.credentialDirectories);
    if (!state.connection || !sameCredentials(state.connection.credentials, credentials)) {
      state.connection?.close();
      state.connection = new KubeConnection(credentials, {
        requestTimeoutMs: this.settings.requestTimeoutMs,
        maxSockets: this.settings.requestsPerCluster,
      });
    }
    return state.connection;
  }

  /**
   * Records the outcome. Only a pass that could not reach the cluster counts as a failure (it backs
   * off, and routing avoids the cluster); objects the cluster refused are reported, and retried on
   * the next interval, but do not take the cluster out of routing for every project.
   */
  private finishPass(state: ClusterState, cluster: Cluster, started: Date, result: ClusterPassResult): void {
    const ok = result.failed === 0 && !result.aborted;
    const previous = this.stores.sync.status(cluster.org, cluster.name);
    const failures = result.aborted ? (previous?.consecutiveFailures ?? 0) + 1 : 0;
    if (this.isSameCluster(cluster)) {
      this.stores.sync.recordPass(cluster.org, cluster.name, {
        lastAttemptTime: started,
        lastSuccessTime: ok ? new Date() : (previous?.lastSuccessTime ?? null),
        objectsApplied: result.applied,
        objectsUnchanged: result.unchanged,
        objectsFailed: result.failed,
        consecutiveFailures: failures,
        lastError: result.error,
      });
    }
    const durationMs = Date.now() - started.getTime();
    const fields = { org: cluster.org, cluster: cluster.name, applied: result.applied, unchanged: result.unchanged, failed: result.failed, durationMs };
    if (ok) {
      this.logger.info(fields, "sync: cluster pass done");
    } else if (!result.aborted) {
      this.logger.warn({ ...fields, error: result.error }, "sync: cluster pass done, some objects failed");
    } else {
      const delay = this.backoff(failures);
      state.notBefore = Date.now() + delay;
      state.retry = setTimeout(() => this.retry(state), delay);
      this.logger.warn({ ...fields, error: result.error, retryInMs: delay }, "sync: cluster pass failed");
    }
    const report: ClusterReport = { org: cluster.org, cluster: cluster.name, ok, durationMs, finishedAtMs: performance.now(), ...result };
    for (const listener of this.passListeners) listener(report);
  }

  private retry(state: ClusterState): void {
    if (this.stopped) return;
    state.due = true;
    // The backoff timer may fire a millisecond before Date.now() reaches notBefore; this is the
    // retry it was armed for, so it must not be skipped as early (it would wait for the interval).
    state.notBefore = 0;
    this.schedule();
  }

  /** Exponential backoff with jitter: half the delay fixed, half random, so clusters do not retry in step. */
  private backoff(failures: number): number {
    const ceiling = Math.min(this.settings.maxBackoffMs, this.settings.initialBackoffMs * 2 ** Math.min(failures - 1, 30));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  private isIdle(): boolean {
    if (this.running > 0) return false;
    const now = Date.now();
    for (const state of this.clusters.values()) if (state.due && state.notBefore <= now) return false;
    return true;
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

function sameCredentials(a: Credentials, b: Credentials): boolean {
  return a.endpoint === b.endpoint && a.token === b.token && a.caPem === b.caPem;
}
