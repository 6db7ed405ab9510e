"""The RPCs' spans (docs/observability.md): a Connect interceptor beside the metrics' one, in the chain
only while tracing is on. Each unary RPC is a SERVER span continuing the caller's W3C `traceparent`
header (a new trace without one); the enqueue and dispatch spans of api/service.py are under it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from taskservice import tracing

REQ = TypeVar("REQ")
RES = TypeVar("RES")


class RpcTraces:
    """A Connect interceptor: one span per unary RPC, named `<service>/<method>`."""

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        method = ctx.method()
        attributes = {
            "rpc.system": "connect_rpc", "rpc.service": method.service_name, "rpc.method": method.name,
        }  # fmt: skip
        parent = tracing.valid(ctx.request_headers().get("traceparent"))
        with tracing.span(
            f"{method.service_name}/{method.name}", parent=parent, kind="server", attributes=attributes
        ) as span:
            try:
                return await call_next(request, ctx)
            except ConnectError as error:
                if span is not None:
                    span.set_attribute("rpc.connect_rpc.error_code", error.code.value)
                    tracing.failed(span, error.message)
                raise
