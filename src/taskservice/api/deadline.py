"""Each call's deadline: DB_COMMAND_TIMEOUT from when the call is let in, whatever the database does.

asyncpg's command timeout bounds one statement, not a call: a call may wait for a pool connection
first (unbounded), run several statements, and, when one times out, wait again for its cancellation
to reach the database before the connection goes back to the pool. With PostgreSQL frozen, calls took
twice DB_COMMAND_TIMEOUT and more. Here a call's work (its credentials' check, then its handler) runs
until one deadline; past it, the call answers `unavailable` at once and its work is left to unwind by
itself in the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from starlette.types import ASGIApp, Receive, Scope, Send

T = TypeVar("T")
REQ = TypeVar("REQ")
RES = TypeVar("RES")

_deadline: ContextVar[float | None] = ContextVar("call_deadline", default=None)
_unwinding: set[asyncio.Task[Any]] = set()  # work past its deadline, kept until it has unwound


class DeadlinePassed(TimeoutError):
    """The call's deadline passed before its work was done."""


class CallDeadline:
    """ASGI middleware: the call's deadline starts when the request is let in (its body read)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _deadline.set(asyncio.get_running_loop().time() + self.seconds)
        await self.app(scope, receive, send)


def stop_starting_at(share: float = 0.75) -> float | None:
    """When work done in steps (the bulk actions' batches) should start no more steps: once `share`
    of the call's time is spent, on the event loop's clock; None for a call without a deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    now = asyncio.get_running_loop().time()
    return now + max(0.0, deadline - now) * share


async def within_deadline(work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, or DeadlinePassed once the call's deadline passed (`work` is then
    cancelled, and left to unwind without being waited for)."""
    deadline = _deadline.get()
    if deadline is None:
        return await work
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        return task.result()
    task.cancel()
    _unwinding.add(task)
    task.add_done_callback(_unwound)
    raise DeadlinePassed


def _unwound(task: asyncio.Task[Any]) -> None:
    _unwinding.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: it is the deadline's answer that counts


def unavailable() -> ConnectError:
    return ConnectError(
        Code.UNAVAILABLE, "the database did not answer in time (DB_COMMAND_TIMEOUT); try again"
    )


class DeadlineGuard:
    """A Connect interceptor: a unary call past its deadline answers `unavailable` (a stream lasts as
    long as its client wants, and has no deadline)."""

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        async def call() -> RES:
            return await call_next(request, ctx)

        try:
            return await within_deadline(call())
        except DeadlinePassed:
            raise unavailable() from None
