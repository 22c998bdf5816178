import { afterEach, describe, expect, it, vi } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { Health } from "../../gen/health/v1/health_pb.js";
import { HealthStatus, registerHealth, ServingStatus } from "../../src/server/health.js";

const POOLS = "clusterplane.v1.ClusterPoolService";

function setup() {
  const health = new HealthStatus();
  const client = createClient(Health, createRouterTransport((router) => registerHealth(router, health)));
  return { health, client };
}

/** Reads a Watch stream one response at a time, so the test can act between responses. */
function watch(client: ReturnType<typeof setup>["client"], service: string, signal?: AbortSignal) {
  const iterator = client.watch({ service }, { signal })[Symbol.asyncIterator]();
  return {
    async next(): Promise<ServingStatus | "ended"> {
      const result = await iterator.next();
      return result.done ? "ended" : result.value.status;
    },
  };
}

/** Counts the handler's live change subscriptions, to know when a Watch is parked waiting. */
function countListeners(health: HealthStatus): () => number {
  let listening = 0;
  const subscribe = health.subscribe.bind(health);
  vi.spyOn(health, "subscribe").mockImplementation((listener) => {
    listening++;
    const unsubscribe = subscribe(listener);
    return () => {
      listening--;
      unsubscribe();
    };
  });
  return () => listening;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("grpc.health.v1.Health", () => {
  it("reports the server as a whole SERVING from the start", async () => {
    const { client } = setup();
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.SERVING);
  });

  it("reports a service's status once set", async () => {
    const { health, client } = setup();
    health.set(POOLS, ServingStatus.NOT_SERVING);
    expect((await client.check({ service: POOLS })).status).toBe(ServingStatus.NOT_SERVING);
  });

  it("answers Check for an unknown service with NOT_FOUND", async () => {
    const { client } = setup();
    const error = await client.check({ service: "no.Such" }).catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
  });

  it("lists every known status", async () => {
    const { health, client } = setup();
    health.set(POOLS, ServingStatus.SERVING);
    const { statuses } = await client.list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([name, r]) => [name, r.status]))).toEqual({
      "": ServingStatus.SERVING,
      [POOLS]: ServingStatus.SERVING,
    });
  });

  it("Watch sends the current status, then each change", async () => {
    const { health, client } = setup();
    const listening = countListeners(health);
    health.set(POOLS, ServingStatus.SERVING);
    const stream = watch(client, POOLS);
    expect(await stream.next()).toBe(ServingStatus.SERVING);

    // A change while the handler is still at its last yield.
    health.set("", ServingStatus.NOT_SERVING); // another service: not this stream's business
    health.set(POOLS, ServingStatus.NOT_SERVING);
    expect(await stream.next()).toBe(ServingStatus.NOT_SERVING);

    // A change while the handler is parked waiting for one.
    const next = stream.next();
    await vi.waitFor(() => expect(listening()).toBe(1));
    health.set("", ServingStatus.SERVING);
    health.set(POOLS, ServingStatus.SERVING);
    expect(await next).toBe(ServingStatus.SERVING);
  });

  it("Watch of an unknown service sends SERVICE_UNKNOWN and keeps watching", async () => {
    const { health, client } = setup();
    const stream = watch(client, POOLS);
    expect(await stream.next()).toBe(ServingStatus.SERVICE_UNKNOWN);
    health.set(POOLS, ServingStatus.SERVING);
    expect(await stream.next()).toBe(ServingStatus.SERVING);
  });

  it("shutdown sends NOT_SERVING, ends Watch streams cleanly and ignores later updates", async () => {
    const { health, client } = setup();
    const listening = countListeners(health);
    const overall = watch(client, "");
    const unknown = watch(client, "no.Such");
    expect(await overall.next()).toBe(ServingStatus.SERVING);
    expect(await unknown.next()).toBe(ServingStatus.SERVICE_UNKNOWN);
    const [overallNext, unknownNext] = [overall.next(), unknown.next()];
    await vi.waitFor(() => expect(listening()).toBe(2));

    health.shutdown();
    expect(await overallNext).toBe(ServingStatus.NOT_SERVING);
    expect(await overall.next()).toBe("ended");
    expect(await unknownNext).toBe("ended");
    expect(listening()).toBe(0);

    health.set("", ServingStatus.SERVING);
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    expect(await watch(client, "").next()).toBe(ServingStatus.NOT_SERVING);
  });

  it("shutdown also ends a Watch whose reader has not caught up", async () => {
    const { health, client } = setup();
    const stream = watch(client, "");
    expect(await stream.next()).toBe(ServingStatus.SERVING);
    health.shutdown();
    expect(await stream.next()).toBe(ServingStatus.NOT_SERVING);
    expect(await stream.next()).toBe("ended");
  });

  it("stops listening for changes when the client goes away", async () => {
    const { health, client } = setup();
    const listening = countListeners(health);
    const abort = new AbortController();
    const stream = watch(client, "", abort.signal);
    expect(await stream.next()).toBe(ServingStatus.SERVING);
    // Asking for the next response lets the handler get past its yield and start waiting.
    const pending = stream.next();
    await vi.waitFor(() => expect(listening()).toBe(1));

    abort.abort();
    await expect(pending).rejects.toMatchObject({ code: Code.Canceled });
    await vi.waitFor(() => expect(listening()).toBe(0));
  });
});
