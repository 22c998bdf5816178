import { setMaxListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ChangeOperation,
  ResourceKind,
  WatchService,
  type ResourceChange,
  type WatchRequest,
  type WatchResponse,
  WatchResponseSchema,
  ClusterSyncStatusOfClusterSchema,
  DefaultClusterLabelSchema,
  ResourceChangeSchema,
  ProgressSchema,
  SnapshotCompleteSchema,
} from "../../gen/clusterplane/v1/watch_pb.js";
import { ClusterPoolSchema } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { ClusterSchema } from "../../gen/clusterplane/v1/cluster_pb.js";
import { QueueSchema } from "../../gen/clusterplane/v1/queue_pb.js";
import { ProjectSchema } from "../../gen/clusterplane/v1/project_pb.js";
import { ClusterLabelSchema } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import type { ClusterPool } from "../core/cluster-pool.js";
import type { Cluster, SyncStatus } from "../core/cluster.js";
import type { ClusterLabel } from "../core/cluster-label.js";
import { DomainError, Violations } from "../core/errors.js";
import type { Assignment } from "../core/execution-cluster-label.js";
import type { PageRequest } from "../core/paging.js";
import type { Project } from "../core/project.js";
import type { Queue } from "../core/queue.js";
import { nameOf, type Change, type ChangeKind, type LogEntry } from "../store/changes.js";
import type { Page } from "../store/rows.js";
import type { Stores } from "../store/stores.js";
import { toClusterMessage, toSyncStatusMessage } from "./cluster-service.js";
import { toPoolMessage } from "./cluster-pool-service.js";
import { checkOrgField, toTimestamp } from "./common.js";
import { throwIfDeadlinePassed, toConnectError } from "./errors.js";
import { toAssignmentMessage, toLabelMessage } from "./execution-cluster-label-service.js";
import { toProjectMessage } from "./project-service.js";
import { toQueueMessage } from "./queue-service.js";

export interface WatchOptions {
  /** A progress marker is sent after this long without any event. */
  progressIntervalMs: number;
  /** Changes queued for one stream before it counts as too slow and is ended. */
  maxQueuedChanges: number;
  /** Open Watch streams per caller. */
  maxStreamsPerCaller: number;
  /** Who is calling, for the per-caller limit (the transport knows; "anonymous" when auth is off). */
  callerOf(context: HandlerContext): string;
}

export const DEFAULT_WATCH_OPTIONS: Omit<WatchOptions, "callerOf"> = {
  progressIntervalMs: 5_000,
  maxQueuedChanges: 10_000,
  maxStreamsPerCaller: 32,
};

const KINDS: Record<Exclude<ResourceKind, ResourceKind.UNSPECIFIED>, ChangeKind> = {
  [ResourceKind.CLUSTER_POOL]: "pool",
  [ResourceKind.CLUSTER]: "cluster",
  [ResourceKind.QUEUE]: "queue",
  [ResourceKind.PROJECT]: "project",
  [ResourceKind.CLUSTER_LABEL]: "label",
  [ResourceKind.EXECUTION_CLUSTER_LABEL]: "assignment",
  [ResourceKind.DEFAULT_CLUSTER_LABEL]: "default-label",
  [ResourceKind.CLUSTER_SYNC_STATUS]: "cluster-sync",
};
const RESOURCE_KINDS = Object.fromEntries(Object.entries(KINDS).map(([number, kind]) => [kind, Number(number)])) as Record<
  ChangeKind,
  ResourceKind
>;

/**
 * WatchService: every open stream follows the store's change log in memory (the same entries
 * that keep routing current), so a write reaches every watcher without a query per stream.
 */
export class WatchHub {
  private readonly streamsByCaller = new Map<string, number>();
  private readonly closing = new AbortController();

  constructor(
    private readonly stores: Stores,
    private readonly options: WatchOptions,
  ) {
    // Every open stream listens for shutdown: thousands of listeners here are expected, not a leak.
    setMaxListeners(0, this.closing.signal);
  }

  /** Ends every open stream cleanly (server shutdown). */
  close(): void {
    this.closing.abort();
  }

  service(): ServiceImpl<typeof WatchService> {
    return { watch: (request, context) => this.watch(request, context) };
  }

  private async *watch(request: WatchRequest, context: HandlerContext): AsyncGenerator<WatchResponse> {
    let kinds: Set<ChangeKind>;
    try {
      kinds = checkRequest(request);
    } catch (error) {
      // Errors of a stream are raised while it is read, past the interceptor that maps them.
      throw error instanceof DomainError ? toConnectError(error) : error;
    }
    const caller = this.options.callerOf(context);
    const open = this.streamsByCaller.get(caller) ?? 0;
    if (open >= this.options.maxStreamsPerCaller) {
      throw new ConnectError(
        `${caller} already has ${open} open Watch streams (the limit); close one, or watch several kinds on one stream`,
        Code.ResourceExhausted,
      );
    }
    this.streamsByCaller.set(caller, open + 1);
    const stream = new StreamQueue(this.options.maxQueuedChanges);
    const unsubscribe = this.stores.changes.subscribe((change, entry) => {
      if (change.org === request.org && kinds.has(change.kind)) stream.push(entry);
    });
    const unsubscribeResync = this.stores.changes.onResync(() => stream.fellBehindRetention());
    // One controller per stream, fed by the two signals: AbortSignal.any would keep a reference
    // from the hub's long-lived signal for every stream ever opened.
    const stop = new AbortController();
    const onStop = () => stop.abort();
    context.signal.addEventListener("abort", onStop);
    this.closing.signal.addEventListener("abort", onStop);
    if (context.signal.aborted || this.closing.signal.aborted) stop.abort();
    try {
      yield* this.events(request, kinds, stream, stop.signal);
      throwIfDeadlinePassed(context.signal);
    } finally {
      context.signal.removeEventListener("abort", onStop);
      this.closing.signal.removeEventListener("abort", onStop);
      unsubscribe();
      unsubscribeResync();
      const remaining = (this.streamsByCaller.get(caller) ?? 1) - 1;
      if (remaining > 0) this.streamsByCaller.set(caller, remaining);
      else this.streamsByCaller.delete(caller);
    }
  }

  private async *events(request: WatchRequest, kinds: Set<ChangeKind>, stream: StreamQueue, stop: AbortSignal): AsyncGenerator<WatchResponse> {
    let cursor: number;
    if (request.sinceRevision === undefined) {
      const snapshot = await this.snapshot(request.org, kinds);
      for (const change of snapshot.changes) yield event({ case: "change", value: change });
      cursor = snapshot.revision;
      yield event({ case: "snapshotComplete", value: create(SnapshotCompleteSchema, { revision: BigInt(cursor) }) });
    } else {
      cursor = Number(request.sinceRevision);
      await this.requireRetained(cursor);
      for await (const entry of this.backlog(cursor)) {
        cursor = entry.revision;
        if (entry.change.org === request.org && kinds.has(entry.change.kind)) yield event({ case: "change", value: toChange(entry, this.stores) });
      }
    }
    while (!stop.aborted) {
      if (stream.behindRetention) throw compactedAway(cursor, await this.stores.changes.oldestResumable());
      if (stream.overflowed) {
        throw new ConnectError(
          `this Watch stream fell more than ${stream.limit} changes behind; resume with since_revision ${cursor} once you can keep up`,
          Code.ResourceExhausted,
        );
      }
      const entries = stream.take().filter((entry) => entry.revision > cursor);
      for (const entry of entries) {
        cursor = entry.revision;
        yield event({ case: "change", value: toChange(entry, this.stores) });
      }
      if (entries.length === 0 && !(await stream.wait(this.options.progressIntervalMs, stop))) {
        yield event({ case: "progress", value: create(ProgressSchema, { revision: BigInt(Math.max(cursor, this.stores.changes.appliedRevision)) }) });
      }
    }
  }

  /**
   * Every entry after `cursor` up to what this process has applied; later ones arrive live. Read in
   * batches while the client takes them, so compaction may overtake a slow reader: that ends the
   * stream (OUT_OF_RANGE) rather than skipping what was removed.
   */
  private async *backlog(cursor: number): AsyncGenerator<LogEntry> {
    const until = this.stores.changes.appliedRevision;
    for (let batch = await this.readRetainedAfter(cursor); batch.length > 0; batch = await this.readRetainedAfter(cursor)) {
      for (const entry of batch) {
        if (entry.revision > until) return;
        cursor = entry.revision;
        yield entry;
      }
    }
  }

  private async readRetainedAfter(cursor: number): Promise<LogEntry[]> {
    const batch = await this.stores.changes.readAfter(cursor);
    const oldest = await this.stores.changes.oldestResumable();
    if (cursor < oldest) throw compactedAway(cursor, oldest);
    return batch;
  }

  private async requireRetained(since: number): Promise<void> {
    const oldest = await this.stores.changes.oldestResumable();
    if (since < oldest) throw compactedAway(since, oldest);
    const newest = await this.stores.changes.currentRevision();
    if (since > newest) {
      throw new ConnectError(`since_revision ${since} is ahead of the newest revision ${newest}; it was not issued by this database`, Code.OutOfRange);
    }
  }

  /** The current state of every matching resource and the revision it is at. */
  private async snapshot(org: string, kinds: Set<ChangeKind>): Promise<{ changes: ResourceChange[]; revision: number }> {
    const { revision, value: changes } = await this.stores.changes.readAt(async () => {
      const read: ResourceChange[] = [];
      for (const kind of kinds) {
        for (const state of await currentStates(this.stores, org, kind)) read.push(snapshotChange(kind, org, state, this.stores));
      }
      return read;
    });
    return { changes, revision };
  }
}

function compactedAway(revision: number, oldest: number): ConnectError {
  return new ConnectError(
    `revision ${revision} has been compacted away; the oldest revision a watch can resume from is ${oldest}: ` +
      "list again (watch without since_revision) and resume from the snapshot's revision",
    Code.OutOfRange,
  );
}

/** Changes pushed by the log for one stream, bounded: past the limit the stream is ended, not buffered. */
class StreamQueue {
  private entries: LogEntry[] = [];
  private wake: (() => void) | null = null;
  overflowed = false;
  /** This process fell behind the log's retention: entries this stream needed are gone. */
  behindRetention = false;

  constructor(readonly limit: number) {}

  push(entry: LogEntry): void {
    if (this.overflowed) return;
    if (this.entries.length >= this.limit) {
      this.overflowed = true;
      this.entries = [];
    } else {
      this.entries.push(entry);
    }
    this.wake?.();
  }

  fellBehindRetention(): void {
    this.behindRetention = true;
    this.entries = [];
    this.wake?.();
  }

  take(): LogEntry[] {
    const taken = this.entries;
    this.entries = [];
    return taken;
  }

  /** Resolves true when something was pushed, false after `timeoutMs` or when `stop` fires. */
  wait(timeoutMs: number, stop: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        stop.removeEventListener("abort", onStop);
        this.wake = null;
        resolve(woken);
      };
      const onStop = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      stop.addEventListener("abort", onStop, { once: true });
      this.wake = () => done(true);
    });
  }
}

function checkRequest(request: WatchRequest): Set<ChangeKind> {
  const violations = new Violations();
  checkOrgField(request.org, "org", violations);
  const kinds = new Set<ChangeKind>();
  request.kinds.forEach((kind, index) => {
    const changeKind = KINDS[kind as keyof typeof KINDS];
    if (changeKind === undefined) violations.add(`kinds[${index}]`, `is not a resource kind (got ${kind})`);
    else if (kinds.has(changeKind)) violations.add(`kinds[${index}]`, `${ResourceKind[kind]} is listed twice`);
    else kinds.add(changeKind);
  });
  if (request.sinceRevision !== undefined && request.sinceRevision < 0n) violations.add("since_revision", "must not be negative");
  violations.throwIfAny();
  return kinds.size > 0 ? kinds : new Set(Object.values(KINDS));
}

function event(value: WatchResponse["event"]): WatchResponse {
  return create(WatchResponseSchema, { event: value });
}

function toChange(entry: LogEntry, stores: Stores): ResourceChange {
  const put = entry.op === "put";
  return create(ResourceChangeSchema, {
    revision: BigInt(entry.revision),
    kind: RESOURCE_KINDS[entry.change.kind],
    operation: put ? ChangeOperation.PUT : ChangeOperation.DELETE,
    name: nameOf(entry.change),
    commitTime: toTimestamp(entry.commitTime),
    resource: resourceOf(entry.change, put ? entry.state : null, stores),
  });
}

function snapshotChange(kind: ChangeKind, org: string, state: { revision?: number } & object, stores: Stores): ResourceChange {
  const change = changeOf(kind, org, state);
  return create(ResourceChangeSchema, {
    revision: BigInt(state.revision ?? 0),
    kind: RESOURCE_KINDS[kind],
    operation: ChangeOperation.PUT,
    name: nameOf(change),
    resource: resourceOf(change, state, stores),
  });
}

/** The key of a resource read in a snapshot, as the log would name it. */
function changeOf(kind: ChangeKind, org: string, state: object): Change {
  const named = state as { name?: string; id?: string; cluster?: string };
  switch (kind) {
    case "project":
      return { kind, org, id: named.id ?? "" };
    case "assignment":
      return { kind, ...(state as Assignment), org };
    case "default-label":
      return { kind, org };
    case "cluster-sync":
      return { kind, org, name: named.cluster ?? "" };
    default:
      return { kind, org, name: named.name ?? "" };
  }
}

/** The resource message of a change: its state, or only its identifying fields when deleted. */
function resourceOf(change: Change, state: unknown, stores: Stores): ResourceChange["resource"] {
  const { org } = change;
  switch (change.kind) {
    case "pool":
      return { case: "clusterPool", value: state ? toPoolMessage(state as ClusterPool) : create(ClusterPoolSchema, { org, name: change.name }) };
    case "cluster":
      return { case: "cluster", value: state ? toClusterMessage(state as Cluster) : create(ClusterSchema, { org, name: change.name }) };
    case "queue":
      return { case: "queue", value: state ? toQueueMessage(state as Queue) : create(QueueSchema, { org, name: change.name }) };
    case "project":
      return { case: "project", value: state ? toProjectMessage(state as Project, stores.domains) : create(ProjectSchema, { org, id: change.id }) };
    case "label":
      return { case: "clusterLabel", value: state ? toLabelMessage(state as ClusterLabel) : create(ClusterLabelSchema, { org, name: change.name }) };
    case "assignment": {
      const { project, domain, workflow, launchPlan } = change;
      const assignment = (state as Assignment | null) ?? { org, project, domain, workflow, launchPlan, value: "", updateTime: new Date(0), revision: 0 };
      const message = toAssignmentMessage(assignment);
      if (!state) message.updateTime = undefined;
      return { case: "executionClusterLabel", value: message };
    }
    case "default-label":
      return {
        case: "defaultClusterLabel",
        value: create(DefaultClusterLabelSchema, { org, label: (state as { label?: string } | null)?.label ?? "" }),
      };
    case "cluster-sync": {
      const status = state as SyncStatus | null;
      return {
        case: "clusterSyncStatus",
        value: create(ClusterSyncStatusOfClusterSchema, {
          org,
          cluster: change.name,
          status: status ? toSyncStatusMessage({ enabled: true, sync: status }) : undefined,
        }),
      };
    }
  }
}

/** Every resource of one kind in an organization, as List would show it, page by page. */
async function currentStates(stores: Stores, org: string, kind: ChangeKind): Promise<({ revision?: number } & object)[]> {
  switch (kind) {
    case "pool":
      return listAll((page) => stores.pools.list(org, page), (pool: ClusterPool) => [pool.name]);
    case "cluster":
      return listAll((page) => stores.clusters.list(org, { pool: "", enabled: undefined, state: "" }, page), (c: Cluster) => [c.name]);
    case "queue":
      return listAll((page) => stores.queues.list(org, { pool: "", state: "" }, page), (q: Queue) => [q.name]);
    case "project":
      return listAll((page) => stores.projects.list(org, "", page), (p: Project) => [p.id]);
    case "label":
      return listAll((page) => stores.labels.list(org, page), (l: ClusterLabel) => [l.name]);
    case "assignment":
      return listAll(
        (page) => stores.assignments.list(org, { project: "", domain: "" }, page),
        (a: Assignment) => [a.project, a.domain, a.workflow, a.launchPlan],
      );
    case "default-label": {
      const entry = await stores.labels.defaultEntry(org);
      return entry ? [entry] : [];
    }
    case "cluster-sync": {
      const statuses: (SyncStatus & { cluster: string; revision: number })[] = [];
      for (const cluster of (await currentStates(stores, org, "cluster")) as Cluster[]) {
        if (cluster.sync) statuses.push({ ...cluster.sync, cluster: cluster.name, revision: await stores.sync.revision(org, cluster.name) });
      }
      return statuses;
    }
  }
}

const SNAPSHOT_PAGE = 1000;

async function listAll<T>(fetch: (page: PageRequest) => Promise<Page<T>>, sortKey: (item: T) => string[]): Promise<T[]> {
  const items: T[] = [];
  let after: string[] | null = null;
  for (;;) {
    const page = await fetch({ size: SNAPSHOT_PAGE, after });
    items.push(...page.items);
    if (!page.hasMore || page.items.length === 0) return items;
    after = sortKey(page.items.at(-1)!);
  }
}
