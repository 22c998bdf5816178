import type http2 from "node:http2";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { identityKey, type Identity } from "./auth.js";

/**
 * The HandlerContext of a call on the lean gRPC path. Our unary handlers read none of it, so
 * every part is made on first use: no AbortController, Headers or context values per call unless
 * a handler asks for them.
 */
export class LeanContext implements HandlerContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  private readonly deadlineAt: number | undefined;
  private controller: AbortController | undefined;
  private abortedWith: { reason: unknown } | undefined;
  private requestHeaders: Headers | undefined;
  private responseHeaders: Headers | undefined;
  private responseTrailers: Headers | undefined;
  private contextValues: ContextValues | undefined;

  constructor(
    readonly method: DescMethod,
    private readonly headers: http2.IncomingHttpHeaders,
    timeoutMs: number | undefined,
    /** Its identity is known once the caller is authenticated, after the context is made. */
    private readonly call: { identity?: Identity },
  ) {
    this.deadlineAt = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  }

  get service(): DescService {
    return this.method.parent;
  }

  /** Aborts when the call ends: answered, failed, past its deadline, or cancelled by the caller. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortedWith) this.controller.abort(this.abortedWith.reason);
    }
    return this.controller.signal;
  }

  readonly timeoutMs = (): number | undefined => (this.deadlineAt === undefined ? undefined : this.deadlineAt - Date.now());

  get requestHeader(): Headers {
    if (!this.requestHeaders) {
      this.requestHeaders = new Headers();
      for (const [name, value] of Object.entries(this.headers)) {
        if (name.startsWith(":") || value === undefined) continue;
        this.requestHeaders.set(name, Array.isArray(value) ? value.join(", ") : value);
      }
    }
    return this.requestHeaders;
  }

  get responseHeader(): Headers {
    return (this.responseHeaders ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.responseTrailers ??= new Headers());
  }

  get values(): ContextValues {
    if (!this.contextValues) {
      this.contextValues = createContextValues();
      if (this.call.identity) this.contextValues.set(identityKey, this.call.identity);
    }
    return this.contextValues;
  }

  get url(): string {
    return `http://${this.headers[":authority"] ?? this.headers.host ?? ""}${this.headers[":path"] ?? ""}`;
  }

  abort(reason: unknown): void {
    this.abortedWith ??= { reason };
    this.controller?.abort(reason);
  }

  /** What a handler set in responseHeader, added to the outgoing headers. */
  copyResponseHeader(target: http2.OutgoingHttpHeaders): void {
    this.responseHeaders?.forEach((value, name) => (target[name] = value));
  }

  copyResponseTrailer(target: http2.OutgoingHttpHeaders): void {
    this.responseTrailers?.forEach((value, name) => (target[name] = value));
  }
}
