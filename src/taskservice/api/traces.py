"""The RPCs' spans (docs/observability.md): a Connect interceptor beside the metrics' one, in the chain
only while tracing is on. Each unary RPC is a SERVER span continuing the caller's W3C `traceparent`
header (a new trace without one); the enqueue and dispatch spans of api/service.py are under it. A
stream (PullEvents, WatchEvents) is a SERVER span from its start to its end, never made current: what
happens while it is open (an agent's attempts) continues the traces of the tasks, not the stream's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from taskservice import tracing

REQ = TypeVar("REQ")
RES = TypeVar("RES")


class RpcTraces:
    """A Connect interceptor: one span per RPC, unary or stream, named `<service>/<method>`."""

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

    async def intercept_server_stream(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> AsyncIterator[RES]:
        method = ctx.method()
        attributes = {
            "rpc.system": "connect_rpc", "rpc.service": method.service_name, "rpc.method": method.name,
        }  # fmt: skip
        parent = tracing.valid(ctx.request_headers().get("traceparent"))
        span = tracing.open_span(f"{method.service_name}/{method.name}", parent, "server", attributes)
        stream = call_next(request, ctx)
        try:
            async for response in stream:
                yield response
        except ConnectError as error:
            if span is not None:
                span.set_attribute("rpc.connect_rpc.error_code", error.code.value)
                tracing.failed(span, error.message)
            raise
        finally:
            aclose = getattr(stream, "aclose", None)  # now, not when collected (as the metrics' does)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if span is not None:
                span.end()
