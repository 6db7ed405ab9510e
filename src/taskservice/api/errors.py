"""Our exceptions as Connect codes, for every RPC of every service, in one interceptor.

A handler raises what went wrong in its own terms (BrokenRule, TaskNotFound, a dead database...);
the table below says what a caller is answered. Anything else is a bug: logged once with the RPC's
name and the traceback, answered `internal` without details. Registered innermost (api/app.py), so the
deadline (api/deadline.py), the id guard (api/ids.py) and the metrics see the answer a caller gets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from taskservice.api import ids
from taskservice.auth.tokens import BadTokenRequest
from taskservice.model import IllegalTransition
from taskservice.rules.schedules import DeclaredInCode
from taskservice.rules.tasks import BrokenRule
from taskservice.store import (
    IdAboveLimit,
    NotHeld,
    ScheduleNameTaken,
    ScheduleNotFound,
    StepOfWorkflow,
    TaskNotFound,
    TokenNameTaken,
    TokenNotFound,
    WorkerNotFound,
    WorkflowNotFound,
    WorkflowUnfinished,
)

log = structlog.get_logger(__name__)

REQ = TypeVar("REQ")
RES = TypeVar("RES")

UNAVAILABLE = "the database is unavailable; try again"
INTERNAL = "internal error; the server log has the details"


def _said(code: Code) -> Callable[[Exception], ConnectError]:
    """The code, with the exception's own message (it says what was wrong and how to fix it)."""
    return lambda error: ConnectError(code, str(error))


def _id_above_limit(error: Exception) -> ConnectError:
    assert isinstance(error, IdAboveLimit)
    return ids.out_of_range(ids.IdOutOfRange("id", error.task_id))


def _id_out_of_range(error: Exception) -> ConnectError:
    assert isinstance(error, ids.IdOutOfRange)
    return ids.out_of_range(error)


# The first entry the exception is an instance of answers it: NotHeld is a PermissionError, an OSError,
# so it comes before the database's failures.
CODES: tuple[
    tuple[type[Exception] | tuple[type[Exception], ...], Callable[[Exception], ConnectError]], ...
] = (
    ((BrokenRule, BadTokenRequest), _said(Code.INVALID_ARGUMENT)),
    (
        (TaskNotFound, TokenNotFound, ScheduleNotFound, WorkflowNotFound, WorkerNotFound),
        _said(Code.NOT_FOUND),
    ),
    ((TokenNameTaken, ScheduleNameTaken), _said(Code.ALREADY_EXISTS)),
    (
        (IllegalTransition, DeclaredInCode, WorkflowUnfinished, StepOfWorkflow),
        _said(Code.FAILED_PRECONDITION),
    ),
    (NotHeld, _said(Code.PERMISSION_DENIED)),
    (IdAboveLimit, _id_above_limit),
    (ids.IdOutOfRange, _id_out_of_range),
)

# The database could not be reached or did not answer (TimeoutError: DB_COMMAND_TIMEOUT passed).
DATABASE_DOWN = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)


def connect_error(error: Exception, rpc: str) -> ConnectError:
    """What a caller of `rpc` is answered for `error` (logged when it is not the caller's doing)."""
    if isinstance(error, ConnectError):
        return error
    for kinds, answer in CODES:
        if isinstance(error, kinds):
            return answer(error)
    if isinstance(error, DATABASE_DOWN):
        log.error("database unavailable", rpc=rpc, error=str(error))
        return ConnectError(Code.UNAVAILABLE, UNAVAILABLE)
    log.error("unexpected error", rpc=rpc, exc_info=error)
    return ConnectError(Code.INTERNAL, INTERNAL)


class ErrorCodes:
    """A Connect interceptor: every unary and server-streaming call's exceptions as Connect codes."""

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        try:
            return await call_next(request, ctx)
        except Exception as error:
            raise connect_error(error, ctx.method().name) from None

    async def intercept_server_stream(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> AsyncIterator[RES]:
        stream = call_next(request, ctx)
        try:
            async for response in stream:
                yield response
        except Exception as error:
            raise connect_error(error, ctx.method().name) from None
        finally:
            # Closed here, not whenever it is collected: a stream's own cleanup (an agent's session
            # put back) runs as soon as its client is gone.
            aclose: Any = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.exception("closing a stream failed", rpc=ctx.method().name)
