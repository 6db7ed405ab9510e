"""grpcio-reflection's client against a server: `python grpc_reflection_client.py HOST:PORT VERSION TOKEN`.

Run by tests/test_grpc.py in a process of its own; prints what it found as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any, cast

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def database(channel: grpc.Channel, version: str, token: str) -> ProtoReflectionDescriptorDatabase:
    found = ProtoReflectionDescriptorDatabase(channel)
    stub = cast(Any, found)._stub
    # The client speaks v1alpha; v1's messages are the same, so the same client asks v1's method.
    stub.ServerReflectionInfo = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    call = stub.ServerReflectionInfo

    def with_token(requests: object, **kwargs: object) -> object:
        return call(requests, metadata=[("authorization", f"Bearer {token}")], timeout=30, **kwargs)

    stub.ServerReflectionInfo = with_token
    return found


def main(target: str, version: str, token: str) -> None:
    with grpc.insecure_channel(target) as channel:
        found = database(channel, version, token)
        pool = DescriptorPool(found)
        method = pool.FindMethodByName("cloud.v1.TaskManagementService.CreateTask")
        status = pool.FindEnumTypeByName("cloud.v1.TaskStatusEnum")
        anonymous = ProtoReflectionDescriptorDatabase(channel)
        try:
            anonymous.get_services()
            refused = "OK"
        except grpc.RpcError as error:
            refused = error.code().name
        print(
            json.dumps(
                {
                    "services": list(found.get_services()),
                    "method": [method.input_type.full_name, method.output_type.full_name],
                    "status_values": [v.name for v in status.values],
                    "anonymous": refused,
                }
            )
        )


if __name__ == "__main__":
    main(*sys.argv[1:4])
