import { createConnection, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of a server (PostgreSQL), to take a client's connection away the two ways
 * networks do: `cut()` resets every connection and refuses new ones (the server went away);
 * `blackhole()` keeps every socket open but moves no more bytes (a partition: nothing fails,
 * everything hangs).
 */
export class TcpProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  /** Connections accepted while blackholed: held open, never forwarded. */
  private readonly held = new Set<Socket>();
  private mode: "forward" | "blackhole" | "cut" = "forward";

  private constructor(private readonly server: Server) {}

  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server);
    server.on("connection", (client) => proxy.accept(client, targetHost, targetPort));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get port(): number {
    const address = this.server.address();
    if (!address || typeof address === "string") throw new Error("the proxy is not listening");
    return address.port;
  }

  blackhole(): void {
    this.mode = "blackhole";
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  cut(): void {
    this.mode = "cut";
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
    for (const client of this.held) client.resetAndDestroy();
    this.held.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, host: string, port: number): void {
    client.on("error", () => undefined);
    if (this.mode === "cut") return void client.resetAndDestroy();
    if (this.mode === "blackhole") {
      client.pause();
      this.held.add(client);
      return;
    }
    const upstream = createConnection({ host, port });
    upstream.on("error", () => client.destroy());
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const forget = () => this.pairs.delete(pair);
    client.on("close", () => { forget(); upstream.destroy(); });
    upstream.on("close", () => { forget(); client.destroy(); });
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
