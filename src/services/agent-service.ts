import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AgentService,
  DesiredObjectSchema,
  WatchDesiredStateResponseSchema,
  type ReportStatusRequest,
  type WatchDesiredStateResponse,
} from "../../gen/clusterplane/v1/agent_pb.js";
import { canonicalJson, projectDomainKey, type ProjectDomain } from "../core/desired-state.js";
import { DomainError, unauthenticated, Violations } from "../core/errors.js";
import { MAX_OBJECT_FAILURES, type ClusterFailureKind, type ObjectFailureKind, type PassOutcome } from "../core/pass-outcome.js";
import { bearerToken, looksLikeAgentCredential } from "../core/credentials.js";
import type { AgentBinding } from "../store/agent-repository.js";
import type { Change } from "../store/changes.js";
import type { Stores } from "../store/stores.js";
import type { DesiredState, DesiredStateCache } from "../sync/desired-cache.js";
import { toTimestamp } from "./common.js";
import { throwIfDeadlinePassed, toConnectError } from "./errors.js";

export interface AgentServiceOptions {
  /** A pull cluster whose agent is silent this long leaves routing; agents renew well within it. */
  leaseGraceMs: number;
}

export const DEFAULT_AGENT_LEASE_GRACE_MS = 40_000;

const CLUSTER_FAILURE_KINDS = new Set<ClusterFailureKind>(["unreachable", "unauthorized", "forbidden", "wrong-endpoint", "server-error", "credentials"]);
const OBJECT_FAILURE_KINDS = new Set<ObjectFailureKind>(["unsupported-kind", "rejected", "forbidden"]);

/**
 * AgentService: what pull-mode agents call. Every call but JoinCluster is made with an agent
 * credential, verified here against the database (the RPC gate only knows it is shaped like one),
 * and acts on that credential's cluster alone. Desired-state streams follow the change log, so a
 * project created through any replica reaches every agent, and a revocation or deletion through
 * any replica ends the cluster's streams everywhere.
 */
export class AgentHub {
  private readonly closing = new AbortController();
  /** The open desired-state streams, ended together on close (no listener per stream on one signal). */
  private readonly streams = new Set<AbortController>();

  constructor(
    private readonly stores: Stores,
    private readonly desired: DesiredStateCache,
    private readonly options: AgentServiceOptions,
  ) {}

  /** Ends every desired-state stream (the server is shutting down; agents reconnect elsewhere). */
  close(): void {
    this.closing.abort();
    for (const stream of this.streams) stream.abort();
  }

  service(): ServiceImpl<typeof AgentService> {
    return {
      joinCluster: async (request) => {
        const violations = new Violations();
        if (request.joinToken === "") violations.add("join_token", "is required: the join token printed by `clusterplane create cluster` or `create join-token`");
        violations.throwIfAny();
        const joined = await this.stores.agents.join(request.joinToken, request.agentVersion.slice(0, 64));
        return {
          credential: { token: joined.credential.token, expireTime: toTimestamp(joined.credential.expiresAt) },
          org: joined.org,
          cluster: joined.cluster,
        };
      },
      watchDesiredState: (request, context) => translated(this.watch(request.knownDigest, context)),
      reportStatus: async (request, context) => {
        const binding = await this.caller(context);
        const state = await this.desired.forOrg(binding.org);
        const outcome = outcomeOf(request, state);
        await this.stores.changes.write(async () => {
          await this.stores.sync.recordApplied(binding.org, binding.cluster, request.applied.map(({ key, hash }) => ({ key, hash })));
          await this.stores.sync.recordOutcome(binding.org, binding.cluster, outcome);
          await this.stores.agents.heartbeat(binding, request.agentVersion.slice(0, 64));
        });
        return { current: request.digest === digestOf(state) };
      },
      renewLease: async (request, context) => {
        const binding = await this.caller(context);
        await this.stores.agents.heartbeat(binding, request.agentVersion.slice(0, 64));
        await this.stores.sync.recordAgentBack(binding.org, binding.cluster);
        return { leaseSeconds: Math.floor(this.options.leaseGraceMs / 1000) };
      },
      rotateCredential: async (_request, context) => {
        const binding = await this.caller(context);
        const issued = await this.stores.agents.rotate(binding);
        return { credential: { token: issued.token, expireTime: toTimestamp(issued.expiresAt) } };
      },
    };
  }

  /** The cluster the caller's agent credential speaks for; UNAUTHENTICATED otherwise. */
  private caller(context: HandlerContext): Promise<AgentBinding> {
    return this.stores.agents.verify(agentCredentialOf(context));
  }

  private async *watch(knownDigest: string, context: HandlerContext): AsyncGenerator<WatchDesiredStateResponse> {
    const credential = agentCredentialOf(context);
    const binding = await this.stores.agents.verify(credential);
    const stop = new AbortController();
    const onStop = () => stop.abort();
    context.signal.addEventListener("abort", onStop);
    this.streams.add(stop);
    if (this.closing.signal.aborted) stop.abort();
    let wake: () => void = () => undefined;
    // One listener for the stream's life, not one per wait.
    stop.signal.addEventListener("abort", () => wake(), { once: true });
    let pending = true;
    const unsubscribe = this.stores.changes.subscribe((change) => {
      if (concerns(change, binding)) {
        pending = true;
        wake();
      }
    });
    try {
      let sent = knownDigest;
      while (!stop.signal.aborted) {
        if (!pending) await new Promise<void>((resolve) => (wake = resolve));
        if (stop.signal.aborted) break;
        pending = false;
        // A revocation or deletion (through any replica) is a change of the cluster: check again.
        await this.stores.agents.verify(credential);
        const state = await this.desired.forOrg(binding.org);
        const digest = digestOf(state);
        if (digest === sent) continue;
        sent = digest;
        yield await this.messageOf(binding, state, digest);
      }
      throwIfDeadlinePassed(context.signal);
    } finally {
      unsubscribe();
      context.signal.removeEventListener("abort", onStop);
      this.streams.delete(stop);
    }
  }

  private async messageOf(binding: AgentBinding, state: DesiredState, digest: string): Promise<WatchDesiredStateResponse> {
    const applied = await this.stores.sync.appliedHashes(binding.org, binding.cluster);
    return create(WatchDesiredStateResponseSchema, {
      revision: BigInt(this.stores.changes.appliedRevision),
      digest,
      objects: objectsOf(state),
      projectDomains: state.pairs,
      templateErrors: state.errors,
      appliedHashes: Object.fromEntries(applied),
    });
  }
}

/** A stream's errors do not pass the unary error translation: domain errors become statuses here. */
async function* translated<T>(stream: AsyncGenerator<T>): AsyncGenerator<T> {
  try {
    yield* stream;
  } catch (error) {
    throw error instanceof DomainError ? toConnectError(error) : error;
  }
}

/** The objects of a state as messages, built once and shared by every stream of the organization. */
function objectsOf(state: DesiredState): WatchDesiredStateResponse["objects"] {
  let objects = objectMessages.get(state);
  if (!objects) {
    objects = state.objects.map((object) =>
      create(DesiredObjectSchema, {
        key: object.key,
        manifestJson: JSON.stringify(object.object),
        hash: object.hash,
        project: object.project,
        domain: object.domain,
        role: object.role,
        source: object.source,
      }),
    );
    objectMessages.set(state, objects);
  }
  return objects;
}

/** Changes that may alter what a cluster's stream sends, or whether it may go on. */
function concerns(change: Change, binding: AgentBinding): boolean {
  if (change.org !== binding.org) return false;
  return change.kind === "project" || (change.kind === "cluster" && change.name === binding.cluster);
}

/** The agent credential the call carries; UNAUTHENTICATED when it carries none. */
function agentCredentialOf(context: HandlerContext): string {
  const token = bearerToken(context.requestHeader.get("authorization") ?? "");
  if (token === null || !looksLikeAgentCredential(token)) {
    throw unauthenticated("AgentService is for pull-mode agents: send the agent credential JoinCluster returned as Authorization: Bearer <credential>");
  }
  return token;
}

const digests = new WeakMap<DesiredState, string>();
const objectMessages = new WeakMap<DesiredState, WatchDesiredStateResponse["objects"]>();

/** Equal digests, equal desired states: what a reconnecting agent compares. Computed once per state. */
export function digestOf(state: DesiredState): string {
  let digest = digests.get(state);
  if (digest === undefined) digests.set(state, (digest = computeDigest(state)));
  return digest;
}

function computeDigest(state: DesiredState): string {
  const objects = state.objects.map((object) => `${object.key}=${object.hash}`).sort();
  return createHash("sha256").update(canonicalJson({ objects, errors: state.errors, pairs: state.pairs.map(projectDomainKey).sort() })).digest("base64url");
}

/**
 * The agent's pass in the reconciler's terms. Only what the cluster should have counts: a
 * project-domain reported provisioned but no longer desired is not routable here.
 */
function outcomeOf(request: ReportStatusRequest, state: DesiredState): PassOutcome {
  const violations = new Violations();
  const failureKind = request.failure?.kind ?? "";
  if (request.failure && !CLUSTER_FAILURE_KINDS.has(failureKind as ClusterFailureKind)) {
    violations.add("failure.kind", `"${failureKind.slice(0, 40)}" must be one of ${[...CLUSTER_FAILURE_KINDS].join(", ")}`);
  }
  request.objectFailures.forEach((failure, index) => {
    if (!OBJECT_FAILURE_KINDS.has(failure.kind as ObjectFailureKind)) {
      violations.add(`object_failures[${index}].kind`, `"${failure.kind.slice(0, 40)}" must be one of ${[...OBJECT_FAILURE_KINDS].join(", ")}`);
    }
  });
  if (!request.startTime) violations.add("start_time", "is required");
  if (!request.finishTime) violations.add("finish_time", "is required");
  violations.throwIfAny();
  const desired = new Set(state.pairs.map(projectDomainKey));
  const provisioned: ProjectDomain[] = request.provisioned
    .map(({ project, domain }) => ({ project, domain }))
    .filter((pair) => desired.has(projectDomainKey(pair)));
  return {
    startedAt: timestampDate(request.startTime!),
    finishedAt: timestampDate(request.finishTime!),
    full: request.full,
    applied: request.applied.length,
    unchanged: request.unchanged,
    failure: request.failure ? { kind: failureKind as ClusterFailureKind, message: request.failure.message.slice(0, 1000) } : null,
    objectsFailed: Math.max(request.objectsFailed, request.objectFailures.length),
    objectFailures: request.objectFailures.slice(0, MAX_OBJECT_FAILURES).map((failure) => ({
      key: failure.key.slice(0, 400),
      kind: failure.kind as ObjectFailureKind,
      message: failure.message.slice(0, 1000),
    })),
    templateErrors: state.errors,
    desired: state.pairs,
    provisioned: [...new Map(provisioned.map((pair) => [projectDomainKey(pair), pair])).values()],
  };
}
