import { watch, type FSWatcher } from "node:fs";
import { modeOf, type Cluster } from "../core/cluster.js";
import { passSummary, type PassOutcome } from "../core/pass-outcome.js";
import type { Change } from "../store/changes.js";
import type { AppliedObject } from "../store/sync-repository.js";
import type { Stores } from "../store/stores.js";
import { Controller, type ReconcileVerdict } from "./controller.js";
import { DesiredStateCache } from "./desired-cache.js";
import type { TargetNames } from "./failures.js";
import { KubeConnection, readCredentials, type Credentials } from "./kube-connection.js";
import { passNotStarted, reconcilePass, type PassResult } from "./reconcile.js";
import { loadProvisioning, type SyncSettings } from "./sync-settings.js";

/** The structured log lines the loop writes. */
export interface SyncLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** What one pass over one cluster did, for metrics, logs and `sync --once`. */
export interface ClusterReport {
  org: string;
  cluster: string;
  applied: number;
  unchanged: number;
  /** Objects that failed on their own, plus templates that could not be rendered. */
  failed: number;
  /** The first problem, in words; "" when there was none. */
  error: string;
  /** A problem with the whole cluster stopped the pass. */
  aborted: boolean;
  /** Everything was applied: the cluster was reached and no object or template failed. */
  ok: boolean;
  durationMs: number;
  /** `performance.now()` when the pass ended. */
  finishedAtMs: number;
  outcome: PassOutcome;
}

export interface SyncLoopOptions {
  /** How long stop() waits for aborted passes to end. */
  stopGraceMs?: number;
}

const TEMPLATE_SETTLE_MS = 100;
const DEFAULT_STOP_GRACE_MS = 2_000;

/** What the loop keeps per cluster between passes. */
interface ClusterEntry {
  /** The registration the last pass started with (see targetOf). */
  target: string;
  connection?: KubeConnection;
  lastFullAt: number;
}

/**
 * The cluster-sync loop in push mode: a Controller (rate-limited queue, bounded workers) keyed by
 * cluster, whose reconcile reads the cluster's credentials, runs one reconcile pass against its
 * API and records the outcome. The store's change log says when to act: a project registered or
 * activated, a cluster registered, enabled or re-pointed (its pass in flight is aborted), a
 * cluster deleted or disabled (aborted and forgotten).
 */
export class SyncLoop {
  private readonly entries = new Map<string, ClusterEntry>();
  /**
   * Clusters owed a full pass (asked for, not yet completed). Kept apart from the entries so the
   * request survives passes that abort or fail, and the cluster being disabled for a while.
   */
  private readonly fullOwed = new Set<string>();
  private readonly desired: DesiredStateCache;
  private readonly controller: Controller;
  private readonly passListeners = new Set<(report: ClusterReport, sequence: number) => void>();
  private unsubscribe: (() => void) | null = null;
  private templateWatcher: FSWatcher | null = null;
  private templateSettle: NodeJS.Timeout | undefined;
  private specLoadedAt = Number.NEGATIVE_INFINITY;
  private passesStarted = 0;
  private started = false;
  /** Once stop() returned nothing may touch the store (the caller closes it next). */
  private stopped = false;

  constructor(
    private readonly stores: Stores,
    private readonly settings: SyncSettings,
    private readonly logger: SyncLogger,
    options: SyncLoopOptions = {},
  ) {
    this.desired = new DesiredStateCache(stores.projects, stores.domains);
    this.controller = new Controller((key, signal) => this.reconcile(key, signal), {
      workers: settings.concurrency,
      backoff: { initialMs: settings.initialBackoffMs, maxMs: settings.maxBackoffMs },
      stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
      onError: (key, error) => this.logger.warn({ cluster: key, error: (error as Error)?.message }, "sync: reconcile failed unexpectedly; retrying with backoff"),
    });
  }

  /** Syncs every enabled cluster now, again every interval, and at once on relevant changes. */
  start(): void {
    if (this.stopped) return;
    this.unsubscribe = this.stores.changes.subscribe((change) => this.onChange(change));
    this.watchTemplates();
    this.startWorkers();
    this.reloadSpec();
    this.enqueueAllOrWarn();
  }

  /** Aborts every pass, disarms every timer and closes every connection, within the stop grace. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.unsubscribe?.();
    this.templateWatcher?.close();
    clearTimeout(this.templateSettle);
    await this.controller.stop();
    this.stopped = true;
    for (const entry of this.entries.values()) entry.connection?.close();
    this.entries.clear();
  }

  /**
   * One pass over every enabled cluster, now, ignoring backoff; resolves with what the last pass
   * of each cluster did (a cluster that failed fast may have been retried while others ran).
   */
  async runOnce(full = false): Promise<ClusterReport[]> {
    if (this.stopped) return [];
    this.startWorkers();
    this.reloadSpec();
    // Without start() no change reaches the loop: take the projects as they are now.
    if (!this.unsubscribe) this.desired.invalidate();
    const latest = new Map<string, ClusterReport>();
    // Only passes started from here on: one already running may predate what the caller changed.
    const after = this.passesStarted;
    const unsubscribe = this.onPassInternal((report, sequence) => {
      if (sequence > after) latest.set(keyOf({ org: report.org, name: report.cluster }), report);
    });
    const targets = await this.targets();
    for (const cluster of targets) {
      if (full) this.fullOwed.add(keyOf(cluster));
      this.controller.enqueue(keyOf(cluster));
    }
    await this.idle();
    unsubscribe();
    return targets.map((cluster) => latest.get(keyOf(cluster))).filter((report) => report !== undefined);
  }

  /** Calls `listener` after every cluster pass (metrics); returns the function that unsubscribes it. */
  onPass(listener: (report: ClusterReport) => void): () => void {
    return this.onPassInternal((report) => listener(report));
  }

  /** Resolves when no cluster is being synced or waiting to be (backoff and interval waits aside). */
  idle(): Promise<void> {
    return this.controller.idle();
  }

  private onPassInternal(listener: (report: ClusterReport, sequence: number) => void): () => void {
    this.passListeners.add(listener);
    return () => this.passListeners.delete(listener);
  }

  private startWorkers(): void {
    if (this.started) return;
    this.started = true;
    this.controller.start();
  }

  // ---- what to reconcile, and when ----

  private async onChange(change: Change): Promise<void> {
    if (change.kind === "project") {
      this.desired.invalidate();
      for (const cluster of await this.targets()) if (cluster.org === change.org) this.controller.enqueue(keyOf(cluster));
    } else if (change.kind === "cluster") {
      await this.onClusterChange(change.org, change.name);
    }
    // "cluster-sync" is this loop's own verdict coming back through the log.
  }

  private async onClusterChange(org: string, name: string): Promise<void> {
    const key = keyOf({ org, name });
    const cluster = await this.stores.clusters.find(org, name);
    if (this.stopped) return;
    if (!cluster?.enabled || modeOf(cluster) === "pull") {
      this.forget(key, cluster ? (cluster.enabled ? "the cluster is in pull mode" : "the cluster was disabled") : "the cluster was deleted");
      if (!cluster) this.fullOwed.delete(key);
      return;
    }
    const entry = this.entries.get(key);
    // Drained, activated or saved unchanged: nothing the cluster is given depends on that.
    if (entry?.target === targetOf(cluster)) return;
    // Re-pointed or re-registered: what the running pass does is for a cluster that is no more.
    if (entry) this.controller.cancel(key, "the cluster's endpoint or credentials changed");
    this.controller.enqueue(key);
  }

  private forget(key: string, reason: string): void {
    this.controller.drop(key, reason);
    this.entries.get(key)?.connection?.close();
    this.entries.delete(key);
  }

  /** Templates changed on disk are applied at once, not at the next interval. */
  private watchTemplates(): void {
    if (!this.settings.templatePath) return;
    try {
      this.templateWatcher = watch(this.settings.templatePath, () => {
        // Editors write a file in several steps; act once they are done.
        clearTimeout(this.templateSettle);
        this.templateSettle = setTimeout(() => {
          if (this.reloadSpec()) this.enqueueAllOrWarn();
        }, TEMPLATE_SETTLE_MS);
      });
      this.templateWatcher.on("error", () => undefined);
    } catch (error) {
      this.logger.warn({ error: (error as Error).message }, "sync: cannot watch the templates directory; changes apply at the next interval");
    }
  }

  /** Re-reads the templates directory; returns whether the provisioning spec changed. */
  private reloadSpec(): boolean {
    if (this.stopped) return false;
    this.specLoadedAt = Date.now();
    try {
      if (!this.desired.useSpec(loadProvisioning(this.settings))) return false;
    } catch (error) {
      this.logger.warn({ error: (error as Error).message }, "sync: cannot read the templates directory; keeping the previous templates");
      return false;
    }
    this.logger.info({}, "sync: provisioning templates loaded");
    return true;
  }

  /** Every enabled cluster but `except` (whose pass is already under way with the news). */
  private async enqueueAll(except = ""): Promise<void> {
    for (const cluster of await this.targets()) if (keyOf(cluster) !== except) this.controller.enqueue(keyOf(cluster));
  }

  /** enqueueAll from a timer or a watcher, which have no caller to tell: the next interval tries again. */
  private enqueueAllOrWarn(except = ""): void {
    this.enqueueAll(except).catch((error: unknown) =>
      this.logger.warn({ error: (error as Error).message }, "sync: cannot read the clusters; trying again at the next interval"),
    );
  }

  /** Registered, enabled push-mode clusters; drained ones keep being synced. Pull-mode agents sync themselves. */
  private async targets(): Promise<Cluster[]> {
    return (await this.stores.clusters.all()).filter((cluster) => cluster.enabled && modeOf(cluster) === "push");
  }

  private entryFor(cluster: Cluster): ClusterEntry {
    const key = keyOf(cluster);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { target: targetOf(cluster), lastFullAt: Date.now() };
      this.entries.set(key, entry);
    }
    return entry;
  }

  // ---- one pass ----

  private async reconcile(key: string, signal: AbortSignal): Promise<ReconcileVerdict> {
    const [org, name] = splitKey(key);
    const cluster = await this.stores.clusters.find(org, name);
    if (!cluster?.enabled || modeOf(cluster) === "pull" || signal.aborted) return { requeueAfterMs: null };
    // The interval doubles as the templates' fallback check when the watcher misses a change.
    if (Date.now() - this.specLoadedAt >= this.settings.intervalMs && this.reloadSpec()) await this.enqueueAll(key);
    const entry = this.entryFor(cluster);
    if (entry.target !== targetOf(cluster)) {
      entry.connection?.close();
      entry.connection = undefined;
      entry.target = targetOf(cluster);
    }
    const full = this.fullOwed.has(key) || Date.now() - entry.lastFullAt >= this.settings.fullResyncIntervalMs;
    const sequence = ++this.passesStarted;
    const result = await this.runPass(cluster, entry, full, signal);
    if (result.aborted || this.stopped) return { requeueAfterMs: null };
    if (!result.outcome.failure && full) {
      this.fullOwed.delete(key);
      entry.lastFullAt = Date.now();
    }
    await this.record(cluster, result, sequence);
    return result.outcome.failure ? { failed: true, retryAfterMs: result.retryAfterMs } : { requeueAfterMs: this.settings.intervalMs };
  }

  private async runPass(cluster: Cluster, entry: ClusterEntry, full: boolean, signal: AbortSignal): Promise<PassResult> {
    const startedAt = new Date();
    const desired = await this.desired.forOrg(cluster.org);
    const appliedHashes = await this.stores.sync.appliedHashes(cluster.org, cluster.name);
    let connection: KubeConnection;
    try {
      connection = this.connectionFor(entry, cluster);
    } catch (error) {
      const message = `${(error as Error).message}; nothing was sent to the cluster: fix the file (or the Secret mounted there)`;
      return passNotStarted({ desired, appliedHashes, full }, { kind: "credentials", message }, startedAt);
    }
    return reconcilePass(
      {
        desired,
        appliedHashes,
        full,
        applier: connection,
        requestsInFlight: this.settings.requestsPerCluster,
        requestTimeoutMs: this.settings.requestTimeoutMs,
        names: namesOf(cluster),
        recordApplied: (objects) => this.recordApplied(cluster, objects),
      },
      signal,
    );
  }

  /** A connection for the cluster's current credentials; rebuilt when the files or endpoint change. */
  private connectionFor(entry: ClusterEntry, cluster: Cluster): KubeConnection {
    const credentials = readCredentials(cluster.endpoint, cluster.auth, this.settings.credentialDirectories);
    if (!entry.connection || !sameCredentials(entry.connection.credentials, credentials)) {
      entry.connection?.close();
      entry.connection = new KubeConnection(credentials, {
        requestTimeoutMs: this.settings.requestTimeoutMs,
        maxSockets: this.settings.requestsPerCluster,
      });
    }
    return entry.connection;
  }

  // ---- what a pass leaves behind ----

  /**
   * Mid-pass the cluster may have been deleted, re-registered or re-pointed (by this process or
   * another): what this pass did then says nothing about the cluster now. The check and the write
   * are one unit of work, so no other writer slips in between.
   */
  private async recordApplied(cluster: Cluster, objects: AppliedObject[]): Promise<void> {
    if (this.stopped) return;
    await this.stores.changes.write(async () => {
      if (await this.isSameCluster(cluster)) await this.stores.sync.recordApplied(cluster.org, cluster.name, objects);
    });
  }

  private async record(cluster: Cluster, result: PassResult, sequence: number): Promise<void> {
    const { outcome } = result;
    await this.stores.changes.write(async () => {
      if (await this.isSameCluster(cluster)) await this.stores.sync.recordOutcome(cluster.org, cluster.name, outcome);
    });
    const report = reportOf(cluster, result);
    this.log(report);
    for (const listener of this.passListeners) listener(report, sequence);
  }

  private log(report: ClusterReport): void {
    const fields = { org: report.org, cluster: report.cluster, applied: report.applied, unchanged: report.unchanged, failed: report.failed, durationMs: report.durationMs };
    const failure = report.outcome.failure;
    if (report.ok) this.logger.info(fields, "sync: cluster pass done");
    else if (!failure) this.logger.warn({ ...fields, error: report.error }, "sync: cluster pass done, some objects failed");
    else this.logger.warn({ ...fields, failureKind: failure.kind, error: failure.message }, "sync: cluster pass failed; retrying with backoff");
  }

  private async isSameCluster(cluster: Cluster): Promise<boolean> {
    const now = await this.stores.clusters.find(cluster.org, cluster.name);
    return now !== undefined && now.enabled && targetOf(now) === targetOf(cluster);
  }
}

function reportOf(cluster: Cluster, result: PassResult): ClusterReport {
  const { outcome } = result;
  const { failed, ok, error } = passSummary(outcome);
  return {
    org: cluster.org,
    cluster: cluster.name,
    applied: outcome.applied,
    unchanged: outcome.unchanged,
    failed,
    error,
    aborted: outcome.failure !== null,
    ok,
    durationMs: outcome.finishedAt.getTime() - outcome.startedAt.getTime(),
    finishedAtMs: performance.now(),
    outcome,
  };
}

function keyOf(cluster: { org: string; name: string }): string {
  return `${cluster.org}\0${cluster.name}`;
}

function splitKey(key: string): [string, string] {
  const at = key.indexOf("\0");
  return [key.slice(0, at), key.slice(at + 1)];
}

/** The registration a pass works for: another one (re-created, re-pointed) is another cluster. */
function targetOf(cluster: Cluster): string {
  return JSON.stringify([cluster.createTime.getTime(), cluster.endpoint, cluster.auth]);
}

/** How messages name the cluster's endpoint and credentials. */
function namesOf(cluster: Cluster): TargetNames {
  if (cluster.auth.kind === "bearer_token_file") {
    return { endpoint: cluster.endpoint, token: `the token file ${cluster.auth.tokenPath}`, ca: `the CA file ${cluster.auth.caCertPath}` };
  }
  return { endpoint: cluster.endpoint || "the in-cluster API server", token: "the pod's service account token", ca: "the pod's service account CA" };
}

function sameCredentials(a: Credentials, b: Credentials): boolean {
  return a.endpoint === b.endpoint && a.token === b.token && a.caPem === b.caPem;
}
