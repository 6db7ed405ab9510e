"""Health: the gRPC health protocol over Connect, plus plain /healthz (alive) and /readyz (database).

`/readyz?verbose` adds what informs without failing readiness: whether autovacuum vacuums our hot
tables, and their dead tuples (worker/maintenance.py vacuums them when it does not); with auth on,
only where /metrics is public too, since /readyz always is."""

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
NOT_PUBLIC = "detail: not shown here with auth on; see /metrics (taskservice_table_*) or set METRICS_PUBLIC"


class Readiness:
    """Whether the server can do its work: started, and the database answers."""

    def __init__(self, *, detail_public: bool = True) -> None:
        self.store: Store | None = None
        self.detail_public = detail_public  # else `detail` says where to look: /readyz is public

    async def ready(self) -> bool:
        if self.store is None:
            return False
        try:
            await asyncio.wait_for(self.store.ping(), READY_TIMEOUT)
        except Exception:
            return False
        return True

    async def detail(self) -> list[str]:
        """Lines that inform and never fail readiness: autovacuum's warnings, each hot table's dead tuples."""
        if self.store is None:
            return []
        if not self.detail_public:
            return [NOT_PUBLIC]
        try:
            state = await asyncio.wait_for(self.store.vacuum_state(), READY_TIMEOUT)
        except Exception as error:
            return [f"dead tuples: not read ({type(error).__name__})"]
        lines = [f"warning: {problem}" for problem in state.warnings()]
        for table in state.tables:
            vacuumed = "autovacuum on" if state.autovacuum_runs_on(table) else "autovacuum off"
            lines.append(
                f"table {table.table}: {table.dead} dead tuples "
                f"(autovacuum acts at {table.autovacuum_at:.0f}; {vacuumed})"
            )
        return lines


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
        """Readiness: the database answers. With `?verbose`, what informs besides (Readiness.detail)."""
        if await readiness.ready():
            if "verbose" not in request.query_params:
                return PlainTextResponse("ready\n")
            return PlainTextResponse("".join(f"{line}\n" for line in ["ready", *await readiness.detail()]))
        return PlainTextResponse("database unavailable\n", status_code=503)

    return readyz
