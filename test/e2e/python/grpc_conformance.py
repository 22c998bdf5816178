"""gRPC conformance seen from gRPC's C core (grpcio): unary calls to clusterplane with identity
and gzip requests, deadlines, custom and -bin metadata, error codes with their google.rpc.Status
details, percent-encoded messages and methods the server does not have.

Usage: grpc_conformance.py HOST:PORT DESCRIPTOR_SET PLAN_JSON
DESCRIPTOR_SET is a serialized google.protobuf.FileDescriptorSet (the cluster pool contract,
google.rpc.Status and BadRequest); PLAN_JSON names what to create and where ({"prefix", "badName", "bulk", "database"}: the
server's SQLite file, whose write lock the deadline case holds).
Prints one JSON object with what each call returned; the test asserts on it.
"""

import base64
import json
import sqlite3
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

address, descriptor_set_path, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

pool = descriptor_pool.DescriptorPool()
with open(descriptor_set_path, "rb") as handle:
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(handle.read()).file:
        pool.Add(file_proto)


def message_class(full_name):
    descriptor = pool.FindMessageTypeByName(full_name)
    get = getattr(message_factory, "GetMessageClass", None)
    return get(descriptor) if get else message_factory.MessageFactory(pool).GetPrototype(descriptor)


Status = message_class("google.rpc.Status")
BadRequest = message_class("google.rpc.BadRequest")
SERVICE = "clusterplane.v1.ClusterPoolService"
TIMEOUT_S = 20
channel = grpc.insecure_channel(address)


def metadata_dict(metadata):
    """Metadata as a dict; -bin values (bytes) in base64, as the TypeScript side keeps them."""
    result = {}
    for key, value in metadata or ():
        result[key] = base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
    return result


def status_details(trailing):
    """grpc-status-details-bin decoded: google.rpc.Status and the fields its BadRequest names."""
    for key, value in trailing or ():
        if key == "grpc-status-details-bin":
            status = Status.FromString(value)
            fields = []
            for detail in status.details:
                if detail.type_url.endswith("/google.rpc.BadRequest"):
                    fields += [v.field for v in BadRequest.FromString(detail.value).field_violations]
            return {
                "code": status.code,
                "message": status.message,
                "types": [d.type_url for d in status.details],
                "badRequestFields": fields,
            }
    return None


def call(method, body, raw=False, **options):
    """One unary call; `body` is a dict for `method`'s input type, or bytes when `raw`."""
    if raw:
        stub = channel.unary_unary(f"/{method}", request_serializer=None, response_deserializer=None)
        request = body
    else:
        descriptor = pool.FindServiceByName(SERVICE).FindMethodByName(method)
        request_class = message_class(descriptor.input_type.full_name)
        response_class = message_class(descriptor.output_type.full_name)
        stub = channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        request = json_format.ParseDict(body, request_class())
    options.setdefault("timeout", TIMEOUT_S)
    try:
        response, rpc = stub.with_call(request, **options)
        return {
            "code": "OK",
            "body": base64.b64encode(response).decode("ascii") if raw else json_format.MessageToDict(response),
            "headers": metadata_dict(rpc.initial_metadata()),
            "trailers": metadata_dict(rpc.trailing_metadata()),
        }
    except grpc.RpcError as error:
        return {
            "code": error.code().name,
            "message": error.details(),
            "headers": metadata_dict(error.initial_metadata()),
            "trailers": metadata_dict(error.trailing_metadata()),
            "status": status_details(error.trailing_metadata()),
        }


def deadline_behind_lock(database, timeout):
    """A write the server cannot finish before its deadline, whatever the machine's speed: this
    script holds the database's write lock until grpcio has given up on the call."""
    lock = sqlite3.connect(database, isolation_level=None, timeout=TIMEOUT_S)
    lock.execute("BEGIN IMMEDIATE")
    try:
        return call("CreateClusterPool", {"clusterPool": pool_manifest(f"{prefix}-late")}, timeout=timeout)
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def pool_manifest(name):
    return {
        "name": name,
        "config": {
            "objectStoreRef": {"uri": "s3://py-bucket/prefix"},
            "secretStore": {"type": "SECRET_STORE_TYPE_AWS_SECRETS_MANAGER", "locator": "us-east-1"},
            "imageRegistry": {"locator": "123456789012.dkr.ecr.us-east-1.amazonaws.com/union"},
        },
    }


prefix = plan["prefix"]
seen = {}
seen["create"] = call(
    "CreateClusterPool",
    {"clusterPool": pool_manifest(f"{prefix}-identity")},
    metadata=(
        ("x-request-id", f"{prefix}-request-1"),
        ("x-conformance-note", "plain ascii, with spaces"),
        ("x-conformance-trace-bin", bytes([0, 1, 2, 0xFE, 0xFF])),
    ),
)
seen["create_gzip"] = call(
    "CreateClusterPool", {"clusterPool": pool_manifest(f"{prefix}-gzip")}, compression=grpc.Compression.Gzip
)
seen["get_gzip"] = call("GetClusterPool", {"name": f"{prefix}-gzip"}, compression=grpc.Compression.Gzip)
# Large enough that the server compresses the answer (grpcio accepts gzip by default).
seen["list_bulk"] = call("ListClusterPools", {"org": plan["bulk"]})
seen["deadline"] = deadline_behind_lock(plan["database"], 0.3)
seen["bad_name"] = call(
    "CreateClusterPool", {"clusterPool": pool_manifest(plan["badName"])}, metadata=(("x-request-id", f"{prefix}-bad"),)
)
seen["too_large"] = call("CreateClusterPool", {"clusterPool": {**pool_manifest(f"{prefix}-large"), "memberClusters": ["x" * 1024] * 80}})
seen["unknown_method"] = call(f"{SERVICE}/ExplodeClusterPool", b"", raw=True)
seen["unknown_service"] = call("nowhere.v1.NowhereService/Anything", b"", raw=True)
seen["after"] = call("GetClusterPool", {"name": f"{prefix}-identity"})
channel.close()
print(json.dumps(seen))
