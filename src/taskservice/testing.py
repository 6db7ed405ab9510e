"""Helpers for testing your own task types against a real PostgreSQL: a database, drain, enqueued.

with taskservice.testing.database() as url:          # the embedded PostgreSQL, a fresh database
    with psycopg.connect(url) as conn:
        taskservice.enqueue(conn, type="resize", name="r1", parameters={"width": "64"})
        assert [t.name for t in taskservice.testing.enqueued(conn, type="resize")] == ["r1"]
    ran = taskservice.testing.drain(url, registry=my_registry)   # runs until nothing is due
    assert ran[0].status == TaskStatus.SUCCEEDED
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskservice.client.messages import Task, TaskStatus
from taskservice.model import RetryPolicy, Status
from taskservice.store.foreign import find_tasks, find_tasks_async

__all__ = ["Ran", "database", "drain", "drain_async", "enqueued", "enqueued_async"]

# Retried at once: a drain runs a failing task's every attempt without waiting out a backoff.
NO_BACKOFF = RetryPolicy(base=0.0, cap=0.0)


def default_data_dir() -> Path:
    """Where `database()` keeps its embedded PostgreSQL: one per user, reused by every later run."""
    return Path(tempfile.gettempdir()) / f"taskservice-tests-{os.getuid()}" / "pgdata"


@contextlib.contextmanager
def database(server_url: str | None = None, *, data_dir: Path | None = None) -> Iterator[str]:
    """A fresh, migrated database; yields its URL and drops it afterwards.

    On the PostgreSQL server at `server_url`, or else on the embedded one in `data_dir` (started on
    first use, then shared by every test run of this user).
    """
    import psycopg
    from psycopg import sql

    from taskservice.db import embedded, migrate
    from taskservice.db.connect import with_database

    server = server_url or embedded.server_url(data_dir or default_data_dir())
    name = f"taskservice_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(frozen=True)
class Ran:
    """One attempt a drain ran, and how it ended."""

    task_id: int
    type: str
    name: str
    status: TaskStatus  # what the attempt made of the task: SUCCEEDED, RETRYING, FAILED, ...
    outcome: str  # succeeded, failed, timed_out, ...
    result: Any
    error: str | None  # a failure in one line: `NoSuchCustomer: nobody`
    traceback: str | None = None  # and where it was raised (failures by an exception only)


async def drain_async(
    database_url: str,
    *,
    registry: Any = None,
    types: Sequence[str] = (),
    concurrency: int = 10,
    retry_policy: RetryPolicy = NO_BACKOFF,
    timeout: float = 300.0,
) -> list[Ran]:
    """Run a worker until no task it takes is due and none runs; every attempt it ran, in order.

    `registry` (a taskservice.plugins.Registry; by default the installed task types) says what runs;
    `types` limits the drain to those types (by default the registry's; one the registry does not
    have is an error, taskservice.worker.errors.UnknownTaskTypes). Retries are due at once
    (`retry_policy`), so a failing task is run to its end; a task delayed into the future is left.
    """
    from taskservice.db.connect import create_pool
    from taskservice.plugins import Registry
    from taskservice.store import Store
    from taskservice.worker.runtime import Worker, WorkerOptions

    registry = registry if registry is not None else Registry()
    options = WorkerOptions(
        concurrency=concurrency,
        task_types=tuple(types) or tuple(registry.names()),
        retry_policy=retry_policy,
        shutdown_grace=timeout,
        drain=True,
    )
    deadline = time.monotonic() + timeout
    pool = await create_pool(database_url, max_size=concurrency + 4)
    try:
        store = Store(pool)
        transitions = []
        while True:  # again after a run that did something: its retries are written and due by now
            worker = Worker(store, database_url, registry, options)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the queue was not drained within {timeout:g}s")
            await asyncio.wait_for(worker.run(asyncio.Event()), remaining)
            if not worker.drained:
                break
            transitions.extend(worker.drained)
        tasks = {t.task_id: await store.get_task(t.task_id) for t in transitions}
    finally:
        await pool.close()
    return [
        Ran(
            t.task_id,
            tasks[t.task_id].type,
            tasks[t.task_id].name,
            TaskStatus(t.status),
            t.outcome,
            t.result,
            t.error,
            t.traceback,
        )
        for t in transitions
    ]


def drain(
    database_url: str,
    *,
    registry: Any = None,
    types: Sequence[str] = (),
    concurrency: int = 10,
    retry_policy: RetryPolicy = NO_BACKOFF,
    timeout: float = 300.0,
) -> list[Ran]:
    """`drain_async` for a test without an event loop of its own."""
    return asyncio.run(
        drain_async(
            database_url, registry=registry, types=types, concurrency=concurrency,
            retry_policy=retry_policy, timeout=timeout,
        )
    )  # fmt: skip


def enqueued(
    conn: Any, *, type: str | None = None, name: str | None = None, status: TaskStatus | Status | None = None
) -> list[Task]:
    """The tasks on `conn` (psycopg or SQLAlchemy; its uncommitted ones too), oldest first, as the
    client's `taskservice.Task`."""
    found = find_tasks(conn, type=type, name=name, status=None if status is None else Status(status))
    return [Task.from_record(t) for t in found]


async def enqueued_async(
    conn: Any, *, type: str | None = None, name: str | None = None, status: TaskStatus | Status | None = None
) -> list[Task]:
    """`enqueued` on an asyncpg connection, a psycopg AsyncConnection or a SQLAlchemy AsyncSession."""
    found = await find_tasks_async(
        conn, type=type, name=name, status=None if status is None else Status(status)
    )
    return [Task.from_record(t) for t in found]
