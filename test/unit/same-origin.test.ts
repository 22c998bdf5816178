import { describe, expect, it } from "vitest";
import type http from "node:http";
import { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { isSameOrigin } from "../../src/server/http-routes.js";

function request(host: string, tls = false): http.IncomingMessage {
  const socket = tls ? Object.create(TLSSocket.prototype) : new Socket();
  return { headers: { host }, socket } as unknown as http.IncomingMessage;
}

describe("same-origin requests (the console served by the server itself)", () => {
  it("accepts the request's own scheme, host and port", () => {
    expect(isSameOrigin(request("127.0.0.1:8080"), "http://127.0.0.1:8080")).toBe(true);
    expect(isSameOrigin(request("cp.example.com"), "http://cp.example.com")).toBe(true);
    expect(isSameOrigin(request("cp.example.com:8443", true), "https://cp.example.com:8443")).toBe(true);
    expect(isSameOrigin(request("[::1]:8080"), "http://[::1]:8080")).toBe(true);
  });

  it("refuses another scheme, host or port, and anything that is not a serialized origin", () => {
    expect(isSameOrigin(request("cp.example.com:8443", true), "http://cp.example.com:8443")).toBe(false);
    expect(isSameOrigin(request("cp.example.com:8443"), "https://cp.example.com:8443")).toBe(false);
    expect(isSameOrigin(request("127.0.0.1:8080"), "http://127.0.0.1:8081")).toBe(false);
    expect(isSameOrigin(request("127.0.0.1:8080"), "http://localhost:8080")).toBe(false);
    expect(isSameOrigin(request("cp.example.com"), "http://cp.example.com.evil.example")).toBe(false);
    expect(isSameOrigin(request("cp.example.com"), "http://evil.example")).toBe(false);
    expect(isSameOrigin(request("cp.example.com"), "null")).toBe(false);
    expect(isSameOrigin(request("cp.example.com"), "http://cp.example.com/")).toBe(false);
    expect(isSameOrigin(request("cp.example.com"), "http://user@cp.example.com")).toBe(false);
    expect(isSameOrigin(request("cp.example.com"), "http://cp.example.com:80")).toBe(false);
    expect(isSameOrigin(request(""), "http://")).toBe(false);
  });
});
