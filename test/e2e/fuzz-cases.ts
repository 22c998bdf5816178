import { brotliCompressSync, gzipSync } from "node:zlib";
import { fromJson, ScalarType, toBinary, type DescEnum, type DescField, type DescMessage, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { envelope } from "./raw-http.js";
import { pathOf } from "./gen-services.js";

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(below: number): number {
    return Math.floor(this.next() * below);
  }
  chance(probability: number): boolean {
    return this.next() < probability;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(length: number): Uint8Array {
    return Uint8Array.from({ length }, () => this.int(256));
  }
}

export type Transport = "grpc-h2" | "grpc-web-h1" | "grpc-web-h2" | "connect-h1" | "connect-h2" | "connect-stream-h2" | "connect-get-h1";

/** One request, exactly as it goes on the wire. */
export interface FuzzCase {
  index: number;
  transport: Transport;
  method: DescMethod;
  httpMethod: "POST" | "GET";
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array;
  /** What was done to it, for the report of a failure. */
  mutations: string[];
}

const STRINGS = [
  "",
  "prod",
  "default",
  "dataplane_1",
  "Prod",
  "-x-",
  "a".repeat(64),
  "x".repeat(20_000),
  "é😀\u0000\u202e",
  "../../etc/passwd",
  "/var/run/credentials/../../etc/shadow",
  "https://10.0.0.1:443",
  "https://x:99999",
  "s3://bucket/prefix",
  "' OR 1=1 --",
  "{{ project }}",
  "%zz",
  "1e309",
];
const NUMBERS: JsonValue[] = [0, 1, -1, 0.5, 2 ** 31, -(2 ** 63), 1e308, "NaN", "Infinity", "9223372036854775808", "12", "x", true, null];

/**
 * A JSON value for `message`, up to a few levels deep. Strict: every value of its field's type,
 * so the call reaches the handler; otherwise now and then of the wrong type, or an unknown key.
 */
export function randomJson(message: DescMessage, random: Random, strict: boolean, depth = 0): Record<string, JsonValue> {
  const json: Record<string, JsonValue> = {};
  for (const field of message.fields) {
    if (random.chance(0.5)) continue;
    json[strict || random.chance(0.9) ? field.jsonName : field.name] = fieldValue(field, random, strict, depth);
  }
  if (!strict && random.chance(0.05)) json[random.pick(["imageRegistri", "unknownField", "x".repeat(3000)])] = 1;
  return json;
}

function fieldValue(field: DescField, random: Random, strict: boolean, depth: number): JsonValue {
  const nested = (schema: DescMessage) => (depth < 3 ? randomJson(schema, random, strict, depth + 1) : {});
  switch (field.fieldKind) {
    case "scalar":
      return scalarValue(field.scalar, random, strict);
    case "enum":
      return enumValue(field.enum, random, strict);
    case "message":
      return nested(field.message);
    case "list":
      return Array.from({ length: random.int(4) }, () =>
        field.listKind === "message" ? nested(field.message) : field.listKind === "enum" ? enumValue(field.enum, random, strict) : scalarValue(field.scalar, random, strict),
      );
    case "map": {
      const entries: Record<string, JsonValue> = {};
      for (let i = random.int(3); i > 0; i--) {
        const value =
          field.mapKind === "message" ? nested(field.message) : field.mapKind === "enum" ? enumValue(field.enum, random, strict) : scalarValue(field.scalar, random, strict);
        entries[field.mapKey === ScalarType.STRING ? random.pick(STRINGS).slice(0, 40) : String(random.int(100))] = value;
      }
      return entries;
    }
  }
}

function scalarValue(scalar: ScalarType, random: Random, strict: boolean): JsonValue {
  if (!strict && random.chance(0.05)) return random.pick<JsonValue>([null, [], {}, true, 3]);
  switch (scalar) {
    case ScalarType.STRING:
      return random.pick(STRINGS);
    case ScalarType.BOOL:
      return strict || random.chance(0.9) ? random.chance(0.5) : "yes";
    case ScalarType.BYTES:
      return random.pick(strict ? ["", "AAEC"] : ["", "AAEC", "!!!", Buffer.from(random.bytes(20)).toString("base64")]);
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return strict ? random.pick([0, 0.5, 1, 0.25]) : random.pick(NUMBERS);
    default:
      return strict ? random.pick([0, 1, 2, 10, 100, 1000]) : random.pick(NUMBERS);
  }
}

function enumValue(descEnum: DescEnum, random: Random, strict: boolean): JsonValue {
  if (!strict && random.chance(0.1)) return random.pick<JsonValue>([99, "NOT_A_VALUE", -1]);
  const value = random.pick(descEnum.values);
  return random.chance(0.8) ? value.name : value.number;
}

/** The message as protobuf; JSON that is not a valid message becomes random bytes. */
function binaryOf(method: DescMethod, json: JsonValue, random: Random): Uint8Array {
  try {
    return toBinary(method.input, fromJson(method.input, json));
  } catch {
    return random.bytes(random.int(40));
  }
}

const TRANSPORTS: readonly Transport[] = ["grpc-h2", "grpc-web-h1", "grpc-web-h2", "connect-h1", "connect-h2", "connect-stream-h2", "connect-get-h1"];

/** Mutations of a payload's bytes. */
const BYTE_MUTATIONS: Record<string, (bytes: Uint8Array, random: Random) => Uint8Array> = {
  flip: (bytes, random) => {
    const copy = Uint8Array.from(bytes.length ? bytes : [0]);
    for (let i = 1 + random.int(4); i > 0; i--) copy[random.int(copy.length)] = random.int(256);
    return copy;
  },
  truncate: (bytes, random) => bytes.subarray(0, random.int(bytes.length + 1)),
  append: (bytes, random) => Buffer.concat([bytes, random.bytes(1 + random.int(16))]),
  garbage: (_bytes, random) => random.bytes(random.int(64)),
  oneZero: () => new Uint8Array([0]),
  brace: () => new TextEncoder().encode("}"),
  nested: (_bytes, random) => {
    const levels = 90 + random.int(40);
    return new Uint8Array([...Array.from({ length: levels }, () => [0x9b, 0x06]).flat(), ...Array.from({ length: levels }, () => [0x9c, 0x06]).flat()]);
  },
  longVarint: () => new Uint8Array([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
};

const CONTENT_TYPES: Record<"grpc" | "grpc-web" | "connect" | "connect-stream", string[]> = {
  grpc: ["application/grpc", "application/grpc+proto", "application/grpc+json", "application/grpc+xml", "text/plain"],
  "grpc-web": ["application/grpc-web+proto", "application/grpc-web", "application/grpc-web+json", "application/grpc-web-text"],
  connect: ["application/json", "application/proto", "application/json; charset=utf-8", "application/xml", ""],
  "connect-stream": ["application/connect+proto", "application/connect+json", "application/connect+xml"],
};

/**
 * The `index`-th case of the run seeded `seed`: a transport, an RPC, a message (random, then
 * maybe mutated), and headers, framing and compression, each maybe wrong.
 */
export function fuzzCase(seed: number, index: number, methods: readonly DescMethod[]): FuzzCase {
  const random = new Random(seed * 1_000_003 + index);
  const method = random.pick(methods);
  let transport = random.pick(TRANSPORTS);
  // Only reads may be GET; streams over HTTP/1.1 are refused (505) before anything interesting.
  if (transport === "connect-get-h1" && method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) transport = "connect-h1";
  if (method.methodKind !== "unary" && (transport === "connect-h1" || transport === "connect-h2" || transport === "connect-get-h1")) transport = "connect-stream-h2";
  if (method.methodKind === "unary" && transport === "connect-stream-h2") transport = "connect-h2";
  const mutations: string[] = [];
  const json = randomJson(method.input, random, random.chance(0.4));
  const contentType = random.chance(0.85) ? defaultContentType(transport) : random.pick(CONTENT_TYPES[familyOf(transport)]);
  const binary = !contentType.includes("json");
  let payload: Uint8Array = binary ? binaryOf(method, json, random) : new TextEncoder().encode(JSON.stringify(json));
  if (random.chance(0.3)) {
    const name = random.pick(Object.keys(BYTE_MUTATIONS));
    payload = BYTE_MUTATIONS[name]!(payload, random);
    mutations.push(name);
  }
  const headers: Record<string, string> = {};
  if (contentType !== "") headers["content-type"] = contentType;
  const compression = random.chance(0.2) ? compress(payload, random, mutations) : undefined;
  if (compression) payload = compression.bytes;
  mutateHeaders(headers, transport, random, mutations);
  // A server stream (Watch) answers until its deadline: a short one keeps the run short.
  if (method.methodKind === "server_streaming" && headers["grpc-timeout"] === undefined && headers["connect-timeout-ms"] === undefined) {
    if (familyOf(transport).startsWith("grpc")) headers["grpc-timeout"] = "300m";
    else headers["connect-timeout-ms"] = "300";
  }
  if (transport === "connect-get-h1") {
    delete headers["content-type"];
    return getCase({ index, method, headers, mutations }, payload, binary, compression?.name, random);
  }
  if (compression && familyOf(transport) !== "connect") headers[familyOf(transport) === "connect-stream" ? "connect-content-encoding" : "grpc-encoding"] = compression.name;
  if (compression && familyOf(transport) === "connect") headers["content-encoding"] = compression.name;
  const body = familyOf(transport) === "connect" ? payload : frame(payload, compression !== undefined, random, mutations);
  if (transport === "grpc-h2") headers.te = "trailers";
  return { index, transport, method, httpMethod: "POST", path: pathOf(method), headers, body, mutations };
}

function familyOf(transport: Transport): keyof typeof CONTENT_TYPES {
  if (transport === "grpc-h2") return "grpc";
  if (transport.startsWith("grpc-web")) return "grpc-web";
  return transport === "connect-stream-h2" ? "connect-stream" : "connect";
}

function defaultContentType(transport: Transport): string {
  return { grpc: "application/grpc", "grpc-web": "application/grpc-web+proto", connect: "application/json", "connect-stream": "application/connect+json" }[familyOf(transport)];
}

/** Compressed (well, or corrupt), under a name that may not be what it is. */
function compress(payload: Uint8Array, random: Random, mutations: string[]): { name: string; bytes: Uint8Array } {
  const name = random.pick(["gzip", "gzip", "br", "identity", "deflate", "snappy"]);
  let bytes: Uint8Array = name === "br" ? brotliCompressSync(payload) : name === "gzip" ? gzipSync(payload) : payload;
  if (random.chance(0.3)) {
    bytes = bytes.subarray(0, random.int(bytes.length));
    mutations.push(`corrupt ${name}`);
  } else if (random.chance(0.05)) {
    mutations.push("gzip bomb (64 MiB)");
    return { name: "gzip", bytes: gzipBomb() };
  } else mutations.push(name);
  return { name, bytes };
}

let bomb: Uint8Array | undefined;

/** 64 KiB that inflate to 64 MiB: gzip members of 1 MiB of zeros, back to back. */
function gzipBomb(): Uint8Array {
  const member = gzipSync(Buffer.alloc(1024 * 1024));
  bomb ??= Buffer.concat(Array.from({ length: 64 }, () => member));
  return bomb;
}

/** Envelopes: mostly one well-formed; sometimes a wrong length, flags, or more than one. */
function frame(payload: Uint8Array, compressed: boolean, random: Random, mutations: string[]): Uint8Array {
  const flags = compressed ? 1 : 0;
  if (random.chance(0.85)) return envelope(payload, flags);
  const how = random.pick(["declared longer", "declared shorter", "flag without encoding", "two", "none", "end flag", "half header"]);
  mutations.push(how);
  switch (how) {
    case "declared longer":
      return envelope(payload, flags, payload.length + 1 + random.int(100));
    case "declared shorter":
      return envelope(payload, flags, Math.max(0, payload.length - 1 - random.int(3)));
    case "flag without encoding":
      return envelope(payload, flags | 1);
    case "two":
      return Buffer.concat([envelope(payload, flags), envelope(payload, flags)]);
    case "none":
      return new Uint8Array(0);
    case "end flag":
      return envelope(payload, 0x02 | 0x80);
    default:
      return envelope(payload, flags).subarray(0, 3);
  }
}

function mutateHeaders(headers: Record<string, string>, transport: Transport, random: Random, mutations: string[]): void {
  const family = familyOf(transport);
  if (family === "connect" || family === "connect-stream") {
    if (random.chance(0.5)) headers["connect-protocol-version"] = random.chance(0.9) ? "1" : "2";
  }
  if (random.chance(0.15)) {
    const timeout = random.pick(["99999999S", "99999999H", "1n", "5S", "abc", "-1S", "100m"]);
    headers[family === "grpc" || family === "grpc-web" ? "grpc-timeout" : "connect-timeout-ms"] = family.startsWith("connect") ? timeout.replace(/\D/g, "") || timeout : timeout;
    mutations.push(`timeout ${timeout}`);
  }
  if (random.chance(0.1)) {
    headers.authorization = random.pick(["Bearer nope", "Bearer ", "Basic Zm9vOmJhcg==", "Bearer " + "t".repeat(5000)]);
    mutations.push("authorization");
  }
  if (random.chance(0.05)) {
    headers[random.pick(["grpc-accept-encoding", "accept-encoding", "connect-accept-encoding"])] = random.pick(["gzip", "br", "bogus", "*"]);
  }
  if (random.chance(0.05)) {
    const authority = random.pick(["localhost:99999", "[::1", "%zz", "a:b:c", "localhost:abc", "127.0.0.1:65536"]);
    headers[transport.endsWith("h2") ? ":authority" : "host"] = authority;
    mutations.push(`authority ${authority}`);
  }
}

function getCase(
  base: Pick<FuzzCase, "index" | "method" | "headers" | "mutations">,
  payload: Uint8Array,
  binary: boolean,
  compression: string | undefined,
  random: Random,
): FuzzCase {
  const query = new URLSearchParams({ connect: random.chance(0.9) ? "v1" : "v2", encoding: binary ? "proto" : random.pick(["json", "json", "xml"]) });
  const base64 = binary || compression !== undefined || random.chance(0.3);
  if (base64) query.set("base64", "1");
  if (compression) query.set("compression", compression);
  let message = base64 ? Buffer.from(payload).toString(random.chance(0.5) ? "base64url" : "base64") : new TextDecoder().decode(payload);
  if (random.chance(0.1)) {
    message = random.pick(["!!!", "a", "%%", "====", "\u00ff"]);
    base.mutations.push(`message ${message}`);
  }
  query.set("message", message);
  return { ...base, transport: "connect-get-h1", httpMethod: "GET", path: `${pathOf(base.method)}?${query}` };
}
