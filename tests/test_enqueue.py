"""taskservice.enqueue on the application's own connection: the task exists iff its transaction commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import psycopg
import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

import taskservice
from conftest import eventually
from taskservice.client.enqueue import enqueue, enqueue_async
from taskservice.config import Settings
from taskservice.model import SCHEDULED, Status
from taskservice.plugins import Registry
from taskservice.protocol.errors import InvalidArgument
from taskservice.store import NOTIFY_CHANNEL, Store, TaskNotFound
from taskservice.store.foreign import NotAConnection
from taskservice.worker.runtime import Worker
from taskservice.worker.serve import worker_options


def _sqlalchemy_url(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


async def _exists(store: Store, task_id: int) -> bool:
    try:
        task = await store.get_task(task_id)
    except TaskNotFound:
        return False
    history = await store.history(task_id)
    assert [(h.status, h.details) for h in history] == [(Status.QUEUED, SCHEDULED)]
    assert task.status == Status.QUEUED
    return True


def _fields(name: str) -> dict[str, Any]:
    return {"type": "sleep", "name": name, "parameters": {"seconds": "0"}, "priority": 7}


async def test_psycopg_commit_and_rollback(database_url: str, store: Store) -> None:
    with psycopg.connect(database_url) as conn:
        kept = enqueue(conn, **_fields("kept"))
        conn.commit()
        dropped = enqueue(conn, **_fields("dropped"))
        conn.rollback()
    assert await _exists(store, kept)
    assert not await _exists(store, dropped)
    task = await store.get_task(kept)
    assert (task.name, task.type, task.parameters, task.priority) == ("kept", "sleep", {"seconds": "0"}, 7)
    assert (task.max_retries, task.timeout_seconds) == (3, 60.0)  # TaskDefaults, as the server's defaults


async def test_sqlalchemy_session_commit_and_rollback(database_url: str, store: Store) -> None:
    engine = sqlalchemy.create_engine(_sqlalchemy_url(database_url, "psycopg"))
    try:
        with Session(engine) as session:
            kept = enqueue(session, **_fields("kept"))
            session.commit()
            dropped = enqueue(session, **_fields("dropped"))
            session.rollback()
        with engine.begin() as connection:  # a Connection too
            also = enqueue(connection, **_fields("also"))
    finally:
        engine.dispose()
    assert await _exists(store, kept)
    assert await _exists(store, also)
    assert not await _exists(store, dropped)


async def test_asyncpg_commit_and_rollback(database_url: str, store: Store) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            kept = await enqueue_async(conn, **_fields("kept"))
        transaction = conn.transaction()
        await transaction.start()
        dropped = await enqueue_async(conn, **_fields("dropped"))
        await transaction.rollback()
    finally:
        await conn.close()
    assert await _exists(store, kept)
    assert not await _exists(store, dropped)


async def test_psycopg_async_commit_and_rollback(database_url: str, store: Store) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        kept = await enqueue_async(conn, **_fields("kept"))
        await conn.commit()
        dropped = await enqueue_async(conn, **_fields("dropped"))
        await conn.rollback()
    assert await _exists(store, kept)
    assert not await _exists(store, dropped)


async def test_sqlalchemy_async_session_commit_and_rollback(database_url: str, store: Store) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    engine = create_async_engine(_sqlalchemy_url(database_url, "asyncpg"))
    try:
        async with AsyncSession(engine) as session:
            kept = await enqueue_async(session, **_fields("kept"))
            await session.commit()
            dropped = await enqueue_async(session, **_fields("dropped"))
            await session.rollback()
    finally:
        await engine.dispose()
    assert await _exists(store, kept)
    assert not await _exists(store, dropped)


async def test_the_same_idempotency_key_gives_the_first_task(database_url: str, store: Store) -> None:
    with psycopg.connect(database_url) as conn:
        first = enqueue(conn, **_fields("first"), idempotency_key="order-17")
        conn.commit()
        again = enqueue(conn, **_fields("again"), idempotency_key="order-17")
        conn.commit()
    assert again == first
    assert (await store.get_task(first)).name == "first"


async def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    database_url: str, store: Store
) -> None:
    with psycopg.connect(database_url) as conn:
        with pytest.raises(taskservice.InvalidArgument) as refused:  # the public one, the API's too
            enqueue(conn, **{**_fields("x"), "priority": 5000})
        assert refused.value.code == "invalid_argument"
        assert refused.value.message == "priority: must be >= 0 and <= 1000 (got 5000)"
        with pytest.raises(InvalidArgument, match=r"payload\.parameters\['bad key'\]"):
            enqueue(conn, type="sleep", name="x", parameters={"bad key": "v"})
        with pytest.raises(InvalidArgument, match="name"):
            enqueue(conn, type="sleep", name=" ")
        wrong = {"seconds": 1}  # the wire carries strings only: refused by name, as the API would
        with pytest.raises(InvalidArgument, match=r"parameters\['seconds'\]: .*must be strings \(got int\)"):
            enqueue(conn, type="sleep", name="x", parameters=wrong)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="unknown task type 'nope'"):
            enqueue(conn, type="nope", name="x", types={"sleep"})
        # A type this process knows is checked against its declaration, as CreateTask checks it.
        with pytest.raises(InvalidArgument, match=r"payload\.parameters\['seconds'\]: must be a number"):
            enqueue(conn, type="sleep", name="x", parameters={"seconds": "abc"})
        with pytest.raises(InvalidArgument, match=r"payload\.parameters\['recipient'\]"):
            enqueue(conn, type="send_email", name="x", parameters={"subject": "hi"})
        with pytest.raises(
            InvalidArgument,
            match=r"payload\.parameters\['recipient'\]: must be an e-mail address \(got 'not-an-address'\)",
        ):
            enqueue(conn, type="send_email", name="x", parameters={"recipient": "not-an-address"})
        conn.commit()
    assert await store.count_tasks() == 0
    with pytest.raises(NotAConnection, match="conn"):
        enqueue(object(), **_fields("x"))
    with (
        psycopg.connect(database_url) as conn,
        pytest.raises(NotAConnection, match="is synchronous; use the sync twin"),
    ):
        await enqueue_async(conn, **_fields("x"))
    async with await psycopg.AsyncConnection.connect(database_url) as aconn:
        with pytest.raises(NotAConnection, match="is asynchronous; use the async twin"):
            enqueue(aconn, **_fields("x"))


@asynccontextmanager
async def idle_worker(store: Store, settings: Settings) -> AsyncIterator[Worker]:
    """A worker that never polls: only a NOTIFY (or its listener connecting) makes it look."""
    options = replace(worker_options(settings, 4, ()), poll_interval=3600.0)
    worker = Worker(store, settings.database_url, Registry(), options)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)


async def test_a_worker_is_woken_at_commit(database_url: str, store: Store, settings: Settings) -> None:
    async def listening() -> bool:
        rows = await store.pool.fetch(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query = $1",
            f'LISTEN "{NOTIFY_CHANNEL}"',
        )
        return bool(rows)

    async def enqueue_and_commit(name: str) -> int:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                return await enqueue_async(conn, **_fields(name))
        finally:
            await conn.close()

    async with idle_worker(store, settings):
        await eventually(listening)
        first = await enqueue_and_commit("first")
        await eventually(lambda: _succeeded(store, first), timeout=60)
        # The listener's own look at connecting is spent by now: only the NOTIFY at commit wakes it.
        second = await enqueue_and_commit("second")
        await eventually(lambda: _succeeded(store, second), timeout=60)


async def _succeeded(store: Store, task_id: int) -> bool:
    return (await store.get_task(task_id)).status == Status.SUCCEEDED
