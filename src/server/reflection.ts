import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescFile, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

type Request = v1.ServerReflectionRequest;
type Answer = MessageInitShape<typeof v1.ServerReflectionResponseSchema>["messageResponse"];

/**
 * Serves gRPC server reflection (grpc.reflection.v1 and the v1alpha that older grpcurl and
 * grpc_cli still ask for) for the services in `files`. Their imports are served too, so a
 * client can rebuild every message type from reflection alone.
 */
export function registerReflection(router: ConnectRouter, files: readonly DescFile[]): void {
  const reflectionFiles = [v1.file_grpc_reflection_v1_reflection, v1alpha.file_grpc_reflection_v1alpha_reflection];
  const answer = reflectionAnswerer([...files, ...reflectionFiles]);

  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) yield respond(request, answer);
    },
  });
  // The two versions are the same messages under another package, so v1alpha is served by
  // re-reading its bytes as v1 rather than by a second implementation.
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        const asV1 = reencode(v1alpha.ServerReflectionRequestSchema, v1.ServerReflectionRequestSchema, request);
        yield reencode(v1.ServerReflectionResponseSchema, v1alpha.ServerReflectionResponseSchema, respond(asV1, answer));
      }
    },
  });
}

function respond(request: Request, answer: (request: Request) => Answer): v1.ServerReflectionResponse {
  return create(v1.ServerReflectionResponseSchema, {
    validHost: request.host,
    originalRequest: request,
    messageResponse: answer(request),
  });
}

function reencode<From extends DescMessage, To extends DescMessage>(
  from: From,
  to: To,
  message: MessageShape<From>,
): MessageShape<To> {
  return fromBinary(to, toBinary(from, message));
}

/** `files` and everything they import, each once, every file after its imports. */
function withDependencies(files: Iterable<DescFile>): DescFile[] {
  const seen = new Set<string>();
  const ordered: DescFile[] = [];
  const visit = (file: DescFile) => {
    if (seen.has(file.proto.name)) return;
    seen.add(file.proto.name);
    file.dependencies.forEach(visit);
    ordered.push(file);
  };
  for (const file of files) visit(file);
  return ordered;
}

function reflectionAnswerer(files: readonly DescFile[]): (request: Request) => Answer {
  const registry = createFileRegistry(
    create(FileDescriptorSetSchema, { file: withDependencies(files).map((file) => file.proto) }),
  );
  // Only the services we were handed are listed; those of imported files are not served here.
  const services = [...new Set(files.flatMap((file) => file.services.map((service) => service.typeName)))];

  const notFound = (message: string): Answer => ({
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: message },
  });

  // The requested file comes first because some clients read entry 0 as "the" answer (grpc-go
  // and grpc-java order it the same way); each import follows once.
  const descriptors = (file: DescFile | undefined, what: string): Answer =>
    file
      ? {
          case: "fileDescriptorResponse",
          value: {
            fileDescriptorProto: withDependencies([file])
              .reverse()
              .map((f) => toBinary(FileDescriptorProtoSchema, f.proto)),
          },
        }
      : notFound(`${what} not found`);

  // Methods, fields and enum values are not types, so the registry doesn't index them; find
  // them through the element that declares them.
  const fileContainingSymbol = (symbol: string): DescFile | undefined => {
    const type = registry.get(symbol);
    if (type) return type.file;
    const dot = symbol.lastIndexOf(".");
    const scope = symbol.slice(0, Math.max(dot, 0));
    const member = symbol.slice(dot + 1);
    const parent = registry.get(scope);
    if (parent?.kind === "service" && parent.methods.some((m) => m.name === member)) return parent.file;
    if (parent?.kind === "message" && [...parent.fields, ...parent.oneofs].some((f) => f.name === member)) {
      return parent.file;
    }
    // Enum values live in the scope around their enum (C++ scoping), e.g. pkg.COLOR_RED.
    for (const desc of registry) {
      if (desc.kind !== "enum" || desc.values.every((v) => v.name !== member)) continue;
      if (desc.typeName.slice(0, Math.max(desc.typeName.lastIndexOf("."), 0)) === scope) return desc.file;
    }
    return undefined;
  };

  return (request) => {
    const { case: kind, value } = request.messageRequest;
    switch (kind) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } };
      case "fileByFilename":
        return descriptors(registry.getFile(value), `file ${value}`);
      case "fileContainingSymbol":
        return descriptors(fileContainingSymbol(value), `symbol ${value}`);
      case "fileContainingExtension": {
        const extendee = registry.getMessage(value.containingType);
        const extension = extendee && registry.getExtensionFor(extendee, value.extensionNumber);
        return descriptors(extension?.file, `extension ${value.extensionNumber} of ${value.containingType}`);
      }
      case "allExtensionNumbersOfType": {
        if (!registry.getMessage(value)) return notFound(`type ${value} not found`);
        const numbers: number[] = [];
        for (const desc of registry) {
          if (desc.kind === "extension" && desc.extendee.typeName === value) numbers.push(desc.number);
        }
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: value, extensionNumber: numbers } };
      }
      case undefined:
        // grpc-go ends the stream here; answering in-band keeps the client's other requests alive.
        return {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "request names no message_request" },
        };
    }
  };
}
