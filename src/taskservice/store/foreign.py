"""Creating a task on the application's own connection and transaction: psycopg, asyncpg or SQLAlchemy.

The store's statements are written with `$n` placeholders (asyncpg's); the others get the same
statement with their own placeholders (psycopg `%(pN)s`, SQLAlchemy `:pN`). The caller's driver runs it
inside the caller's transaction: nothing here commits, rolls back or opens a transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

from taskservice import model
from taskservice.model import NewTask, Status, Task
from taskservice.store.sql import query
from taskservice.store.store import TaskDefaults, enqueue_json, ids_in_order, skipped_keys
from taskservice.store.waker import NOTIFY_CHANNEL

Style = Literal["asyncpg", "psycopg", "sqlalchemy"]
_PLACEHOLDER = re.compile(r"\$(\d+)\b")
_STYLES: dict[str, str] = {"psycopg": r"%(p\1)s", "sqlalchemy": r":p\1"}


class NotAConnection(TypeError):
    """`conn` is none of the connections enqueue knows."""


@cache
def statement(name: str, style: Style) -> str:
    """The named statement with `style`'s placeholders."""
    text = query(name)
    if style == "asyncpg":
        return text
    if style == "psycopg" and "%" in _PLACEHOLDER.sub("", text):
        raise ValueError(f"{name}: a literal % would need escaping for psycopg")
    return _PLACEHOLDER.sub(_STYLES[style], text)


def _named(values: list[Any]) -> dict[str, Any]:
    return {f"p{i}": value for i, value in enumerate(values, start=1)}


def style_of(conn: object) -> tuple[Style, bool]:
    """(placeholder style, whether its calls are awaited) of a connection or session."""
    module = type(conn).__module__
    if module.startswith("asyncpg"):
        return "asyncpg", True
    if module.startswith("psycopg"):
        import psycopg

        if isinstance(conn, psycopg.Connection):
            return "psycopg", False
        if isinstance(conn, psycopg.AsyncConnection):
            return "psycopg", True
    if module.startswith("sqlalchemy"):
        from sqlalchemy.engine import Connection
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
        from sqlalchemy.orm import Session

        if isinstance(conn, Session | Connection):
            return "sqlalchemy", False
        if isinstance(conn, AsyncSession | AsyncConnection):
            return "sqlalchemy", True
    raise NotAConnection(
        f"conn: {type(conn).__name__} is not a psycopg (Async)Connection, an asyncpg Connection, or a "
        "SQLAlchemy (Async)Session or (Async)Connection"
    )


def _rows(conn: Any, style: Style, name: str, values: list[Any]) -> list[Any]:
    """Every row of statement `name` with `values` ($1 first), on a sync connection."""
    if style == "psycopg":
        return list(conn.execute(statement(name, style), _named(values)).fetchall())
    from sqlalchemy import text

    return list(conn.execute(text(statement(name, style)), _named(values)).all())


async def _rows_async(conn: Any, style: Style, name: str, values: list[Any]) -> list[Any]:
    """Every row of statement `name` with `values` ($1 first), on an async connection."""
    if style == "asyncpg":
        return list(await conn.fetch(statement(name, style), *values))
    if style == "psycopg":
        return list(await (await conn.execute(statement(name, style), _named(values))).fetchall())
    from sqlalchemy import text

    return list((await conn.execute(text(statement(name, style)), _named(values))).all())


def _sync_style(conn: Any) -> Style:
    style, awaited = style_of(conn)
    if awaited:
        raise NotAConnection(f"conn: {type(conn).__name__} is asynchronous; use the async twin")
    return style


def _async_style(conn: Any) -> Style:
    style, awaited = style_of(conn)
    if not awaited:
        raise NotAConnection(f"conn: {type(conn).__name__} is synchronous; use the sync twin")
    return style


def insert_task(conn: Any, new: NewTask, defaults: TaskDefaults = TaskDefaults()) -> int:  # noqa: B008
    """Insert `new` on a sync connection; returns its id (an existing idempotency key's task's id)."""
    [task_id] = insert_tasks(conn, [new], defaults)
    return task_id


async def insert_task_async(conn: Any, new: NewTask, defaults: TaskDefaults = TaskDefaults()) -> int:  # noqa: B008
    """Insert `new` on an async connection; returns its id (an existing idempotency key's task's id)."""
    [task_id] = await insert_tasks_async(conn, [new], defaults)
    return task_id


# enqueued_tasks' columns, in its order.
_TASK_COLUMNS = (
    "id", "name", "type", "status", "payload", "retries", "max_retries", "priority", "description",
    "timeout_seconds", "attempts", "created_at", "updated_at", "run_at", "idempotency_key",
)  # fmt: skip


def _task(row: Any) -> Task:
    values = dict(zip(_TASK_COLUMNS, row, strict=True))
    values["status"] = Status(values["status"])
    values["payload"] = json.loads(values["payload"])
    return Task(**values)


def _filters(type: str | None, name: str | None, status: Status | None) -> list[Any]:
    return [type, name, None if status is None else int(status)]


def find_tasks(
    conn: Any, *, type: str | None = None, name: str | None = None, status: Status | None = None
) -> list[Task]:
    """The tasks `conn` sees (its own uncommitted ones included), oldest first, of a type/name/status."""
    return [
        _task(row) for row in _rows(conn, _sync_style(conn), "enqueued_tasks", _filters(type, name, status))
    ]


async def find_tasks_async(
    conn: Any, *, type: str | None = None, name: str | None = None, status: Status | None = None
) -> list[Task]:
    """`find_tasks` on an async connection."""
    rows = await _rows_async(conn, _async_style(conn), "enqueued_tasks", _filters(type, name, status))
    return [_task(row) for row in rows]


def _many_values(tasks: Sequence[NewTask], defaults: TaskDefaults) -> list[Any]:
    """enqueue_tasks' parameters, $1 first: notified at commit on the queue's channel."""
    return [enqueue_json(tasks, defaults), model.SCHEDULED, NOTIFY_CHANNEL]


def _existing(rows: list[Any]) -> dict[str, int]:
    return {key: int(task_id) for task_id, key in rows}


def insert_tasks(
    conn: Any,
    tasks: Sequence[NewTask],
    defaults: TaskDefaults = TaskDefaults(),  # noqa: B008
) -> list[int]:
    """Insert `tasks` in one statement on a sync connection; their ids in order (a taken idempotency
    key's: that task's)."""
    style = _sync_style(conn)
    inserted = [(int(i), k) for i, k in _rows(conn, style, "enqueue_tasks", _many_values(tasks, defaults))]
    missing = skipped_keys(tasks, inserted)
    existing = _existing(_rows(conn, style, "ids_by_idempotency_key", [missing])) if missing else {}
    return _ids(tasks, inserted, existing)


async def insert_tasks_async(
    conn: Any,
    tasks: Sequence[NewTask],
    defaults: TaskDefaults = TaskDefaults(),  # noqa: B008
) -> list[int]:
    """`insert_tasks` on an async connection."""
    style = _async_style(conn)
    rows = await _rows_async(conn, style, "enqueue_tasks", _many_values(tasks, defaults))
    inserted = [(int(i), k) for i, k in rows]
    missing = skipped_keys(tasks, inserted)
    found = await _rows_async(conn, style, "ids_by_idempotency_key", [missing]) if missing else []
    return _ids(tasks, inserted, _existing(found))


def _ids(
    tasks: Sequence[NewTask], inserted: list[tuple[int, str | None]], existing: dict[str, int]
) -> list[int]:
    missing = [k for k in skipped_keys(tasks, inserted) if k not in existing]
    if missing:  # their tasks are in transactions this one cannot see (REPEATABLE READ, say)
        raise LookupError(f"idempotency_key {missing[0]!r} is taken by a task this transaction cannot see")
    return [task_id for task_id, _ in ids_in_order(tasks, inserted, existing)]
