import { request as httpRequest, type IncomingMessage } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import { getAbortSignalReason, type UniversalClientFn } from "@connectrpc/connect/protocol";

/**
 * The CLI's HTTP/1.1 client for the Connect protocol: one request per call, nothing more.
 * connect-node's client would do too, but it loads `http2`, `https`, `tls` and `zlib` whatever
 * the endpoint, a sizeable part of a short command's start-up; here `https` is loaded only for an
 * https endpoint, and responses are not compressed (the CLI does not offer compression).
 */
export function createHttp1Client(): UniversalClientFn {
  return async (request) => {
    const url = new URL(request.url);
    const send = url.protocol === "https:" ? (await import("node:https")).request : httpRequest;
    const chunks: Uint8Array[] = [];
    for await (const chunk of request.body ?? []) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const headers: Record<string, string> = { "content-length": String(body.length) };
    request.header.forEach((value, key) => (headers[key] = value));
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = send(url, { method: request.method, headers, signal: request.signal }, resolve);
      outgoing.once("error", (error: NodeJS.ErrnoException) => {
        if (request.signal?.aborted) reject(ConnectError.from(getAbortSignalReason(request.signal)));
        // No answer came back (refused, unresolvable, TLS failed): the CLI says where it tried (exit 4).
        else reject(new ConnectError(error.message, Code.Unavailable, undefined, undefined, error));
      });
      outgoing.end(body);
    });
    const header = new Headers();
    for (const [key, value] of Object.entries(response.headers)) {
      for (const item of Array.isArray(value) ? value : [value ?? ""]) header.append(key, item);
    }
    return { status: response.statusCode ?? 0, header, body: response, trailer: new Headers() };
  };
}
