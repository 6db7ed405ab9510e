"""Creating a task on the application's own connection and transaction: psycopg, asyncpg or SQLAlchemy.

The store's statements are written with `$n` placeholders (asyncpg's); the others get the same
statement with their own placeholders (psycopg `%(pN)s`, SQLAlchemy `:pN`). The caller's driver runs it
inside the caller's transaction: nothing here commits, rolls back or opens a transaction.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, Literal

from taskservice import model
from taskservice.model import NewTask
from taskservice.store.sql import query
from taskservice.store.store import TaskDefaults
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


def _values(new: NewTask, defaults: TaskDefaults) -> list[Any]:
    """enqueue_task's parameters, $1 first."""
    return [
        new.name,
        new.type,
        json.dumps({"parameters": dict(new.parameters)}),
        new.description,
        new.priority,
        defaults.max_retries if new.max_retries is None else new.max_retries,
        defaults.timeout_seconds if new.timeout_seconds is None else new.timeout_seconds,
        new.idempotency_key,
        new.delay_seconds,
        model.SCHEDULED,
        NOTIFY_CHANNEL,
    ]


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


def insert_task(conn: Any, new: NewTask, defaults: TaskDefaults = TaskDefaults()) -> int:  # noqa: B008
    """Insert `new` on a sync connection; returns its id (an existing idempotency key's task's id)."""
    style, awaited = style_of(conn)
    if awaited:
        raise NotAConnection(f"conn: {type(conn).__name__} is asynchronous; use enqueue_async")
    values = _values(new, defaults)
    if style == "psycopg":
        row = conn.execute(statement("enqueue_task", style), _named(values)).fetchone()
        if row is None:
            row = conn.execute(
                statement("id_by_idempotency_key", style), {"p1": new.idempotency_key}
            ).fetchone()
    else:
        from sqlalchemy import text

        row = conn.execute(text(statement("enqueue_task", style)), _named(values)).first()
        if row is None:
            found = text(statement("id_by_idempotency_key", style))
            row = conn.execute(found, {"p1": new.idempotency_key}).first()
    return _id(row, new)


async def insert_task_async(conn: Any, new: NewTask, defaults: TaskDefaults = TaskDefaults()) -> int:  # noqa: B008
    """Insert `new` on an async connection; returns its id (an existing idempotency key's task's id)."""
    style, awaited = style_of(conn)
    if not awaited:
        raise NotAConnection(f"conn: {type(conn).__name__} is synchronous; use enqueue")
    values = _values(new, defaults)
    if style == "asyncpg":
        row = await conn.fetchrow(statement("enqueue_task", style), *values)
        if row is None:
            row = await conn.fetchrow(statement("id_by_idempotency_key", style), new.idempotency_key)
    elif style == "psycopg":
        row = await (await conn.execute(statement("enqueue_task", style), _named(values))).fetchone()
        if row is None:
            found = statement("id_by_idempotency_key", style)
            row = await (await conn.execute(found, {"p1": new.idempotency_key})).fetchone()
    else:
        from sqlalchemy import text

        row = (await conn.execute(text(statement("enqueue_task", style)), _named(values))).first()
        if row is None:
            lookup = text(statement("id_by_idempotency_key", style))
            row = (await conn.execute(lookup, {"p1": new.idempotency_key})).first()
    return _id(row, new)


def _id(row: Any, new: NewTask) -> int:
    if row is None:  # the key's task is in a transaction this one cannot see (REPEATABLE READ, say)
        raise LookupError(
            f"idempotency_key {new.idempotency_key!r} is taken by a task this transaction cannot see"
        )
    return int(row[0])
