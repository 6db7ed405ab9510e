"""Health: the gRPC health protocol over Connect, plus plain /healthz (alive) and /readyz (database)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from taskservice.gen.grpc.health.v1 import health_pb2 as pb
from taskservice.store import Store

SERVICES = ("", "cloud.v1.TaskManagementService")
READY_TIMEOUT = 2.0


class Readiness:
    """Whether the server can do its work: started, and the database answers."""

    def __init__(self) -> None:
        self.store: Store | None = None

    async def ready(self) -> bool:
        if self.store is None:
            return False
        try:
            await asyncio.wait_for(self.store.ping(), READY_TIMEOUT)
        except Exception:
            return False
        return True


class HealthService:
    """grpc.health.v1.Health: SERVING for "" and the task service while the database answers."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    async def check(
        self, request: pb.HealthCheckRequest, ctx: RequestContext[Any, Any]
    ) -> pb.HealthCheckResponse:
        if request.service not in SERVICES:
            raise ConnectError(Code.NOT_FOUND, f"unknown service {request.service!r}")
        serving = await self.readiness.ready()
        status = pb.HealthCheckResponse.SERVING if serving else pb.HealthCheckResponse.NOT_SERVING
        return pb.HealthCheckResponse(status=status)


async def healthz(request: Request) -> PlainTextResponse:
    """Liveness: the process answers."""
    return PlainTextResponse("ok\n")


def readyz_endpoint(readiness: Readiness) -> Callable[[Request], Awaitable[PlainTextResponse]]:
    async def readyz(request: Request) -> PlainTextResponse:
        """Readiness: the database answers."""
        if await readiness.ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("database unavailable\n", status_code=503)

    return readyz
