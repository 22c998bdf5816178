import type { DesiredObject } from "../core/desired-state.js";
import type { KubeObject } from "../core/template.js";
import type { AppliedObject } from "../store/sync-repository.js";
import type { ApplyFailure } from "./kube-connection.js";

/** Applies objects to one cluster; implemented by KubeConnection. */
export interface Applier {
  apply(object: KubeObject): Promise<void>;
}

export interface ClusterPassResult {
  applied: number;
  unchanged: number;
  failed: number;
  /** The first error, in words; "" when everything was applied. */
  error: string;
  /** True when a cluster-wide error stopped the pass early. */
  aborted: boolean;
}

export interface ClusterPassOptions {
  requestsInFlight: number;
  /** Hashes of what the cluster already has; null to apply everything (drift repair). */
  appliedHashes: Map<string, string> | null;
  describeFailure(error: unknown): ApplyFailure;
  /** Called with batches of objects applied, to remember their hashes. */
  recordApplied(objects: AppliedObject[]): void;
}

const RECORD_BATCH = 500;

/**
 * One pass over one cluster: namespaces first (everything else lives in them), then the rest,
 * skipping objects whose hash says the cluster already has them. A cluster-wide failure
 * (unreachable, unauthorized, 5xx) stops the pass; an object's own failure does not.
 */
export async function runClusterPass(applier: Applier, desired: readonly DesiredObject[], options: ClusterPassOptions): Promise<ClusterPassResult> {
  const result: ClusterPassResult = { applied: 0, unchanged: 0, failed: 0, error: "", aborted: false };
  const pending: DesiredObject[] = [];
  for (const object of desired) {
    if (options.appliedHashes?.get(object.key) === object.hash) result.unchanged++;
    else pending.push(object);
  }
  const isNamespace = (object: DesiredObject) => object.object.kind === "Namespace";
  let batch: AppliedObject[] = [];
  const flush = () => {
    options.recordApplied(batch);
    batch = [];
  };

  const applyOne = async (object: DesiredObject) => {
    try {
      await applier.apply(object.object);
      result.applied++;
      batch.push({ key: object.key, hash: object.hash });
      if (batch.length >= RECORD_BATCH) flush();
    } catch (error) {
      const failure = options.describeFailure(error);
      result.failed++;
      if (!result.error) result.error = failure.scope === "object" ? `${object.key}: ${failure.message}` : failure.message;
      if (failure.scope === "cluster") result.aborted = true;
    }
  };

  for (const phase of [pending.filter(isNamespace), pending.filter((object) => !isNamespace(object))]) {
    await forEachBounded(phase, options.requestsInFlight, applyOne, () => result.aborted);
    if (result.aborted) break;
  }
  flush();
  return result;
}

/** Runs `work` over `items` with at most `limit` at once, starting no new item once `stop()` is true. */
export async function forEachBounded<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stop()) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
