import { describe, expect, it } from "vitest";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { file_clusterplane_v1_cluster_pool } from "../../gen/clusterplane/v1/cluster_pool_pb.js";
import { file_clusterplane_v1_cluster } from "../../gen/clusterplane/v1/cluster_pb.js";
import { file_health_v1_health } from "../../gen/health/v1/health_pb.js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { registerReflection } from "../../src/server/reflection.js";

const transport = createRouterTransport((router) =>
  registerReflection(router, [file_clusterplane_v1_cluster_pool, file_clusterplane_v1_cluster, file_health_v1_health]),
);

type Request = MessageInitShape<typeof v1.ServerReflectionRequestSchema>;

/** Sends `requests` on one v1 stream and collects the answers. */
async function reflect(...requests: Request[]): Promise<v1.ServerReflectionResponse[]> {
  const client = createClient(v1.ServerReflection, transport);
  const responses: v1.ServerReflectionResponse[] = [];
  for await (const response of client.serverReflectionInfo(
    (async function* () {
      yield* requests;
    })(),
  )) {
    responses.push(response);
  }
  return responses;
}

async function reflectOne(request: Request): Promise<v1.ServerReflectionResponse> {
  const [response] = await reflect(request);
  if (!response) throw new Error("no response");
  return response;
}

function fileNames(response: v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse): string[] {
  if (response.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected descriptors, got ${response.messageResponse.case}`);
  }
  return response.messageResponse.value.fileDescriptorProto.map(
    (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
  );
}

describe("server reflection", () => {
  it("lists our services, health and itself", async () => {
    const response = await reflectOne({ host: "localhost", messageRequest: { case: "listServices", value: "*" } });
    expect(response.validHost).toBe("localhost");
    expect(response.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
    expect(response.messageResponse.case).toBe("listServicesResponse");
    const names =
      response.messageResponse.case === "listServicesResponse"
        ? response.messageResponse.value.service.map((s) => s.name)
        : [];
    expect(names).toEqual(
      expect.arrayContaining([
        "clusterplane.v1.ClusterPoolService",
        "clusterplane.v1.ClusterService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]),
    );
    expect(new Set(names).size).toBe(names.length);
  });

  it("answers a service name with its file, first, and each import once", async () => {
    const response = await reflectOne({
      messageRequest: { case: "fileContainingSymbol", value: "clusterplane.v1.ClusterPoolService" },
    });
    const names = fileNames(response);
    expect(names[0]).toBe("clusterplane/v1/cluster_pool.proto");
    expect(names).toContain("google/protobuf/timestamp.proto");
    expect(new Set(names).size).toBe(names.length);
  });

  it("finds methods, fields, nested enums and enum values in their enclosing scope", async () => {
    const symbols: Record<string, string> = {
      "clusterplane.v1.ClusterPoolService.CreateClusterPool": "clusterplane/v1/cluster_pool.proto",
      "clusterplane.v1.ClusterPool.name": "clusterplane/v1/cluster_pool.proto",
      "clusterplane.v1.SecretStoreType": "clusterplane/v1/cluster_pool.proto",
      "clusterplane.v1.SECRET_STORE_TYPE_AWS_SECRETS_MANAGER": "clusterplane/v1/cluster_pool.proto",
      "grpc.health.v1.HealthCheckResponse.ServingStatus": "health/v1/health.proto",
      "grpc.health.v1.HealthCheckResponse.SERVING": "health/v1/health.proto",
      "google.protobuf.Timestamp": "google/protobuf/timestamp.proto",
    };
    const responses = await reflect(
      ...Object.keys(symbols).map((value): Request => ({ messageRequest: { case: "fileContainingSymbol", value } })),
    );
    expect(responses.map((r) => fileNames(r)[0])).toEqual(Object.values(symbols));
  });

  it("does not mistake a scope-mismatched enum value for a symbol", async () => {
    const response = await reflectOne({
      messageRequest: { case: "fileContainingSymbol", value: "clusterplane.v1.SecretStoreType.SECRET_STORE_TYPE_AWS_SECRETS_MANAGER" },
    });
    expect(response.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
  });

  it("serves imported files by name", async () => {
    const response = await reflectOne({
      messageRequest: { case: "fileByFilename", value: "google/protobuf/field_mask.proto" },
    });
    expect(fileNames(response)).toEqual(["google/protobuf/field_mask.proto"]);
  });

  it("answers an unknown symbol with NOT_FOUND and keeps the stream answering", async () => {
    const [unknown, known] = await reflect(
      { messageRequest: { case: "fileContainingSymbol", value: "clusterplane.v1.NoSuchThing" } },
      { messageRequest: { case: "fileByFilename", value: "clusterplane/v1/cluster_pool.proto" } },
    );
    expect(unknown?.messageResponse.case).toBe("errorResponse");
    expect(unknown?.messageResponse.value).toMatchObject({ errorCode: 5 });
    expect(known && fileNames(known)[0]).toBe("clusterplane/v1/cluster_pool.proto");
  });

  it("reports unknown files and extension types as NOT_FOUND", async () => {
    const responses = await reflect(
      { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
      {
        messageRequest: {
          case: "fileContainingExtension",
          value: { containingType: "google.protobuf.Timestamp", extensionNumber: 1000 },
        },
      },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "no.Such" } },
    );
    expect(responses.map((r) => r.messageResponse.case)).toEqual(["errorResponse", "errorResponse", "errorResponse"]);
    expect(responses.map((r) => (r.messageResponse.value as v1.ErrorResponse).errorCode)).toEqual([5, 5, 5]);
  });

  it("lists no extension numbers for a type nobody extends", async () => {
    const response = await reflectOne({
      messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.Timestamp" },
    });
    expect(response.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "google.protobuf.Timestamp", extensionNumber: [] },
    });
  });

  it("serves v1alpha with the same answers", async () => {
    const client = createClient(v1alpha.ServerReflection, transport);
    const responses: v1alpha.ServerReflectionResponse[] = [];
    for await (const response of client.serverReflectionInfo(
      (async function* () {
        yield { host: "h", messageRequest: { case: "listServices" as const, value: "" } };
        yield { messageRequest: { case: "fileContainingSymbol" as const, value: "clusterplane.v1.ClusterPoolService" } };
        yield { messageRequest: { case: "fileContainingSymbol" as const, value: "no.Such" } };
      })(),
    )) {
      responses.push(response);
    }
    const [list, file, missing] = responses;
    expect(list?.$typeName).toBe("grpc.reflection.v1alpha.ServerReflectionResponse");
    expect(list?.validHost).toBe("h");
    expect(list?.originalRequest?.$typeName).toBe("grpc.reflection.v1alpha.ServerReflectionRequest");
    expect(
      list?.messageResponse.case === "listServicesResponse" && list.messageResponse.value.service.map((s) => s.name),
    ).toContain("clusterplane.v1.ClusterPoolService");
    expect(file && fileNames(file)).toEqual(expect.arrayContaining(["clusterplane/v1/cluster_pool.proto"]));
    expect(missing?.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
  });
});
