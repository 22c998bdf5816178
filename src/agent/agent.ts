/**
 * The pull-mode agent (`clusterplane agent`): runs in (or a kubeconfig away from) a data-plane
 * cluster, connects out to the control plane, and nothing connects in. It joins once with a join
 * token, then keeps three things going until it is stopped:
 *
 * - the desired-state stream (WatchDesiredState), resumed by digest after a break, reconnected
 *   with backoff and jitter;
 * - passes of the push reconciler itself over what the stream sent, each reported (ReportStatus),
 *   again every interval (hash-based: unchanged objects are not sent), sooner after a failure;
 * - the heartbeat (RenewLease), which also rotates the credential when a third of its life is left.
 */
import { accessSync, constants } from "node:fs";
import { dirname } from "node:path";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { AgentService, type WatchDesiredStateResponse } from "../../gen/clusterplane/v1/agent_pb.js";
import type { PassOutcome } from "../core/pass-outcome.js";
import { grpcStatusName } from "../core/values.js";
import { KubeConnection, type Credentials } from "../sync/kube-connection.js";
import { passNotStarted, reconcilePass, type PassResult } from "../sync/reconcile.js";
import { Backoff, describeWait, sleep, type BackoffOptions } from "./backoff.js";
import {
  CredentialFileError,
  isUsable,
  needsRotation,
  readCredentialFile,
  writeCredentialFile,
  type StoredCredential,
} from "./credential-file.js";
import { receivedState, type ReceivedState } from "./desired.js";
import { readKubeTarget, type KubeTarget, type KubeTargetOptions } from "./kube-target.js";

/** Exit codes, as the operator commands use them (src/cli/exit.ts). */
export const AGENT_EXIT = {
  OK: 0,
  /** The control plane refused the join token or the credential: a new join token is needed. */
  REFUSED: 1,
  /** Bad usage or local files (credential file, kubeconfig): nothing was sent. */
  USAGE: 2,
} as const;

export interface AgentOptions {
  /** The control plane's URL, already checked (http only for loopback). */
  controlPlane: string;
  /** PEM of a private CA the control plane's certificate is signed by; public roots otherwise. */
  caPem?: string;
  /** The join token, read when needed (a mounted Secret may be replaced with a fresh one). */
  joinToken: () => string | undefined;
  credentialFile: string;
  kube: KubeTargetOptions;
  intervalMs: number;
  heartbeatMs: number;
  /** A full pass (every object applied again: drift repair) this often; 0 for never. */
  fullResyncMs: number;
  requestTimeoutMs: number;
  requestsInFlight: number;
  version: string;
  /** The stream's reconnect schedule (tests make it faster). */
  backoff?: BackoffOptions;
}

/** Unary calls to the control plane give up after this long. */
const CALL_TIMEOUT_MS = 15_000;
/** After a failed rotation (the file could not be written, the call failed), try again this much later. */
const ROTATION_RETRY_MS = 3_600_000;
/** A stream that lived this long was a good connection: the next break starts the backoff afresh. */
const STREAM_HEALTHY_MS = 10_000;
/** A resumed stream that has not failed this long after it was opened is taken as open (for the log). */
const RESUMED_OPEN_MS = 1_000;

class Fatal extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Runs the agent until `signal` aborts (exit 0) or it cannot go on; resolves with the exit code. */
export async function runAgent(options: AgentOptions, logger: Logger, signal: AbortSignal): Promise<number> {
  const agent = new Agent(options, logger);
  return agent.run(signal);
}

class Agent {
  private readonly stop = new AbortController();
  private readonly session: Http2SessionManager;
  private readonly client: Client<typeof AgentService>;
  private credential: StoredCredential | undefined;
  /** Join tokens already exchanged (a token is single-use): a refused credential can rejoin only with another. */
  private readonly spentJoinTokens = new Set<string>();
  private rejoining: Promise<boolean> | null = null;
  private fatal: Fatal | null = null;

  /** The latest desired state from the stream; null until the first message. */
  private state: ReceivedState | null = null;
  /** What this cluster has, by object key (hashes applied); null until the first message seeds it. */
  private applied: Map<string, string> | null = null;
  /** Applied but not yet in a report the control plane acknowledged. */
  private readonly unreported = new Map<string, string>();
  private reportOwed = false;
  private passWanted = false;
  private wakePasses: () => void = () => undefined;
  private lastFullAt = Date.now();
  private connection: KubeConnection | undefined;
  private nextRotationTry = 0;

  constructor(
    private readonly options: AgentOptions,
    private readonly logger: Logger,
  ) {
    this.session = new Http2SessionManager(
      options.controlPlane,
      // PINGs find a connection that died silently (a replica gone without a FIN) within ~25 s.
      { pingIntervalMs: 15_000, pingTimeoutMs: 10_000, pingIdleConnection: true, idleConnectionTimeoutMs: 5 * 60_000 },
      options.caPem ? { ca: options.caPem } : {},
    );
    const transport = createGrpcTransport({
      baseUrl: options.controlPlane,
      sessionManager: this.session,
      interceptors: [
        (next) => (request) => {
          const token = this.credential?.token;
          if (token && request.method.name !== "JoinCluster") request.header.set("Authorization", `Bearer ${token}`);
          request.header.set("User-Agent", `clusterplane-agent/${options.version}`);
          return next(request);
        },
      ],
    });
    this.client = createClient(AgentService, transport);
  }

  async run(signal: AbortSignal): Promise<number> {
    const onStop = () => {
      if (!this.stop.signal.aborted) this.logger.info({}, "agent: stopping");
      this.stop.abort();
    };
    if (signal.aborted) onStop();
    signal.addEventListener("abort", onStop, { once: true });
    try {
      // Everything local is checked before the join token is spent.
      const target = readKubeTarget(this.options.kube);
      this.logger.info({ controlPlane: this.options.controlPlane, kube: target.source, version: this.options.version }, `agent: starting; Kubernetes API through ${target.source}`);
      await this.obtainCredential();
      if (!this.stop.signal.aborted) await Promise.all([this.streamLoop(), this.passLoop(), this.heartbeatLoop()]);
    } catch (error) {
      if (error instanceof Fatal) this.fail(error);
      else if (error instanceof CredentialFileError || (error as Error)?.name === "KubeTargetError" || (error as Error)?.name === "CredentialFileError") {
        this.fail(new Fatal((error as Error).message, AGENT_EXIT.USAGE));
      } else throw error;
    } finally {
      signal.removeEventListener("abort", onStop);
      this.stop.abort();
      this.connection?.close();
      this.session.abort();
    }
    if (this.fatal) return this.fatal.exitCode;
    this.logger.info({}, "agent: stopped");
    return AGENT_EXIT.OK;
  }

  private get stopped(): boolean {
    return this.stop.signal.aborted;
  }

  /** Ends the agent with `fatal` (the first one wins). */
  private fail(fatal: Fatal): void {
    if (!this.fatal) {
      this.fatal = fatal;
      this.logger.fatal({ exitCode: fatal.exitCode }, `agent: ${fatal.message}`);
    }
    this.stop.abort();
  }

  // ---- the credential ----

  private async obtainCredential(): Promise<void> {
    const file = this.options.credentialFile;
    let stored: StoredCredential | null = null;
    try {
      stored = readCredentialFile(file);
    } catch (error) {
      if (!this.options.joinToken()) throw error;
      this.logger.warn({ credentialFile: file }, `agent: ${(error as Error).message}; joining with the join token instead`);
    }
    if (stored && isUsable(stored)) {
      this.credential = stored;
      if (stored.controlPlane && stored.controlPlane !== this.options.controlPlane) {
        this.logger.warn({ issuedBy: stored.controlPlane }, `agent: the credential in ${file} was issued by ${stored.controlPlane}, not ${this.options.controlPlane}; using it anyway`);
      }
      this.logger.info(
        { org: stored.org, cluster: stored.cluster, credentialFile: file, expireTime: stored.expireTime.toISOString() },
        `agent: using the agent credential of cluster ${stored.cluster} from ${file}`,
      );
      return;
    }
    const joinToken = this.options.joinToken();
    if (!joinToken) {
      const why = stored
        ? `the agent credential in ${file} expired at ${stored.expireTime.toISOString()}`
        : `there is no agent credential in ${file}`;
      throw new Fatal(
        `${why} and no join token was given: start the agent with --join-token TOKEN (or CLUSTERPLANE_JOIN_TOKEN, or --join-token-file), ` +
          "the token `clusterplane create cluster` printed, or a new one from `clusterplane create join-token --cluster NAME`",
        AGENT_EXIT.USAGE,
      );
    }
    // The join token is single-use: make sure the credential it buys can be kept before spending it.
    try {
      accessSync(dirname(file), constants.W_OK);
    } catch (error) {
      throw new Fatal(`cannot write the credential file ${file} (${(error as Error).message}); the join token was not used: give a writable --credential-file`, AGENT_EXIT.USAGE);
    }
    if (stored) this.logger.warn({}, `agent: the agent credential in ${file} expired at ${stored.expireTime.toISOString()}; joining again with the join token`);
    await this.joinWithRetry(joinToken);
  }

  /** JoinCluster, retried while the control plane cannot be reached; a refusal is fatal. */
  private async joinWithRetry(joinToken: string): Promise<void> {
    const backoff = new Backoff(this.options.backoff);
    while (!this.stopped) {
      try {
        await this.join(joinToken);
        return;
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof Fatal) throw error;
        const refusal = ConnectError.from(error);
        if (isRefusal(refusal)) {
          this.spentJoinTokens.add(joinToken);
          throw new Fatal(
            `the control plane refused the join token: ${refusal.rawMessage} (${codeName(refusal.code)})`,
            AGENT_EXIT.REFUSED,
          );
        }
        const wait = backoff.next();
        this.logger.warn({ error: refusal.rawMessage, code: codeName(refusal.code), retryInMs: wait }, `agent: control plane unreachable; retrying in ${describeWait(wait)}`);
        await sleep(wait, this.stop.signal);
      }
    }
  }

  private async join(joinToken: string): Promise<void> {
    const answer = await this.client.joinCluster({ joinToken, agentVersion: this.options.version }, { timeoutMs: CALL_TIMEOUT_MS, signal: this.stop.signal });
    this.spentJoinTokens.add(joinToken);
    if (!answer.credential?.token || !answer.credential.expireTime) throw new Fatal("the control plane's JoinCluster answer holds no credential", AGENT_EXIT.REFUSED);
    const credential: StoredCredential = {
      token: answer.credential.token,
      expireTime: timestampDate(answer.credential.expireTime),
      issueTime: new Date(),
      org: answer.org,
      cluster: answer.cluster,
      controlPlane: this.options.controlPlane,
    };
    this.credential = credential;
    this.keep(credential);
    this.logger.info(
      { org: answer.org, cluster: answer.cluster, credentialFile: this.options.credentialFile, expireTime: credential.expireTime.toISOString() },
      `agent: joined cluster ${answer.cluster}; credential kept in ${this.options.credentialFile}`,
    );
  }

  /** Writes the credential file; a failure is logged (the credential still works in memory until the agent stops). */
  private keep(credential: StoredCredential): boolean {
    try {
      writeCredentialFile(this.options.credentialFile, credential);
      return true;
    } catch (error) {
      this.logger.error({ credentialFile: this.options.credentialFile }, `agent: ${(error as Error).message}; after a restart the agent will need a new join token`);
      return false;
    }
  }

  /**
   * The control plane refused the credential (revoked, expired, the cluster deleted). With a join
   * token not yet spent, the agent joins again once; otherwise it exits so that a supervisor can
   * restart it with a fresh join token. Resolves true when the agent may go on.
   */
  private credentialRefused(error: ConnectError, where: string): Promise<boolean> {
    if (this.rejoining) return this.rejoining;
    const rejoin = async (): Promise<boolean> => {
      const refused = this.credential?.token;
      const joinToken = this.options.joinToken();
      const reason = `the control plane refused the agent credential on ${where}: ${error.rawMessage}`;
      if (!joinToken || this.spentJoinTokens.has(joinToken)) {
        this.fail(
          new Fatal(
            `${reason}. It was revoked or expired, or the cluster was deleted: restart the agent with a new join token ` +
              "(`clusterplane create join-token --cluster NAME`)",
            AGENT_EXIT.REFUSED,
          ),
        );
        return false;
      }
      // Another call may have been refused with the old credential after a rejoin already replaced it.
      if (refused !== this.credential?.token) return true;
      this.logger.warn({}, `agent: ${reason}; joining again with the join token`);
      try {
        await this.joinWithRetry(joinToken);
      } catch (failure) {
        if (failure instanceof Fatal) this.fail(failure);
        else throw failure;
        return false;
      }
      return !this.stopped;
    };
    this.rejoining = rejoin().finally(() => {
      this.rejoining = null;
    });
    return this.rejoining;
  }

  // ---- the desired-state stream ----

  private async streamLoop(): Promise<void> {
    const backoff = new Backoff(this.options.backoff);
    while (!this.stopped) {
      const openedAt = Date.now();
      let messages = 0;
      let problem: string;
      // Resumed with a digest the control plane still has, the stream sends nothing (not even its
      // headers) until the state changes: one that has not failed within a second is taken as open.
      const resumed = this.state;
      const openTimer = resumed
        ? setTimeout(() => {
            if (messages === 0 && !this.stopped) {
              this.logger.info({ objects: resumed.desired.objects.length, digest: resumed.digest }, `agent: connected; desired state unchanged (${resumed.desired.objects.length} objects)`);
            }
          }, RESUMED_OPEN_MS)
        : undefined;
      try {
        const stream = this.client.watchDesiredState({ knownDigest: resumed?.digest ?? "" }, { signal: this.stop.signal });
        for await (const message of stream) {
          messages++;
          backoff.reset();
          this.accept(message, messages === 1);
        }
        if (this.stopped) return;
        problem = "the control plane ended the desired-state stream (shutting down or handing over)";
      } catch (error) {
        if (this.stopped) return;
        const failure = ConnectError.from(error);
        if (failure.code === Code.Unauthenticated) {
          if (await this.credentialRefused(failure, "the desired-state stream")) continue;
          return;
        }
        problem = `${codeName(failure.code)}: ${failure.rawMessage}`;
      } finally {
        clearTimeout(openTimer);
      }
      if (messages > 0 || Date.now() - openedAt >= STREAM_HEALTHY_MS) backoff.reset();
      const wait = backoff.next();
      this.logger.warn({ error: problem, retryInMs: wait }, `agent: control plane unreachable; retrying in ${describeWait(wait)}`);
      await sleep(wait, this.stop.signal);
    }
  }

  private accept(message: WatchDesiredStateResponse, firstOnConnection: boolean): void {
    const received = receivedState(message);
    for (const problem of received.problems) this.logger.warn({ problem }, "agent: an object of the desired state cannot be applied; left out");
    // On first contact the control plane's record says what is there; from then on, the agent's own.
    if (this.applied === null) this.applied = new Map(received.appliedHashes);
    this.state = received;
    const fields = { objects: received.desired.objects.length, projectDomains: received.desired.pairs.length, revision: String(received.revision), digest: received.digest };
    if (firstOnConnection) this.logger.info(fields, `agent: connected; desired state ${received.desired.objects.length} objects`);
    else this.logger.info(fields, `agent: desired state changed; ${received.desired.objects.length} objects`);
    this.wantPass();
  }

  // ---- passes ----

  private wantPass(): void {
    this.passWanted = true;
    this.wakePasses();
  }

  /** Waits until a pass is wanted, `ms` passed or the agent stops. */
  private async passDue(ms: number): Promise<void> {
    if (this.passWanted || this.stopped) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stop.signal.removeEventListener("abort", done);
        this.wakePasses = () => undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakePasses = done;
      this.stop.signal.addEventListener("abort", done, { once: true });
    });
  }

  private async passLoop(): Promise<void> {
    // After a pass that could not reach the cluster: retried sooner than the interval.
    const retry = new Backoff({ initialMs: 1_000, maxMs: this.options.intervalMs, factor: 2, jitter: 0.2 });
    let waitMs = this.options.intervalMs;
    while (!this.stopped) {
      await this.passDue(waitMs);
      if (this.stopped) return;
      this.passWanted = false;
      const state = this.state;
      if (!state) {
        waitMs = this.options.intervalMs;
        continue;
      }
      const result = await this.pass(state);
      if (!result || this.stopped) continue;
      if (result.outcome.failure) waitMs = Math.max(retry.next(), result.retryAfterMs);
      else {
        retry.reset();
        waitMs = this.options.intervalMs;
      }
      await this.report(state, result.outcome);
    }
  }

  /** One reconcile pass over `state`; undefined when it was aborted (the agent is stopping). */
  private async pass(state: ReceivedState): Promise<PassResult | undefined> {
    const full = this.options.fullResyncMs > 0 && Date.now() - this.lastFullAt >= this.options.fullResyncMs;
    const applied = this.applied ?? new Map<string, string>();
    this.applied = applied;
    const appliedHashes = new Map(applied);
    const startedAt = new Date();
    let target: KubeTarget;
    let result: PassResult;
    try {
      target = readKubeTarget(this.options.kube);
    } catch (error) {
      const message = `${(error as Error).message}; nothing was sent to the cluster`;
      result = passNotStarted({ desired: state.desired, appliedHashes, full }, { kind: "credentials", message }, startedAt);
      this.logPass(result);
      return result;
    }
    result = await reconcilePass(
      {
        desired: state.desired,
        appliedHashes,
        full,
        applier: this.connectionFor(target.credentials),
        requestsInFlight: this.options.requestsInFlight,
        requestTimeoutMs: this.options.requestTimeoutMs,
        names: target.names,
        recordApplied: (objects) => {
          for (const { key, hash } of objects) {
            applied.set(key, hash);
            this.unreported.set(key, hash);
          }
        },
      },
      this.stop.signal,
    );
    if (result.aborted) return undefined;
    if (full && !result.outcome.failure) this.lastFullAt = Date.now();
    this.logPass(result);
    return result;
  }

  private connectionFor(credentials: Credentials): KubeConnection {
    const current = this.connection?.credentials;
    if (!this.connection || !current || current.endpoint !== credentials.endpoint || current.token !== credentials.token || current.caPem !== credentials.caPem) {
      this.connection?.close();
      this.connection = new KubeConnection(credentials, { requestTimeoutMs: this.options.requestTimeoutMs, maxSockets: this.options.requestsInFlight });
    }
    return this.connection;
  }

  private logPass({ outcome }: PassResult): void {
    const durationMs = outcome.finishedAt.getTime() - outcome.startedAt.getTime();
    const failed = outcome.objectsFailed;
    const fields = {
      applied: outcome.applied,
      unchanged: outcome.unchanged,
      failed,
      full: outcome.full,
      provisioned: outcome.provisioned.length,
      desired: outcome.desired.length,
      durationMs,
    };
    const counts = `applied ${outcome.applied}, unchanged ${outcome.unchanged}, failed ${failed}`;
    if (outcome.failure) {
      this.logger.warn({ ...fields, failureKind: outcome.failure.kind, error: outcome.failure.message }, `agent: pass failed (${outcome.failure.kind}): ${outcome.failure.message}`);
    } else if (failed > 0) {
      this.logger.warn({ ...fields, error: `${outcome.objectFailures[0]?.key}: ${outcome.objectFailures[0]?.message}` }, `agent: pass done: ${counts}`);
    } else {
      this.logger.info(fields, `agent: pass done: ${counts}`);
    }
  }

  /** ReportStatus; a report that cannot be delivered is owed, and its applied objects go with the next. */
  private async report(state: ReceivedState, outcome: PassOutcome): Promise<void> {
    const applied = [...this.unreported].map(([key, hash]) => ({ key, hash }));
    try {
      await this.client.reportStatus(
        {
          digest: state.digest,
          startTime: timestampFromDate(outcome.startedAt),
          finishTime: timestampFromDate(outcome.finishedAt),
          full: outcome.full,
          applied,
          unchanged: outcome.unchanged,
          failure: outcome.failure ? { kind: outcome.failure.kind, message: outcome.failure.message } : undefined,
          objectsFailed: outcome.objectsFailed,
          objectFailures: outcome.objectFailures.map(({ key, kind, message }) => ({ key, kind, message })),
          provisioned: outcome.provisioned.map(({ project, domain }) => ({ project, domain })),
          agentVersion: this.options.version,
        },
        { timeoutMs: CALL_TIMEOUT_MS, signal: this.stop.signal },
      );
      for (const { key, hash } of applied) if (this.unreported.get(key) === hash) this.unreported.delete(key);
      this.reportOwed = false;
    } catch (error) {
      if (this.stopped) return;
      const failure = ConnectError.from(error);
      if (failure.code === Code.Unauthenticated) {
        this.reportOwed = true;
        if (await this.credentialRefused(failure, "ReportStatus")) this.wantPass();
        return;
      }
      this.reportOwed = true;
      this.logger.warn({ error: failure.rawMessage, code: codeName(failure.code) }, "agent: could not report the pass; it is reported again once the control plane answers");
    }
  }

  // ---- the heartbeat and rotation ----

  private async heartbeatLoop(): Promise<void> {
    let warnedLease = false;
    let failing = false;
    while (!this.stopped) {
      try {
        const answer = await this.client.renewLease({ agentVersion: this.options.version }, { timeoutMs: Math.min(CALL_TIMEOUT_MS, Math.max(5_000, this.options.heartbeatMs)), signal: this.stop.signal });
        if (failing) this.logger.info({}, "agent: lease renewed again");
        failing = false;
        if (!warnedLease && answer.leaseSeconds > 0 && answer.leaseSeconds * 1000 < this.options.heartbeatMs * 2) {
          warnedLease = true;
          this.logger.warn({ leaseSeconds: answer.leaseSeconds, heartbeatMs: this.options.heartbeatMs }, `agent: --heartbeat is too slow for the control plane's ${answer.leaseSeconds} s lease; the cluster may be taken out of routing`);
        }
        // The control plane answers again: a report lost while it was away is sent now.
        if (this.reportOwed && this.state) this.wantPass();
        await this.rotateIfDue();
      } catch (error) {
        if (this.stopped) return;
        const failure = ConnectError.from(error);
        if (failure.code === Code.Unauthenticated) {
          if (!(await this.credentialRefused(failure, "RenewLease"))) return;
          continue;
        }
        if (!failing) this.logger.warn({ error: failure.rawMessage, code: codeName(failure.code) }, "agent: could not renew the lease; trying again every heartbeat");
        failing = true;
      }
      await sleep(this.options.heartbeatMs, this.stop.signal);
    }
  }

  private async rotateIfDue(): Promise<void> {
    const credential = this.credential;
    if (!credential || !needsRotation(credential) || Date.now() < this.nextRotationTry) return;
    this.nextRotationTry = Date.now() + ROTATION_RETRY_MS;
    let answer;
    try {
      answer = await this.client.rotateCredential({}, { timeoutMs: CALL_TIMEOUT_MS, signal: this.stop.signal });
    } catch (error) {
      if (this.stopped) return;
      const failure = ConnectError.from(error);
      if (failure.code === Code.Unauthenticated) throw error;
      this.logger.warn({ error: failure.rawMessage, code: codeName(failure.code) }, `agent: could not rotate the agent credential (it expires at ${credential.expireTime.toISOString()}); trying again in an hour`);
      return;
    }
    if (!answer.credential?.token || !answer.credential.expireTime) return;
    const next: StoredCredential = { ...credential, token: answer.credential.token, expireTime: timestampDate(answer.credential.expireTime), issueTime: new Date() };
    // The old credential stays valid until its own expiry: if the new one cannot be kept, keep using the old.
    if (!this.keep(next)) return;
    this.credential = next;
    this.nextRotationTry = 0;
    this.logger.info({ expireTime: next.expireTime.toISOString(), credentialFile: this.options.credentialFile }, "agent: rotated the agent credential");
  }
}

/** Refusals of a join token: asking again will not help. */
function isRefusal(error: ConnectError): boolean {
  return [Code.Unauthenticated, Code.InvalidArgument, Code.PermissionDenied, Code.NotFound, Code.FailedPrecondition].includes(error.code);
}

/** `UNAVAILABLE`, as the API documentation spells codes. */
function codeName(code: Code): string {
  return grpcStatusName(Code[code] ?? String(code));
}
