/**
 * Stand-in Kubernetes API servers in a worker thread, so that in the sync benchmarks the "clusters"
 * do not share an event loop with the control plane measuring them — as real API servers would not.
 */
import { parentPort, Worker } from "node:worker_threads";
import { StandInApiServer, type Fault, type RequestFault } from "../test/support/kube/stand-in-apiserver.js";

type Command =
  | { id: number; op: "start"; count: number }
  | { id: number; op: "fault"; index: number; fault: Fault }
  | { id: number; op: "fail-requests"; index: number; fault: RequestFault }
  | { id: number; op: "counters" }
  | { id: number; op: "stop" };

type CommandInput = Command extends infer C ? (C extends Command ? Omit<C, "id"> : never) : never;

export interface RemoteApi {
  url: string;
  token: string;
  caCertPem: string;
}

if (parentPort) {
  const port = parentPort;
  let apis: StandInApiServer[] = [];
  port.on("message", async (command: Command) => {
    let result: unknown = null;
    if (command.op === "start") {
      apis = await Promise.all(
        Array.from({ length: command.count }, () => StandInApiServer.start({ systemNamespaces: false, defaultServiceAccounts: false })),
      );
      result = apis.map((api) => ({ url: api.url, token: api.token, caCertPem: api.caCertPem }));
    } else if (command.op === "fault") {
      await apis[command.index]!.setFault(command.fault);
    } else if (command.op === "fail-requests") {
      apis[command.index]!.failRequests(command.fault);
    } else if (command.op === "counters") {
      result = {
        requests: apis.reduce((sum, api) => sum + api.requestCount, 0),
        writes: apis.reduce((sum, api) => sum + api.writeCount, 0),
      };
      for (const api of apis) api.resetCounters();
    } else if (command.op === "stop") {
      await Promise.all(apis.map((api) => api.stop()));
    }
    port.postMessage({ id: command.id, result });
  });
}

/** The main thread's handle on a worker full of stand-ins. */
export class StandInFleet {
  // The entry registers tsx's loader in the worker thread before loading this file there.
  private readonly worker = new Worker(new URL("./stand-in-worker.mjs", import.meta.url));
  private nextId = 0;

  private call<T>(command: CommandInput): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const onMessage = (message: { id: number; result: T }) => {
        if (message.id !== id) return;
        this.worker.off("message", onMessage);
        resolve(message.result);
      };
      this.worker.on("message", onMessage);
      this.worker.postMessage({ ...command, id });
    });
  }

  start(count: number): Promise<RemoteApi[]> {
    return this.call({ op: "start", count });
  }

  setFault(index: number, fault: Fault): Promise<void> {
    return this.call({ op: "fault", index, fault });
  }

  /** Makes one stand-in answer matching requests with an error (RBAC's 403, 429, …). */
  failRequests(index: number, fault: RequestFault): Promise<void> {
    return this.call({ op: "fail-requests", index, fault });
  }

  /** Requests and writes received since the last call. */
  counters(): Promise<{ requests: number; writes: number }> {
    return this.call({ op: "counters" });
  }

  async stop(): Promise<void> {
    await this.call({ op: "stop" });
    await this.worker.terminate();
  }
}
