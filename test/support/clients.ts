import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

/** The connect-node transports a real client can use against our one port. */
export function connectTransports(baseUrl: string): Record<string, Transport> {
  return {
    "connect-node gRPC (HTTP/2)": createGrpcTransport({ baseUrl }),
    "connect-node gRPC-Web (HTTP/1.1)": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
    "connect-node gRPC-Web (HTTP/2)": createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
    "connect-node Connect (HTTP/1.1)": createConnectTransport({ baseUrl, httpVersion: "1.1" }),
    "connect-node Connect (HTTP/2)": createConnectTransport({ baseUrl, httpVersion: "2" }),
  };
}

export function connectClient<S extends DescService>(service: S, transport: Transport): Client<S> {
  return createClient(service, transport);
}

/** A gRPC status from grpc-js, reduced to what tests compare: the numeric code. */
export class GrpcJsError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

/** Calls a unary method by name; the answer is the decoded protobuf-es message. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type UnaryCaller = (method: string, request: object) => Promise<any>;

export interface GrpcJsOptions {
  /** Sent with every call, e.g. `{ authorization: "Bearer …" }`. */
  metadata?: Record<string, string>;
  /** TLS credentials; cleartext by default. */
  credentials?: grpc.ChannelCredentials;
  /** Channel options, e.g. `grpc.ssl_target_name_override`. */
  channelOptions?: grpc.ChannelOptions;
}

/**
 * A @grpc/grpc-js client for any service descriptor, using protobuf-es for (de)serialization,
 * so the test exercises grpc-js's own HTTP/2 stack against our server.
 */
export function grpcJsClient(service: DescService, address: string, options: GrpcJsOptions = {}): { call: UnaryCaller; close(): void } {
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (message: object) => Buffer.from(toBinary(method.input, create(method.input, message as Record<string, unknown>))),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (message: object) => Buffer.from(toBinary(method.output, create(method.output, message as Record<string, unknown>))),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
      originalName: method.localName,
    };
  }
  const Constructor = grpc.makeGenericClientConstructor(definition, service.name);
  const client = new Constructor(address, options.credentials ?? grpc.credentials.createInsecure(), options.channelOptions);
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
  const call: UnaryCaller = (method, request) =>
    new Promise((resolve, reject) => {
      const fn = (client as unknown as Record<string, Function>)[method];
      if (!fn) throw new Error(`no method ${method}`);
      fn.call(client, request, metadata, (error: grpc.ServiceError | null, response: unknown) => {
        if (error) reject(new GrpcJsError(error.code, error.details));
        else resolve(response);
      });
    });
  return { call, close: () => client.close() };
}

/**
 * The grpc-js client shaped like a Connect client (methods by local name, errors as
 * ConnectError with the gRPC code), so one scenario can run over every client stack.
 */
export function grpcJsAsConnectClient<S extends DescService>(
  service: S,
  address: string,
  options: GrpcJsOptions = {},
): Client<S> & { close(): void } {
  const { call, close } = grpcJsClient(service, address, options);
  const client: Record<string, unknown> = { close };
  for (const method of service.methods) {
    client[method.localName] = (request: object) =>
      call(method.name, request).catch((error: unknown) => {
        if (error instanceof GrpcJsError) throw new ConnectError(error.message, error.code as number as Code);
        throw error;
      });
  }
  return client as Client<S> & { close(): void };
}
