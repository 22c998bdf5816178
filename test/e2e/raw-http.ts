import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import type { SecureClientSessionOptions } from "node:http2";

/**
 * Clients that send exactly the bytes a test asks for (malformed headers, bodies, framing),
 * which the real client libraries refuse to produce.
 */

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  trailers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Set when the stream was reset or the connection failed instead of answering. */
  error?: string;
}

export interface H2Request {
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
}

/** One request on an HTTP/2 session; resolves with whatever came back, a reset included. */
export function h2Request(session: http2.ClientHttp2Session, request: H2Request, timeoutMs = 20_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const answer: RawAnswer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    const stream = session.request({ ":method": request.method ?? "POST", ":path": request.path, ...request.headers });
    const timer = setTimeout(() => {
      answer.error = `no end of the stream after ${timeoutMs} ms`;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, timeoutMs);
    stream.on("response", (headers) => {
      answer.status = Number(headers[":status"]);
      answer.headers = headers;
    });
    stream.on("trailers", (trailers) => (answer.trailers = trailers));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", (error) => (answer.error = error.message));
    stream.on("close", () => {
      clearTimeout(timer);
      answer.body = Buffer.concat(chunks);
      if (!answer.error && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && answer.status === 0) {
        answer.error = `stream reset (${stream.rstCode})`;
      }
      resolve(answer);
    });
    stream.end(request.body ? Buffer.from(request.body) : undefined);
  });
}

export function h2Connect(url: string, options: SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, options);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

/** One HTTP/1.1 request on a fresh connection (no agent), any Host header included. */
export function h1Request(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: Uint8Array; requestOptions?: https.RequestOptions },
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const target = new URL(url);
    const module = target.protocol === "https:" ? https : http;
    const request = module.request(
      {
        host: target.hostname,
        port: target.port,
        method: options.method ?? "POST",
        path: options.path,
        headers: options.headers,
        agent: false,
        ...options.requestOptions,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, trailers: response.trailers, body: Buffer.concat(chunks) }),
        );
        response.on("error", (error) => resolve({ status: response.statusCode ?? 0, headers: response.headers, trailers: {}, body: Buffer.concat(chunks), error: error.message }));
      },
    );
    request.on("error", (error) => resolve({ status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0), error: error.message }));
    request.end(options.body ? Buffer.from(options.body) : undefined);
  });
}

/** Writes `bytes` on a new TCP connection and collects everything until the server closes it. */
export function tcpExchange(port: number, bytes: string | Buffer, timeoutMs = 20_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed: false });
    }, timeoutMs);
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed: true });
    });
    socket.write(bytes);
  });
}

/** A gRPC (or gRPC-Web, Connect streaming) envelope: flags, 4-byte length, payload. */
export function envelope(payload: Uint8Array, flags = 0, declaredLength = payload.byteLength): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([head, payload]);
}

/** The gRPC status of an answer: trailers, else headers (trailers-only), else undefined. */
export function grpcStatus(answer: RawAnswer): number | undefined {
  const value = answer.trailers["grpc-status"] ?? answer.headers["grpc-status"];
  return value === undefined ? undefined : Number(value);
}

/** The gRPC-Web status: the trailer message at the end of the body, or trailers-only headers. */
export function grpcWebStatus(answer: RawAnswer): number | undefined {
  if (answer.headers["grpc-status"] !== undefined) return Number(answer.headers["grpc-status"]);
  let offset = 0;
  while (offset + 5 <= answer.body.length) {
    const flags = answer.body[offset]!;
    const length = answer.body.readUInt32BE(offset + 1);
    const data = answer.body.subarray(offset + 5, offset + 5 + length);
    if (flags & 0x80) {
      const match = /grpc-status:\s*(\d+)/i.exec(data.toString("latin1"));
      return match ? Number(match[1]) : undefined;
    }
    offset += 5 + length;
  }
  return undefined;
}

/** The Connect error code of a unary answer, or the end-of-stream error of a streaming one. */
export function connectCode(answer: RawAnswer): string | undefined {
  const type = String(answer.headers["content-type"] ?? "");
  try {
    if (type.startsWith("application/connect+")) {
      let offset = 0;
      while (offset + 5 <= answer.body.length) {
        const flags = answer.body[offset]!;
        const length = answer.body.readUInt32BE(offset + 1);
        if (flags & 0x02) return JSON.parse(answer.body.subarray(offset + 5, offset + 5 + length).toString("utf8")).error?.code ?? "ok";
        offset += 5 + length;
      }
      return undefined;
    }
    if (answer.status === 200) return "ok";
    return JSON.parse(answer.body.toString("utf8")).code;
  } catch {
    return undefined;
  }
}
