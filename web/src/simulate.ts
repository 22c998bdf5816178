/** The routing simulator: where SelectCluster sends N execution ids, asked in parallel. */
import { api } from "./api.js";

export interface SimulationRequest {
  project: string;
  domain: string;
  workflow: string;
  count: number;
}

export interface Simulation {
  /** Execution ids by the cluster SelectCluster chose. */
  counts: Map<string, number>;
  /** The label and reason of the answers (the resolution path). */
  label: string;
  reason: string;
  asked: number;
  /** Calls that failed, with the first failure. */
  failed: number;
  firstError: unknown;
  ms: number;
}

/** Calls in flight at once: enough to keep HTTP/2 (or six HTTP/1.1 connections) busy. */
const CONCURRENCY = 32;

/** Asks SelectCluster for `sim-0` … `sim-<count-1>`; `progress` is told how many were answered. */
export async function simulate(request: SimulationRequest, progress: (done: number) => void, signal?: AbortSignal): Promise<Simulation> {
  const started = performance.now();
  const result: Simulation = { counts: new Map(), label: "", reason: "", asked: request.count, failed: 0, firstError: undefined, ms: 0 };
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < request.count && !signal?.aborted) {
      const id = `sim-${next++}`;
      try {
        const answer = await api.labels.selectCluster(
          { project: request.project, domain: request.domain, workflow: request.workflow, executionId: id },
          { signal },
        );
        result.counts.set(answer.cluster, (result.counts.get(answer.cluster) ?? 0) + 1);
        if (!result.label && !result.reason) {
          result.label = answer.label;
          result.reason = answer.reason;
        }
      } catch (error) {
        result.failed++;
        result.firstError ??= error;
      }
      if (++done % 250 === 0) progress(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, request.count) }, worker));
  progress(done);
  result.ms = performance.now() - started;
  return result;
}
