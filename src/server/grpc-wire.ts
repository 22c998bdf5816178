import { create, isMessage, ScalarType, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

/** gRPC's Length-Prefixed-Message: a flags byte, a 4-byte big-endian length, then the message. */
const PREFIX_BYTES = 5;

/** The one message of a unary request (PROTOCOL-HTTP2.md); the errors are connect-node's, word for word. */
export function unaryEnvelope(body: Buffer): { compressed: boolean; data: Uint8Array } {
  if (body.byteLength === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.InvalidArgument);
  const length = body.byteLength >= PREFIX_BYTES ? body.readUInt32BE(1) : Infinity;
  if (PREFIX_BYTES + length > body.byteLength) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  const rest = body.byteLength - PREFIX_BYTES - length;
  if (rest > 0) {
    const second = PREFIX_BYTES + length;
    const complete = rest >= PREFIX_BYTES && 2 * PREFIX_BYTES + length + body.readUInt32BE(second + 1) <= body.byteLength;
    throw new ConnectError(complete ? "protocol error: received extra input message for unary method" : "protocol error: incomplete envelope", Code.InvalidArgument);
  }
  return { compressed: (body[0]! & 0b1) === 1, data: body.subarray(PREFIX_BYTES) };
}

/** The length a message declares in its prefix, once the first chunk holds the prefix. */
export function declaredLength(firstChunk: Buffer): number | undefined {
  return firstChunk.byteLength >= PREFIX_BYTES ? firstChunk.readUInt32BE(1) : undefined;
}

export function envelope(compressed: boolean, data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + data.byteLength);
  frame[0] = compressed ? 1 : 0;
  frame.writeUInt32BE(data.byteLength, 1);
  frame.set(data, PREFIX_BYTES);
  return frame;
}

/**
 * grpc-message as PROTOCOL-HTTP2.md says to send it: the UTF-8 bytes, with `%` and every byte
 * outside printable ASCII percent-encoded, and nothing else. encodeURIComponent (what connect-node
 * sends) also escapes `:`, `,`, `/` and the like, which grpc-js then shows escaped: its decodeURI
 * leaves them alone.
 */
export function encodeGrpcMessage(message: string): string {
  return /^[\x20-\x24\x26-\x7e]*$/.test(message)
    ? message
    : Array.from(Buffer.from(message, "utf8"), (byte) => (byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
}

type Encoder = (answer: unknown) => Uint8Array;

/**
 * The encoder of a method's answers. protobuf-es encodes by reflection, which for SelectCluster's
 * five strings costs more than choosing the cluster; a message of singular strings only is written
 * directly instead, in the order and form toBinary writes it (a test compares the bytes). Anything
 * else — other field types, a message object carrying unknown fields — goes through protobuf-es.
 */
export function answerEncoder(desc: DescMessage): Encoder {
  const general: Encoder = (answer) => toBinary(desc, isMessage(answer, desc) ? answer : create(desc, answer as never));
  const strings = desc.fields.every(
    (field) => field.fieldKind === "scalar" && field.scalar === ScalarType.STRING && field.oneof === undefined && field.presence === FeatureSet_FieldPresence.IMPLICIT,
  );
  if (!strings || desc.fields.some((field) => field.number >= 16)) return general;
  const fields = desc.fields.map((field) => ({ name: field.localName, tag: (field.number << 3) | 2 }));
  return (answer) => {
    const record = answer as Record<string, unknown>;
    if (record.$unknown !== undefined) return general(answer);
    const values: Buffer[] = [];
    let size = 0;
    for (const { name } of fields) {
      const value = record[name];
      if (value !== undefined && typeof value !== "string") return general(answer);
      const bytes = value ? Buffer.from(value, "utf8") : EMPTY;
      values.push(bytes);
      if (bytes.byteLength > 0) size += 1 + varintSize(bytes.byteLength) + bytes.byteLength;
    }
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    fields.forEach(({ tag }, index) => {
      const bytes = values[index]!;
      if (bytes.byteLength === 0) return;
      out[at++] = tag;
      at = writeVarint(out, at, bytes.byteLength);
      at += bytes.copy(out, at);
    });
    return out;
  };
}

const EMPTY = Buffer.alloc(0);

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}
