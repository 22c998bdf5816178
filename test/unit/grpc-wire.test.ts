import { describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { SelectClusterResponseSchema } from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { GetClusterPoolResponseSchema } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { answerEncoder, envelope, unaryEnvelope } from "../../src/server/grpc-wire.js";

describe("answers written without reflection", () => {
  const encode = answerEncoder(SelectClusterResponseSchema);

  it("writes a message of strings byte for byte as protobuf-es does", () => {
    const answers = [
      {},
      { cluster: "dataplane_1", endpoint: "https://k8s.example:443", pool: "default", label: "label1", reason: "project-domain label label1" },
      { cluster: "c", endpoint: "", pool: "p", label: "", reason: "no label assigned: any eligible cluster" },
      { cluster: "é✓𝄞", reason: "x".repeat(127) },
      { endpoint: "y".repeat(128), reason: "z".repeat(20_000) },
    ];
    for (const answer of answers) {
      expect(Buffer.from(encode(answer))).toEqual(Buffer.from(toBinary(SelectClusterResponseSchema, create(SelectClusterResponseSchema, answer))));
    }
  });

  it("leaves other messages, and messages carrying unknown fields, to protobuf-es", () => {
    const message = create(SelectClusterResponseSchema, { cluster: "a" });
    message.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([99 << 3, 1]) }];
    expect(Buffer.from(encode(message))).toEqual(Buffer.from(toBinary(SelectClusterResponseSchema, message)));
    const pool = { clusterPool: { name: "default", description: "the pool", etag: "e1" } };
    const expected = toBinary(GetClusterPoolResponseSchema, create(GetClusterPoolResponseSchema, pool));
    expect(Buffer.from(answerEncoder(GetClusterPoolResponseSchema)(pool))).toEqual(Buffer.from(expected));
  });
});

describe("the one message of a unary request", () => {
  const message = Buffer.from([10, 1, 97]);

  it("is read from its length prefix, with the compressed flag", () => {
    expect(unaryEnvelope(envelope(false, message))).toEqual({ compressed: false, data: message });
    expect(unaryEnvelope(envelope(true, message)).compressed).toBe(true);
    expect(unaryEnvelope(envelope(false, new Uint8Array())).data.byteLength).toBe(0);
  });

  it("is refused as connect-node refuses it: none, part of one, or two", () => {
    const whole = envelope(false, message);
    expect(() => unaryEnvelope(Buffer.alloc(0))).toThrow("missing input message");
    expect(() => unaryEnvelope(whole.subarray(0, 3))).toThrow("incomplete envelope");
    expect(() => unaryEnvelope(whole.subarray(0, 7))).toThrow("incomplete envelope");
    expect(() => unaryEnvelope(Buffer.concat([whole, whole]))).toThrow("received extra input message");
    expect(() => unaryEnvelope(Buffer.concat([whole, whole.subarray(0, 6)]))).toThrow("incomplete envelope");
  });
});
