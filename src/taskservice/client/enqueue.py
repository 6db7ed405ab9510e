"""`enqueue(conn, ...)`: a task created in the application's own transaction, checked as CreateTask is.

The task and its history row commit or roll back with the caller's transaction; the workers are woken
when it commits. Works on a psycopg Connection or a SQLAlchemy Session/Connection (`enqueue`), and on an
asyncpg Connection, a psycopg AsyncConnection or a SQLAlchemy AsyncSession/AsyncConnection
(`enqueue_async`).
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Any

from taskservice.api import validation
from taskservice.client.errors import InvalidArgument
from taskservice.client.messages import create_request
from taskservice.model import NewTask
from taskservice.plugins import Registry
from taskservice.store.foreign import insert_task, insert_task_async
from taskservice.store.store import TaskDefaults


def _checked(
    types: Collection[str] | None, limits: validation.PayloadLimits, fields: dict[str, Any]
) -> NewTask:
    """The task, by the API's rules (InvalidArgument naming the field otherwise)."""
    request = create_request(**fields)
    # Without `types`, any type is taken: the task waits for a worker that runs it. A type this process
    # knows (a built-in, an `@task` function it imported) is checked against its declaration, as the
    # server checks CreateTask, and takes its declared max_retries and timeout.
    registry = _local_types()
    known = {
        name: registry.declaration(name) if name in registry else None
        for name in ({request.type} if types is None else types)
    }
    try:
        return validation.new_task(request, known, limits=limits)
    except validation.InvalidArgument as error:
        raise InvalidArgument(str(error)) from None


@cache
def _local_types() -> Registry:
    return Registry()


def enqueue(
    conn: Any,
    *,
    type: str,
    name: str,
    parameters: dict[str, str] | None = None,
    description: str = "",
    priority: int = 0,
    max_retries: int | None = None,
    timeout_seconds: float | None = None,
    idempotency_key: str | None = None,
    delay_seconds: float = 0.0,
    types: Collection[str] | None = None,
    limits: validation.PayloadLimits = validation.PayloadLimits(),  # noqa: B008
    defaults: TaskDefaults = TaskDefaults(),  # noqa: B008
) -> int:
    """Create a task on `conn` (psycopg Connection, SQLAlchemy Session or Connection) in its transaction.

    Returns the task's id (with an idempotency key already used: that task's id). Nothing is committed
    here: the task exists, and the workers wake, when the caller commits. `types` (the task types the
    workers run) makes an unknown type an error; `defaults` fill max_retries and timeout_seconds as the
    server's MAX_RETRIES and TASK_TIME_OUT would.
    """
    new = _checked(types, limits, {
        "name": name, "type": type, "parameters": parameters, "description": description,
        "priority": priority, "max_retries": max_retries, "timeout_seconds": timeout_seconds,
        "idempotency_key": idempotency_key, "delay_seconds": delay_seconds,
    })  # fmt: skip
    return insert_task(conn, new, defaults)


async def enqueue_async(
    conn: Any,
    *,
    type: str,
    name: str,
    parameters: dict[str, str] | None = None,
    description: str = "",
    priority: int = 0,
    max_retries: int | None = None,
    timeout_seconds: float | None = None,
    idempotency_key: str | None = None,
    delay_seconds: float = 0.0,
    types: Collection[str] | None = None,
    limits: validation.PayloadLimits = validation.PayloadLimits(),  # noqa: B008
    defaults: TaskDefaults = TaskDefaults(),  # noqa: B008
) -> int:
    """`enqueue` for an asyncpg Connection, a psycopg AsyncConnection or a SQLAlchemy AsyncSession."""
    new = _checked(types, limits, {
        "name": name, "type": type, "parameters": parameters, "description": description,
        "priority": priority, "max_retries": max_retries, "timeout_seconds": timeout_seconds,
        "idempotency_key": idempotency_key, "delay_seconds": delay_seconds,
    })  # fmt: skip
    return await insert_task_async(conn, new, defaults)
