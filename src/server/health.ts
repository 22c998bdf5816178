import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { throwIfDeadlinePassed } from "../services/errors.js";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/health/v1/health_pb.js";

export { ServingStatus };

export type HealthListener = (service: string, status: ServingStatus) => void;

/**
 * Serving status per service name, as grpc.health.v1 reports it. The empty name is the server
 * as a whole and starts SERVING, so a load balancer can route to us as soon as we listen.
 */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>([["", ServingStatus.SERVING]]);
  private readonly listeners = new Set<HealthListener>();
  private readonly stopping = new AbortController();

  /** Aborts when `shutdown()` is called; Watch streams end on it. */
  get stopped(): AbortSignal {
    return this.stopping.signal;
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  all(): ReadonlyMap<string, ServingStatus> {
    return this.statuses;
  }

  set(service: string, status: ServingStatus): void {
    // Like grpc-go: once shutting down, a late set() must not tell balancers we serve again.
    if (this.stopped.aborted || this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const listener of this.listeners) listener(service, status);
  }

  /** Calls `listener` on every change; returns the unsubscribe function. */
  subscribe(listener: HealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Marks every service NOT_SERVING, then ends open Watch streams; later set() calls are ignored. */
  shutdown(): void {
    for (const service of this.statuses.keys()) this.set(service, ServingStatus.NOT_SERVING);
    this.stopping.abort();
  }
}

export function registerHealth(router: ConnectRouter, health: HealthStatus): void {
  router.service(Health, healthService(health));
}

/** grpc.health.v1.Health over `health`. */
export function healthService(health: HealthStatus): ServiceImpl<typeof Health> {
  return {
    check({ service }) {
      const status = health.get(service);
      if (status === undefined) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
      return { status };
    },

    async *watch({ service }, context) {
      // Only the latest status is sent after a wake-up, so a client that reads slowly sees the
      // current state rather than a backlog of stale ones (grpc-go does the same).
      let sent: ServingStatus | undefined;
      while (!context.signal.aborted) {
        const status = health.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (status !== sent) {
          sent = status;
          yield { status };
          // A yield can wait on a slow reader; whatever changed meanwhile (shutdown's final
          // NOT_SERVING included) was announced to nobody, so look again before waiting.
          continue;
        }
        if (health.stopped.aborted) return;
        await nextChange(health, service, context.signal);
      }
      throwIfDeadlinePassed(context.signal);
    },

    list() {
      const statuses = Object.fromEntries([...health.all()].map(([service, status]) => [service, { status }]));
      return { statuses };
    },
  };
}

/** Resolves when `service` changes, the server shuts down or the client goes away. */
function nextChange(health: HealthStatus, service: string, clientGone: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      unsubscribe();
      clientGone.removeEventListener("abort", done);
      health.stopped.removeEventListener("abort", done);
      resolve();
    };
    const unsubscribe = health.subscribe((changed) => {
      if (changed === service) done();
    });
    clientGone.addEventListener("abort", done);
    health.stopped.addEventListener("abort", done);
  });
}
