"""One interceptor answers every RPC's exceptions with their Connect code (api/errors.py).

Each RPC of the mounted services (through `connect_services`, as the server mounts them, in process)
is served by a handler that raises what the test sets; the answer is read off the wire.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

import taskservice
from taskservice.api import errors
from taskservice.api.app import connect_services
from taskservice.api.auth_service import AuthService
from taskservice.api.ids import IdOutOfRange
from taskservice.api.metrics import Metrics
from taskservice.api.service import TaskService
from taskservice.auth.tokens import BadTokenRequest
from taskservice.gen.cloud.v1 import auth_pb2, task_pb2
from taskservice.model import IllegalTransition, Status
from taskservice.rules.tasks import BrokenRule
from taskservice.store import (
    IdAboveLimit,
    NotHeld,
    TaskNotFound,
    TokenNameTaken,
    TokenNotFound,
    WorkerIdTaken,
)

SERVICES: dict[str, tuple[ServiceDescriptor, type]] = {
    "/cloud.v1.TaskManagementService": (
        task_pb2.DESCRIPTOR.services_by_name["TaskManagementService"],
        TaskService,
    ),
    "/cloud.v1.AuthService": (auth_pb2.DESCRIPTOR.services_by_name["AuthService"], AuthService),
}

# What a handler raises -> the code, and the message, a caller is answered.
CASES: list[tuple[Exception, str, str]] = [
    (BrokenRule("name", "is required"), "invalid_argument", "name: is required"),
    (BadTokenRequest("role", "unknown role"), "invalid_argument", "role: unknown role"),
    (TaskNotFound(7), "not_found", "task 7 not found"),
    (TokenNotFound("named 'ci'"), "not_found", "no live token named 'ci'"),
    (TokenNameTaken("ci"), "already_exists", str(TokenNameTaken("ci"))),
    (
        IllegalTransition(7, Status.QUEUED, Status.SUCCEEDED),
        "failed_precondition",
        "task 7 is QUEUED; it can move to SUCCEEDED only from RUNNING",
    ),
    (NotHeld("attempt 3 is not yours"), "permission_denied", "attempt 3 is not yours"),
    (WorkerIdTaken("w1"), "permission_denied", str(WorkerIdTaken("w1"))),
    (IdAboveLimit(2**31, 2**31 - 1), "out_of_range", str(IdOutOfRange("id", 2**31))),
    (IdOutOfRange("tasks[0].id", 2**31), "out_of_range", str(IdOutOfRange("tasks[0].id", 2**31))),
    (TimeoutError(), "unavailable", errors.UNAVAILABLE),  # DB_COMMAND_TIMEOUT passed
    (ConnectionRefusedError("connection refused"), "unavailable", errors.UNAVAILABLE),
    (asyncpg.CannotConnectNowError("the database system is starting up"), "unavailable", errors.UNAVAILABLE),
    (ConnectError(Code.RESOURCE_EXHAUSTED, "reconnect"), "resource_exhausted", "reconnect"),
    (RuntimeError("a detail for the log only"), "internal", errors.INTERNAL),
]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Raising:
    """Implements every RPC of `service`: each raises `error`; a server stream sends one message
    first, so the error ends a stream that has started."""

    def __init__(self, service: ServiceDescriptor) -> None:
        self.error: Exception = RuntimeError("not set")
        for method in service.methods:
            handler = self._stream(method) if method.server_streaming else self._unary()
            setattr(self, snake(method.name), handler)

    def _unary(self) -> Callable[..., Any]:
        async def handler(request: Any, ctx: Any) -> Any:
            raise self.error

        return handler

    def _stream(self, method: MethodDescriptor) -> Callable[..., AsyncIterator[Any]]:
        output = GetMessageClass(method.output_type)

        async def handler(request: Any, ctx: Any) -> AsyncIterator[Any]:
            yield output()
            raise self.error

        return handler


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        frames.append((flags, body[5 : 5 + size]))
        body = body[5 + size :]
    return frames


async def answer(http: httpx.AsyncClient, path: str, method: MethodDescriptor) -> tuple[str, str]:
    """The (code, message) a caller of `method` gets."""
    url = f"{path}/{method.name}"
    if not method.server_streaming:
        response = await http.post(url, content=b"", headers={"content-type": "application/proto"})
        assert response.status_code != 200, response.text
        error = response.json()
        return error["code"], error.get("message", "")
    headers = {"content-type": "application/connect+proto"}
    response = await http.post(url, content=struct.pack(">BI", 0, 0), headers=headers)
    assert response.status_code == 200, response.text
    frames = envelopes(response.content)
    assert [flags for flags, _ in frames] == [0, 2], frames  # the message sent, then the end
    error = json.loads(frames[-1][1])["error"]
    return error["code"], error.get("message", "")


@pytest.fixture
async def served() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Raising]]]:
    handlers = {path: Raising(descriptor) for path, (descriptor, _) in SERVICES.items()}
    apps = connect_services(
        handlers["/cloud.v1.TaskManagementService"],  # type: ignore[arg-type]
        handlers["/cloud.v1.AuthService"],  # type: ignore[arg-type]
        Metrics(),
        {},
    )
    assert set(apps) == set(SERVICES)  # a service mounted without its table would be missed here

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = next(p for p in apps if scope["path"].startswith(p + "/"))
        await apps[path](scope, receive, send)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, handlers


def test_the_doubles_implement_the_services_real_handlers() -> None:
    for descriptor, implementation in SERVICES.values():
        for method in descriptor.methods:
            assert callable(getattr(implementation, snake(method.name), None)), method.full_name


@pytest.mark.parametrize(("raised", "code", "message"), CASES, ids=[type(c[0]).__name__ for c in CASES])
async def test_every_rpc_answers_an_exception_with_its_code(
    served: tuple[httpx.AsyncClient, dict[str, Raising]], raised: Exception, code: str, message: str
) -> None:
    http, handlers = served
    for path, (descriptor, _) in SERVICES.items():
        handlers[path].error = raised
        for method in descriptor.methods:
            with structlog.testing.capture_logs() as logs:
                got = await answer(http, path, method)
            assert got == (code, message), method.full_name
            unexpected = [entry for entry in logs if entry["event"] == "unexpected error"]
            if code == "internal":  # logged once, naming the RPC and with its traceback
                assert [(e["rpc"], e["log_level"]) for e in unexpected] == [(method.name, "error")], logs
                assert unexpected[0]["exc_info"] is raised
            else:
                assert unexpected == [], logs


async def test_a_stream_whose_client_leaves_is_closed_at_once() -> None:
    """The interceptor closes the handler's stream when its own is closed (not when collected)."""
    closed: list[str] = []

    async def endless(request: Any, ctx: Any) -> AsyncIterator[Any]:
        try:
            while True:
                yield task_pb2.TaskEvent(keepalive=True)
        finally:
            closed.append("closed")

    request = task_pb2.WatchEventsRequest()
    stream = errors.ErrorCodes().intercept_server_stream(endless, request, None)  # type: ignore[arg-type]
    assert await anext(stream) == task_pb2.TaskEvent(keepalive=True)
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == ["closed"]


def test_no_handler_maps_errors_by_itself() -> None:
    source = Path(taskservice.__file__).parent
    left = [str(p) for p in source.rglob("*.py") if "connect_errors" in p.read_text()]
    assert left == []
