import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { DomainError } from "../core/errors.js";
import { procedureKind, type ProcedureKind } from "../core/roles.js";
import { toConnectError } from "../services/errors.js";
import { identityKey, peerKey, type Authenticator, type Identity, type PeerCertificate } from "./auth.js";
import type { Logger, RpcLogSettings } from "./logging.js";
import { grpcCodeName, type ServerMetrics } from "./metrics.js";

/** One RPC in flight, from either transport. */
export interface Call {
  readonly method: DescMethod;
  readonly procedure: string;
  readonly kind: ProcedureKind;
  /** The caller's `x-request-id`, or a new one; echoed back in headers or trailers. */
  readonly requestId: string;
  readonly started: bigint;
  /** Set once authenticated; unset when auth is off or the procedure is open to all. */
  identity?: Identity;
}

interface MethodFacts {
  procedure: string;
  kind: ProcedureKind;
}

/**
 * What every RPC goes through, whichever transport carried it (connect-node through
 * `rpcInterceptor`, or the lean gRPC path): authentication and the role check, one metrics
 * sample, and the log line the policy asks for. One copy of each rule, so both transports
 * answer alike.
 */
export class RpcCalls {
  private readonly facts = new WeakMap<DescMethod, MethodFacts>();

  constructor(
    private readonly auth: Authenticator,
    private readonly metrics: ServerMetrics,
    private readonly logger: Logger,
    private readonly log: RpcLogSettings,
  ) {}

  begin(method: DescMethod, requestId: string | null | undefined): Call {
    const { procedure, kind } = this.factsOf(method);
    return { method, procedure, kind, requestId: requestId || randomUUID(), started: process.hrtime.bigint() };
  }

  /**
   * Throws UNAUTHENTICATED without valid credentials, PERMISSION_DENIED when the caller's role
   * lacks the right; grpc.health.v1 stays open to all.
   */
  admit(call: Call, authorization: string | null | undefined, peer: PeerCertificate | undefined): void {
    if (!this.auth.enabled || call.kind === "open") return;
    const outcome = this.auth.authenticate(authorization ?? null, peer);
    if ("code" in outcome) throw new ConnectError(outcome.message, outcome.code);
    call.identity = outcome.identity;
    const denied = this.auth.authorize(outcome.identity, call.kind, call.procedure);
    if (denied) throw new ConnectError(denied, Code.PermissionDenied);
  }

  /**
   * Records the outcome: a metrics sample always, a log line when the policy asks for one.
   * `fault` "caller": the request was malformed before any handler ran — gRPC's own INTERNAL for a
   * compressed message without grpc-encoding among them — so it is no bug of ours to log as one.
   */
  end(call: Call, error: ConnectError | undefined, fault?: "caller"): void {
    const durationMs = Number(process.hrtime.bigint() - call.started) / 1e6;
    const code = error?.code ?? null;
    this.metrics.observeRpc(call.method.parent.typeName, call.method.name, code, durationMs / 1000);
    const bug = fault !== "caller" && (code === Code.Internal || code === Code.Unknown);
    if (!bug && !this.wantsLine(call, code, durationMs)) return;
    const fields: Record<string, unknown> = { requestId: call.requestId, procedure: call.procedure };
    if (call.identity) Object.assign(fields, { caller: call.identity.name, role: call.identity.role });
    Object.assign(fields, { durationMs, code: grpcCodeName(code) });
    if (error) fields.error = error.rawMessage;
    this.logger[bug ? "error" : "info"](fields, "rpc");
  }

  /** Bugs (INTERNAL, UNKNOWN) are logged whatever the policy; see RPC_LOG_POLICIES for the rest. */
  private wantsLine(call: Call, code: Code | null, durationMs: number): boolean {
    switch (this.log.calls) {
      case "all":
        return true;
      case "none":
        return false;
      case "notable":
        return code !== null || call.kind === "write" || durationMs >= this.log.slowMs;
    }
  }

  private factsOf(method: DescMethod): MethodFacts {
    let facts = this.facts.get(method);
    if (!facts) {
      const service = method.parent.typeName;
      const sideEffectFree = method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
      facts = { procedure: `${service}/${method.name}`, kind: procedureKind({ service, method: method.name, sideEffectFree }) };
      this.facts.set(method, facts);
    }
    return facts;
  }
}

/** What a handler threw, as the status the caller gets: domain errors carry their code and field violations. */
export function statusOf(error: unknown): ConnectError {
  return error instanceof DomainError ? toConnectError(error) : ConnectError.from(error);
}

/** RpcCalls for connect-node: outermost, so metrics and logs see every call, those auth refuses too. */
export function rpcInterceptor(calls: RpcCalls): Interceptor {
  return (next) => async (request) => {
    const call = calls.begin(request.method, request.header.get("x-request-id"));
    try {
      calls.admit(call, request.header.get("authorization"), request.contextValues.get(peerKey));
      if (call.identity) request.contextValues.set(identityKey, call.identity);
      const response = await next(request);
      response.header.set("x-request-id", call.requestId);
      calls.end(call, undefined);
      return response;
    } catch (error) {
      const status = statusOf(error);
      status.metadata.set("x-request-id", call.requestId);
      calls.end(call, status);
      throw status;
    }
  };
}
