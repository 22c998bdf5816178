/**
 * One reconcile pass over one cluster, free of how the cluster is reached: push mode hands it a
 * KubeConnection built from the cluster's endpoint and credential files; a pull-mode agent will
 * hand it its in-cluster client. It returns what the pass found (a PassOutcome) and never throws.
 */
import type { DesiredObject, ProjectDomain } from "../core/desired-state.js";
import { MAX_OBJECT_FAILURES, type ClusterFailure, type ObjectFailure, type PassOutcome } from "../core/pass-outcome.js";
import type { KubeObject } from "../core/template.js";
import type { AppliedObject } from "../store/sync-repository.js";
import { forEachBounded } from "./bounded.js";
import type { DesiredState } from "./desired-cache.js";
import { ApplyError, clusterFailureOf, objectFailureOf, stopsThePass, type TargetNames } from "./failures.js";

/** What the reconciler needs of a cluster. Methods throw ApplyError and end early when `signal` aborts. */
export interface Applier {
  /** The kinds the cluster serves under `apiVersion`; empty when it serves no such group/version. */
  servedKinds(apiVersion: string, signal: AbortSignal): Promise<ReadonlySet<string>>;
  /** Server-side apply. */
  apply(object: KubeObject, signal: AbortSignal): Promise<void>;
}

export interface PassInput {
  desired: DesiredState;
  /** What the cluster was last given, by object key (the stored hashes). */
  appliedHashes: ReadonlyMap<string, string>;
  /** Apply everything whatever the hashes say (drift repair). */
  full: boolean;
  applier: Applier;
  requestsInFlight: number;
  requestTimeoutMs: number;
  names: TargetNames;
  /** Remembers objects applied; called in batches as the pass goes, also when it is aborted. */
  recordApplied(objects: AppliedObject[]): Promise<void> | void;
}

export interface PassResult {
  outcome: PassOutcome;
  /** How long the server asked us to wait before the next try (429/503), 0 when it did not say. */
  retryAfterMs: number;
  /** The signal ended the pass: nothing it found says anything about the cluster. */
  aborted: boolean;
}

const RECORD_BATCH = 500;
const CORE_API = "v1";

/** Everything one pass learns, gathered as its requests finish. */
class PassLedger {
  readonly appliedNow = new Set<string>();
  readonly failedNow = new Set<string>();
  readonly objectFailures: ObjectFailure[] = [];
  objectsFailed = 0;
  unchanged = 0;
  failure: ClusterFailure | null = null;
  retryAfterMs = 0;
  aborted = false;
  private batch: AppliedObject[] = [];
  /** The batches being recorded, in order; `recorded()` waits for them (and throws their failure). */
  private recording: Promise<void> = Promise.resolve();

  constructor(private readonly record: (objects: AppliedObject[]) => Promise<void> | void) {}

  get stopped(): boolean {
    return this.failure !== null || this.aborted;
  }

  applied(object: DesiredObject): void {
    this.appliedNow.add(object.key);
    this.batch.push({ key: object.key, hash: object.hash });
    if (this.batch.length >= RECORD_BATCH) this.flush();
  }

  objectFailed(object: DesiredObject, failure: ObjectFailure): void {
    this.failedNow.add(object.key);
    this.objectsFailed++;
    if (this.objectFailures.length < MAX_OBJECT_FAILURES) this.objectFailures.push(failure);
  }

  clusterFailed(failure: ClusterFailure, retryAfterMs: number): void {
    // The first failure explains the pass; requests already in flight fail the same way.
    if (this.failure) return;
    this.failure = failure;
    this.retryAfterMs = retryAfterMs;
  }

  flush(): void {
    if (this.batch.length) {
      const batch = this.batch;
      this.recording = this.recording.then(() => this.record(batch));
      // Awaited by recorded(); until then a failure must not count as unhandled.
      this.recording.catch(() => undefined);
    }
    this.batch = [];
  }

  /** Resolves once every flushed batch has been recorded. */
  recorded(): Promise<void> {
    return this.recording;
  }
}

/**
 * Namespaces first (everything else lives in them), then the rest; objects whose stored hash
 * matches are not sent unless the pass is full. The core API's discovery comes first: it tells a
 * wrong endpoint, a refused token or missing RBAC apart before anything is written. A problem with
 * the whole cluster stops the pass; an object's own problem is recorded and the pass goes on.
 */
export async function reconcilePass(input: PassInput, signal: AbortSignal): Promise<PassResult> {
  const startedAt = new Date();
  const ledger = new PassLedger(input.recordApplied);
  const pending: DesiredObject[] = [];
  for (const object of input.desired.objects) {
    if (!input.full && input.appliedHashes.get(object.key) === object.hash) ledger.unchanged++;
    else pending.push(object);
  }
  if (pending.length > 0) await applyAll(pending, input, ledger, signal);
  ledger.flush();
  await ledger.recorded();
  return resultOf(input, ledger, startedAt);
}

/**
 * The outcome of a pass that could not start (its credentials are unusable): nothing was sent,
 * and what the stored hashes say is there is all that is known to be provisioned.
 */
export function passNotStarted(
  input: Pick<PassInput, "desired" | "appliedHashes" | "full">,
  failure: ClusterFailure,
  startedAt: Date,
): PassResult {
  const ledger = new PassLedger(() => undefined);
  ledger.clusterFailed(failure, 0);
  return resultOf(input, ledger, startedAt);
}

function resultOf(input: Pick<PassInput, "desired" | "appliedHashes" | "full">, ledger: PassLedger, startedAt: Date): PassResult {
  return {
    outcome: {
      startedAt,
      finishedAt: new Date(),
      full: input.full,
      applied: ledger.appliedNow.size,
      unchanged: ledger.unchanged,
      failure: ledger.failure,
      objectsFailed: ledger.objectsFailed,
      objectFailures: ledger.objectFailures,
      templateErrors: input.desired.errors,
      desired: input.desired.pairs,
      provisioned: provisionedPairs(input, ledger),
    },
    retryAfterMs: ledger.retryAfterMs,
    aborted: ledger.aborted,
  };
}

async function applyAll(pending: DesiredObject[], input: PassInput, ledger: PassLedger, signal: AbortSignal): Promise<void> {
  const discovery = new Discovery(input.applier, signal);
  try {
    await discovery.kindsOf(CORE_API);
  } catch (error) {
    noteClusterError(error, input, ledger);
    return;
  }
  const isNamespace = (object: DesiredObject) => object.role === "namespace";
  for (const phase of [pending.filter(isNamespace), pending.filter((object) => !isNamespace(object))]) {
    await forEachBounded(phase, input.requestsInFlight, (object) => applyOne(object, input, ledger, discovery, signal), () => ledger.stopped);
    if (ledger.stopped) return;
  }
}

async function applyOne(object: DesiredObject, input: PassInput, ledger: PassLedger, discovery: Discovery, signal: AbortSignal): Promise<void> {
  try {
    const served = await discovery.kindsOf(object.object.apiVersion);
    if (!served.has(object.object.kind)) throw new ApplyError("unsupported-kind", `${object.object.kind} is not served`);
    await input.applier.apply(object.object, signal);
    ledger.applied(object);
  } catch (error) {
    const failure = asApplyError(error, signal);
    if (failure.problem === "aborted") ledger.aborted = true;
    else if (stopsThePass(failure.problem, object.role)) noteClusterError(failure, input, ledger);
    else ledger.objectFailed(object, objectFailureOf(failure, object.key, { ...object.object, source: object.source }));
  }
}

function noteClusterError(error: unknown, input: PassInput, ledger: PassLedger): void {
  const failure = asApplyError(error, null);
  if (failure.problem === "aborted") ledger.aborted = true;
  else ledger.clusterFailed(clusterFailureOf(failure, input.names, input.requestTimeoutMs), failure.retryAfterMs);
}

/** An applier that broke its contract (threw something else) is treated as unreachable, never as a crash. */
function asApplyError(error: unknown, signal: AbortSignal | null): ApplyError {
  if (error instanceof ApplyError) return error;
  if (signal?.aborted) return new ApplyError("aborted", "cancelled");
  return new ApplyError("network", (error as Error)?.message ?? String(error));
}

/** Discovery once per group/version and pass: objects of one kind share the answer. */
class Discovery {
  private readonly answers = new Map<string, Promise<ReadonlySet<string>>>();

  constructor(
    private readonly applier: Applier,
    private readonly signal: AbortSignal,
  ) {}

  kindsOf(apiVersion: string): Promise<ReadonlySet<string>> {
    let answer = this.answers.get(apiVersion);
    if (!answer) {
      answer = this.applier.servedKinds(apiVersion, this.signal);
      this.answers.set(apiVersion, answer);
    }
    return answer;
  }
}

/**
 * Provisioning truth: a project-domain is provisioned when its namespace and its service account
 * are on the cluster as currently desired — applied by this pass, or untouched by it and recorded
 * at the current hash. An extra object's failure does not change that: its pair stays routable.
 */
function provisionedPairs(input: Pick<PassInput, "desired" | "appliedHashes">, ledger: PassLedger): ProjectDomain[] {
  const isThere = (object: DesiredObject) =>
    ledger.appliedNow.has(object.key) || (!ledger.failedNow.has(object.key) && input.appliedHashes.get(object.key) === object.hash);
  return input.desired.provisioning.filter(({ core }) => core.length > 0 && core.every(isThere)).map(({ pair }) => pair);
}
