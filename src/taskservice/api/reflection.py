"""gRPC server reflection (grpc.reflection.v1 and v1alpha): what this server serves, for grpcurl and co.

It answers from the descriptors of the served services and the files they import, nothing else of the
process's descriptor pool. Both versions share one implementation: their messages are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from types import ModuleType
from typing import Any

from connectrpc.code import Code
from connectrpc.request import RequestContext
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from taskservice.api.rejection import GRPC_STATUS
from taskservice.gen.grpc.reflection.v1 import reflection_pb2 as v1
from taskservice.gen.grpc.reflection.v1alpha import reflection_pb2 as v1alpha

VERSIONS: tuple[ModuleType, ...] = (v1, v1alpha)
# The protocol answers a question it cannot with gRPC's number of a status code.
NOT_FOUND, INVALID_ARGUMENT = GRPC_STATUS[Code.NOT_FOUND], GRPC_STATUS[Code.INVALID_ARGUMENT]


def _closure(files: Iterable[FileDescriptor]) -> dict[str, FileDescriptor]:
    """The files and everything they import, by name."""
    found: dict[str, FileDescriptor] = {}
    pending = list(files)
    while pending:
        file = pending.pop()
        if file.name not in found:
            found[file.name] = file
            pending.extend(file.dependencies)
    return found


def _symbols(file: FileDescriptor) -> Iterable[str]:
    """Every fully-qualified name a file declares that a client may ask for."""
    yield from (e.full_name for e in file.enum_types_by_name.values())
    for service in file.services_by_name.values():
        yield service.full_name
        yield from (m.full_name for m in service.methods)
    pending = list(file.message_types_by_name.values())
    while pending:
        message = pending.pop()
        yield message.full_name
        yield from (e.full_name for e in message.enum_types)
        pending.extend(message.nested_types)


class Reflection:
    """grpc.reflection.<version>.ServerReflection for `services` (its own included by the caller)."""

    def __init__(
        self, pb: ModuleType, services: Iterable[ServiceDescriptor], stopping: asyncio.Event
    ) -> None:
        self.pb, self._stopping = pb, stopping
        services = list(services)
        self.service_names = sorted(s.full_name for s in services)
        self.files = _closure(s.file for s in services)
        self.symbols = {name: file for file in self.files.values() for name in _symbols(file)}

    async def server_reflection_info(
        self, requests: AsyncIterator[Any], ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[Any]:
        """Answer each request in turn until the client ends the stream or the server stops."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        next_request: asyncio.Future[Any] | None = None
        try:
            while True:
                next_request = asyncio.ensure_future(anext(requests))
                done, _ = await asyncio.wait({next_request, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    return
                try:
                    request = next_request.result()
                except StopAsyncIteration:
                    return
                next_request = None
                yield self.answer(request)
        finally:
            stopping.cancel()
            if next_request is not None:
                # Cancelled, the request stream ends with connect-python's CANCELED error: retrieved
                # here, not reported as a task exception nobody retrieved.
                next_request.add_done_callback(_retrieve)
                next_request.cancel()

    def answer(self, request: Any) -> Any:
        pb = self.pb
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            services = [pb.ServiceResponse(name=name) for name in self.service_names]
            return pb.ServerReflectionResponse(
                original_request=request, list_services_response=pb.ListServiceResponse(service=services)
            )
        if kind == "file_by_filename":
            return self._file(request, self.files.get(request.file_by_filename))
        if kind == "file_containing_symbol":
            return self._file(request, self.symbols.get(request.file_containing_symbol))
        if kind == "file_containing_extension":
            return self._error(request, NOT_FOUND, "this server's files declare no extensions")
        if kind == "all_extension_numbers_of_type":
            name = request.all_extension_numbers_of_type
            if name not in self.symbols:
                return self._error(request, NOT_FOUND, f"no message type {name!r} is served here")
            return pb.ServerReflectionResponse(
                original_request=request,
                all_extension_numbers_response=pb.ExtensionNumberResponse(base_type_name=name),
            )
        return self._error(request, INVALID_ARGUMENT, "the request names no question")

    def _file(self, request: Any, file: FileDescriptor | None) -> Any:
        """The file and every file it imports, which a client needs to build its descriptors."""
        if file is None:
            return self._error(request, NOT_FOUND, "not served here (list_services says what is)")
        protos = []
        for each in _closure([file]).values():
            proto = descriptor_pb2.FileDescriptorProto()
            each.CopyToProto(proto)
            protos.append(proto.SerializeToString())
        return self.pb.ServerReflectionResponse(
            original_request=request,
            file_descriptor_response=self.pb.FileDescriptorResponse(file_descriptor_proto=protos),
        )

    def _error(self, request: Any, code: int, message: str) -> Any:
        return self.pb.ServerReflectionResponse(
            original_request=request,
            error_response=self.pb.ErrorResponse(error_code=code, error_message=message),
        )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def reflections(services: Iterable[ServiceDescriptor], stopping: asyncio.Event) -> list[Reflection]:
    """One Reflection per protocol version, each listing `services` and both reflection services."""
    served = [
        *services,
        *(pb.DESCRIPTOR.services_by_name["ServerReflection"] for pb in VERSIONS),
    ]
    return [Reflection(pb, served, stopping) for pb in VERSIONS]
