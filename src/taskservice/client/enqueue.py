"""`enqueue(conn, ...)`: a task created in the application's own transaction, checked as CreateTask is.

The task and its history row commit or roll back with the caller's transaction; the workers are woken
when it commits. Works on a psycopg Connection or a SQLAlchemy Session/Connection (`enqueue`), and on an
asyncpg Connection, a psycopg AsyncConnection or a SQLAlchemy AsyncSession/AsyncConnection
(`enqueue_async`). A declared type's typed calls (`resize_avatar.enqueue(conn, width=128)`) come here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from functools import cache
from typing import TYPE_CHECKING, Any

from taskservice import tracing
from taskservice.model import NewTask, TaskOptionFields, TaskOptions, task_options
from taskservice.plugins import Registry
from taskservice.protocol.errors import InvalidArgument
from taskservice.rules import tasks as rules
from taskservice.store.foreign import insert_task, insert_task_async
from taskservice.store.store import TaskDefaults

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _checked(types: Collection[str] | None, limits: rules.PayloadLimits, new: NewTask) -> NewTask:
    """The task, by the rules CreateTask applies (InvalidArgument naming the field otherwise)."""
    # Without `types`, any type is taken: the task waits for a worker that runs it. A type this process
    # knows (a built-in, an `@task` function it imported) is checked against its declaration, as the
    # server checks CreateTask, and takes its declared max_retries and timeout.
    registry = _local_types()
    known = {
        name: registry.declaration(name) if name in registry else None
        for name in ({new.type} if types is None else types)
    }
    try:
        return rules.new_task(new, known, limits=limits)
    except rules.BrokenRule as error:
        raise InvalidArgument(str(error)) from None


@cache
def _local_types() -> Registry:
    return Registry()


def enqueue(
    conn: Any,
    *,
    type: str,
    parameters: dict[str, str] | None = None,
    options: TaskOptions | None = None,
    types: Collection[str] | None = None,
    limits: rules.PayloadLimits = rules.PayloadLimits(),  # noqa: B008
    defaults: TaskDefaults = TaskDefaults(),  # noqa: B008
    **fields: Unpack[TaskOptionFields],
) -> int:
    """Create a task on `conn` (psycopg Connection, SQLAlchemy Session or Connection) in its transaction.

    Returns the task's id (with an idempotency key already used: that task's id). Nothing is committed
    here: the task exists, and the workers wake, when the caller commits. The options come as one
    `TaskOptions`, or as its fields by name (`priority=5`), not both. `types` (the task types the
    workers run) makes an unknown type an error; `defaults` fill max_retries and timeout_seconds as the
    server's MAX_RETRIES and TASK_TIME_OUT would.
    """
    new = _checked(types, limits, task_options(options, fields).new_task(type, parameters))
    # Inside a span of the caller's OpenTelemetry: the task continues its trace (docs/observability.md).
    with tracing.caller_span("taskservice.enqueue", new.type) as trace_parent:
        if trace_parent is not None:
            new = dataclasses.replace(new, trace_parent=trace_parent)
        return insert_task(conn, new, defaults)


async def enqueue_async(
    conn: Any,
    *,
    type: str,
    parameters: dict[str, str] | None = None,
    options: TaskOptions | None = None,
    types: Collection[str] | None = None,
    limits: rules.PayloadLimits = rules.PayloadLimits(),  # noqa: B008
    defaults: TaskDefaults = TaskDefaults(),  # noqa: B008
    **fields: Unpack[TaskOptionFields],
) -> int:
    """`enqueue` for an asyncpg Connection, a psycopg AsyncConnection or a SQLAlchemy AsyncSession."""
    new = _checked(types, limits, task_options(options, fields).new_task(type, parameters))
    with tracing.caller_span("taskservice.enqueue", new.type) as trace_parent:
        if trace_parent is not None:
            new = dataclasses.replace(new, trace_parent=trace_parent)
        return await insert_task_async(conn, new, defaults)
