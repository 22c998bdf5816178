// The bench's baseline: a bare @grpc/grpc-js server in its own process, with an empty unary
// handler on /grpc.health.v1.Health/Check. No protobuf code, no logging, no metrics: identity
// serializers and an empty answer (which is a valid, all-default HealthCheckResponse). What is
// left is the cost of grpc-js and Node's HTTP/2 per call, the floor a Node gRPC server stands on.
//
// Usage: node bench/bare-grpc-server.mjs — listens on a free loopback port, prints
// {"port":N} as one JSON line on stdout, and stops on SIGTERM or SIGINT.
import * as grpc from "@grpc/grpc-js";

const identity = (bytes) => bytes;
const EMPTY = Buffer.alloc(0);

/** A generic service definition: grpc-js only needs the path and the (de)serializers. */
const definition = {
  Check: {
    path: "/grpc.health.v1.Health/Check",
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const server = new grpc.Server();
server.addService(definition, { Check: (_call, callback) => callback(null, EMPTY) });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    process.stderr.write(`bare-grpc-server: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

const stop = () => server.tryShutdown(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
