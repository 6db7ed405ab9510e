"""`enqueue(conn, ...)`: a task created in the application's own transaction, checked as CreateTask is;
`enqueue_many(conn, tasks)`: many in one statement per batch of up to BATCH_MAX.

The task and its history row commit or roll back with the caller's transaction; the workers are woken
when it commits. Works on a psycopg Connection or a SQLAlchemy Session/Connection (`enqueue`), and on an
asyncpg Connection, a psycopg AsyncConnection or a SQLAlchemy AsyncSession/AsyncConnection
(`enqueue_async`). A declared type's typed calls (`resize_avatar.enqueue(conn, width=128)`) come here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from taskservice import tracing
from taskservice.model import NewTask, TaskOptionFields, TaskOptions, task_options
from taskservice.plugins import Registry
from taskservice.protocol.errors import InvalidArgument
from taskservice.rules import tasks as rules
from taskservice.store.foreign import insert_task, insert_task_async, insert_tasks, insert_tasks_async
from taskservice.store.store import TaskDefaults

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _known(types: Collection[str] | None, tasks: Iterable[NewTask]) -> rules.TaskTypes:
    """The types `tasks` may have, with their declarations where this process knows them."""
    # Without `types`, any type is taken: the task waits for a worker that runs it. A type this process
    # knows (a built-in, an `@task` function it imported) is checked against its declaration, as the
    # server checks CreateTask, and takes its declared max_retries and timeout.
    registry = _local_types()
    names = {t.type for t in tasks} if types is None else types
    return {name: registry.declaration(name) if name in registry else None for name in names}


def _checked(types: Collection[str] | None, limits: rules.PayloadLimits, new: NewTask) -> NewTask:
    """The task, by the rules CreateTask applies (InvalidArgument naming the field otherwise)."""
    try:
        return rules.new_task(new, _known(types, [new]), limits=limits)
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


# Tasks per statement of enqueue_many: its arrays are built whole in memory, and PostgreSQL takes a
# statement's parameters whole too.
BATCH_MAX = 5_000


def _checked_many(
    tasks: Iterable[NewTask], types: Collection[str] | None, limits: rules.PayloadLimits
) -> list[NewTask]:
    """Each task by CreateTask's rules (InvalidArgument naming `tasks[i].` and the field)."""
    given = list(tasks)
    known = _known(types, given)
    checked: list[NewTask] = []
    for index, new in enumerate(given):
        try:
            checked.append(rules.new_task(new, known, f"tasks[{index}].", limits))
        except rules.BrokenRule as error:
            raise InvalidArgument(str(error)) from None
    return checked


def _traced(tasks: list[NewTask], trace_parent: str | None) -> list[NewTask]:
    """The tasks continuing the trace of the caller's span (docs/observability.md), if it has one."""
    if trace_parent is None:
        return tasks
    return [dataclasses.replace(t, trace_parent=trace_parent) for t in tasks]


def _batches(tasks: list[NewTask]) -> list[list[NewTask]]:
    return [tasks[start : start + BATCH_MAX] for start in range(0, len(tasks), BATCH_MAX)]


def _types_of(tasks: list[NewTask]) -> str:
    kinds = sorted({t.type for t in tasks})
    return ",".join(kinds[:10]) + (",…" if len(kinds) > 10 else "")


def enqueue_many(
    conn: Any,
    tasks: Iterable[NewTask],
    *,
    types: Collection[str] | None = None,
    limits: rules.PayloadLimits = rules.PayloadLimits(),  # noqa: B008
    defaults: TaskDefaults = TaskDefaults(),  # noqa: B008
) -> list[int]:
    """Create `tasks` on `conn` (psycopg Connection, SQLAlchemy Session or Connection) in its
    transaction, one statement per BATCH_MAX of them; their ids, in order (with an idempotency key
    already used: that task's id). All are checked before any is written: a bad one (InvalidArgument
    naming `tasks[i].` and its field) writes nothing. A declared type's typed form: `square.new(x=3)`
    is the NewTask that `square.enqueue(conn, x=3)` creates. Otherwise as `enqueue`."""
    checked = _checked_many(tasks, types, limits)
    if not checked:
        return []
    with tracing.caller_span("taskservice.enqueue_many", _types_of(checked), len(checked)) as trace_parent:
        traced = _traced(checked, trace_parent)
        return [task_id for batch in _batches(traced) for task_id in insert_tasks(conn, batch, defaults)]


async def enqueue_many_async(
    conn: Any,
    tasks: Iterable[NewTask],
    *,
    types: Collection[str] | None = None,
    limits: rules.PayloadLimits = rules.PayloadLimits(),  # noqa: B008
    defaults: TaskDefaults = TaskDefaults(),  # noqa: B008
) -> list[int]:
    """`enqueue_many` for an asyncpg Connection, a psycopg AsyncConnection or a SQLAlchemy AsyncSession."""
    checked = _checked_many(tasks, types, limits)
    if not checked:
        return []
    ids: list[int] = []
    with tracing.caller_span("taskservice.enqueue_many", _types_of(checked), len(checked)) as trace_parent:
        for batch in _batches(_traced(checked, trace_parent)):
            ids += await insert_tasks_async(conn, batch, defaults)
    return ids
