/**
 * The console's state: one Watch stream (snapshot, then every change as it is committed) feeds
 * signals the pages read. No polling: a dropped stream is resumed with `since_revision`, or
 * listed again (a fresh snapshot) when that revision was compacted away (OUT_OF_RANGE).
 */
import { batch, signal } from "@preact/signals";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Cluster, ClusterSyncStatus, ConditionStatus, SyncHealth } from "../../gen/clusterplane/v1/cluster_pb.js";
import type { ClusterPool } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import type { ClusterLabel, ExecutionClusterLabel } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import type { Project } from "../../gen/clusterplane/v1/project_pb.js";
import type { Queue } from "../../gen/clusterplane/v1/queue_pb.js";
import { ChangeOperation, type ResourceChange } from "../../gen/clusterplane/v1/watch_pb.js";
import { api, describeError } from "./api.js";

export type Feed = "connecting" | "live" | "reconnecting" | "refused";

export const clusters = signal<ReadonlyMap<string, Cluster>>(new Map());
export const pools = signal<ReadonlyMap<string, ClusterPool>>(new Map());
export const queues = signal<ReadonlyMap<string, Queue>>(new Map());
export const projects = signal<ReadonlyMap<string, Project>>(new Map());
export const labels = signal<ReadonlyMap<string, ClusterLabel>>(new Map());
export const assignments = signal<ReadonlyMap<string, ExecutionClusterLabel>>(new Map());
export const defaultLabel = signal("");
/** Whether the feed is live, and why not. */
export const feed = signal<Feed>("connecting");
export const feedError = signal("");
/** The newest revision applied. */
export const revision = signal<bigint>(0n);
/** Set when the snapshot has been received once. */
export const loaded = signal(false);

/** One sync pass as the stream reported it (the API keeps only the last; the tab keeps a few). */
export interface PassRecord {
  at: Timestamp | undefined;
  health: SyncHealth;
  applied: number;
  unchanged: number;
  failed: number;
  error: string;
}

/** A condition that changed status while the tab was open. */
export interface Transition {
  type: string;
  from: ConditionStatus | undefined;
  to: ConditionStatus;
  reason: string;
  message: string;
  at: Timestamp | undefined;
}

const KEPT_PASSES = 10;
const KEPT_TRANSITIONS = 20;
/** The passes of each cluster seen since the tab opened, newest first. */
export const passes = signal<ReadonlyMap<string, PassRecord[]>>(new Map());
/** The condition changes of each cluster seen since the tab opened, newest first. */
export const transitions = signal<ReadonlyMap<string, Transition[]>>(new Map());

function recordPass(cluster: string, status: ClusterSyncStatus, at: Timestamp | undefined): void {
  const record: PassRecord = {
    at: status.lastAttemptTime ?? at,
    health: status.health,
    applied: status.objectsApplied,
    unchanged: status.objectsUnchanged,
    failed: status.objectsFailed,
    error: status.lastError,
  };
  passes.value = new Map(passes.value).set(cluster, [record, ...(passes.value.get(cluster) ?? [])].slice(0, KEPT_PASSES));
}

function recordTransitions(before: Cluster | undefined, after: Cluster): void {
  const changed: Transition[] = [];
  for (const condition of after.conditions) {
    const previous = before?.conditions.find((c) => c.type === condition.type);
    if (previous?.status === condition.status) continue;
    changed.push({ type: condition.type, from: previous?.status, to: condition.status, reason: condition.reason, message: condition.message, at: condition.lastTransitionTime });
  }
  if (changed.length) transitions.value = new Map(transitions.value).set(after.name, [...changed, ...(transitions.value.get(after.name) ?? [])].slice(0, KEPT_TRANSITIONS));
}

interface Maps {
  clusters: Map<string, Cluster>;
  pools: Map<string, ClusterPool>;
  queues: Map<string, Queue>;
  projects: Map<string, Project>;
  labels: Map<string, ClusterLabel>;
  assignments: Map<string, ExecutionClusterLabel>;
  defaultLabel: string;
}

function emptyMaps(): Maps {
  return { clusters: new Map(), pools: new Map(), queues: new Map(), projects: new Map(), labels: new Map(), assignments: new Map(), defaultLabel: "" };
}

function currentMaps(): Maps {
  return {
    clusters: new Map(clusters.value),
    pools: new Map(pools.value),
    queues: new Map(queues.value),
    projects: new Map(projects.value),
    labels: new Map(labels.value),
    assignments: new Map(assignments.value),
    defaultLabel: defaultLabel.value,
  };
}

function publish(maps: Maps): void {
  batch(() => {
    clusters.value = maps.clusters;
    pools.value = maps.pools;
    queues.value = maps.queues;
    projects.value = maps.projects;
    labels.value = maps.labels;
    assignments.value = maps.assignments;
    defaultLabel.value = maps.defaultLabel;
  });
}

function put<T>(map: Map<string, T>, change: ResourceChange, value: T | undefined): void {
  if (change.operation === ChangeOperation.DELETE || value === undefined) map.delete(change.name);
  else map.set(change.name, value);
}

/** Applies one change; returns the name of a cluster whose conditions should be read again. */
function apply(maps: Maps, change: ResourceChange): string | undefined {
  const resource = change.resource;
  switch (resource.case) {
    case "cluster":
      put(maps.clusters, change, resource.value);
      return undefined;
    case "clusterPool":
      put(maps.pools, change, resource.value);
      return undefined;
    case "queue":
      put(maps.queues, change, resource.value);
      return undefined;
    case "project":
      put(maps.projects, change, resource.value);
      return undefined;
    case "clusterLabel":
      put(maps.labels, change, resource.value);
      return undefined;
    case "executionClusterLabel":
      put(maps.assignments, change, resource.value);
      return undefined;
    case "defaultClusterLabel":
      maps.defaultLabel = change.operation === ChangeOperation.DELETE ? "" : resource.value.label;
      return undefined;
    case "clusterSyncStatus": {
      // One change per sync pass; the conditions and the agent come with the cluster itself.
      const cluster = maps.clusters.get(resource.value.cluster);
      if (cluster && resource.value.status) maps.clusters.set(cluster.name, { ...cluster, syncStatus: resource.value.status });
      return resource.value.cluster;
    }
    default:
      return undefined;
  }
}

const refreshes = new Map<string, ReturnType<typeof setTimeout>>();

/** Reads a cluster again after a sync pass changed it (its conditions travel with the cluster). */
function refreshCluster(name: string): void {
  if (refreshes.has(name)) return;
  refreshes.set(
    name,
    setTimeout(async () => {
      refreshes.delete(name);
      try {
        const { cluster } = await api.clusters.getCluster({ name });
        if (!cluster || !clusters.value.has(name)) return;
        recordTransitions(clusters.value.get(name), cluster);
        clusters.value = new Map(clusters.value).set(name, cluster);
      } catch {
        // Deleted meanwhile, or the server is away: the stream will say.
      }
    }, 250),
  );
}

/** Runs the feed until `signal` aborts: snapshot, then changes; resumes after a drop. */
export async function runFeed(stop: AbortSignal, onUnauthenticated: () => void): Promise<void> {
  let since: bigint | undefined;
  let delay = 250;
  while (!stop.aborted) {
    let staging: Maps | undefined = since === undefined ? emptyMaps() : undefined;
    try {
      const stream = api.watch.watch({ sinceRevision: since }, { signal: stop });
      for await (const event of stream) {
        delay = 250;
        switch (event.event.case) {
          case "change": {
            const change = event.event.value;
            if (staging) {
              apply(staging, change);
            } else {
              const maps = currentMaps();
              const before = change.resource.case === "cluster" ? maps.clusters.get(change.name) : undefined;
              const refresh = apply(maps, change);
              publish(maps);
              if (change.resource.case === "cluster") recordTransitions(before, change.resource.value);
              if (change.resource.case === "clusterSyncStatus" && change.resource.value.status) {
                recordPass(change.resource.value.cluster, change.resource.value.status, change.commitTime);
              }
              if (refresh) refreshCluster(refresh);
              if (since === undefined || change.revision > since) since = change.revision;
            }
            break;
          }
          case "snapshotComplete":
            if (staging) publish(staging);
            staging = undefined;
            since = event.event.value.revision;
            batch(() => {
              loaded.value = true;
              feed.value = "live";
              feedError.value = "";
            });
            break;
          case "progress":
            if (!staging) since = event.event.value.revision;
            break;
        }
        if (since !== undefined) revision.value = since;
        if (!staging && feed.value !== "live") {
          feed.value = "live";
          feedError.value = "";
        }
      }
      // The server ended the stream (it shuts down, or restarts): resume where it stopped.
      feed.value = "reconnecting";
    } catch (error) {
      if (stop.aborted) return;
      const connectError = ConnectError.from(error);
      if (connectError.code === Code.OutOfRange) {
        // Too far behind: the revision is compacted away. Start again from a snapshot.
        since = undefined;
      } else if (connectError.code === Code.Unauthenticated) {
        feed.value = "refused";
        feedError.value = describeError(error);
        onUnauthenticated();
        return;
      } else if (connectError.code === Code.PermissionDenied) {
        feed.value = "refused";
        feedError.value = describeError(error);
        return;
      }
      feed.value = "reconnecting";
      feedError.value = describeError(error);
    }
    // A snapshot cut short is thrown away; a stream that was live resumes from `since`.
    await sleep(delay, stop);
    delay = Math.min(delay * 2, 5_000);
  }
}

function sleep(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    stop.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A clock for ages ("3 min ago"): ticks every 5 s; only the page redraws, nothing is fetched. */
export const now = signal(Date.now());
setInterval(() => (now.value = Date.now()), 5_000);
