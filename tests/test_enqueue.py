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
from taskservice.client.enqueue import enqueue, enqueue_async, enqueue_many, enqueue_many_async
from taskservice.config import Settings
from taskservice.model import SCHEDULED, NewTask, Status
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


# -- enqueue_many: many tasks in one statement, in the caller's transaction --------------------------


@taskservice.task("bulk_square")
def bulk_square(x: int) -> int:
    return x * x


def _batch(prefix: str, count: int) -> list[NewTask]:
    return [NewTask(f"{prefix} {i}", "sleep", {"seconds": "0"}, priority=i % 3) for i in range(count)]


async def _all_scheduled(store: Store, ids: list[int], prefix: str) -> None:
    tasks = [await store.get_task(task_id) for task_id in ids]
    assert [t.name for t in tasks] == [f"{prefix} {i}" for i in range(len(ids))]  # in order
    assert [t.priority for t in tasks] == [i % 3 for i in range(len(ids))]
    assert all([await _exists(store, task_id) for task_id in ids[:3]])  # history "Task is scheduled"


async def test_enqueue_many_commits_and_rolls_back_on_every_driver(database_url: str, store: Store) -> None:
    with psycopg.connect(database_url) as conn:
        kept = enqueue_many(conn, _batch("psycopg", 50))
        conn.commit()
        dropped = enqueue_many(conn, _batch("dropped", 5))
        conn.rollback()
    await _all_scheduled(store, kept, "psycopg")
    assert not any([await _exists(store, task_id) for task_id in dropped])

    engine = sqlalchemy.create_engine(_sqlalchemy_url(database_url, "psycopg"))
    try:
        with Session(engine) as session:
            in_session = enqueue_many(session, _batch("session", 20))
            session.commit()
    finally:
        engine.dispose()
    await _all_scheduled(store, in_session, "session")

    conn_async = await asyncpg.connect(database_url)
    try:
        async with conn_async.transaction():
            by_asyncpg = await enqueue_many_async(conn_async, _batch("asyncpg", 30))
    finally:
        await conn_async.close()
    await _all_scheduled(store, by_asyncpg, "asyncpg")

    async with await psycopg.AsyncConnection.connect(database_url) as aconn:
        by_psycopg_async = await enqueue_many_async(aconn, _batch("psycopg async", 10))
        await aconn.commit()
    await _all_scheduled(store, by_psycopg_async, "psycopg async")

    async_engine = create_async_engine(_sqlalchemy_url(database_url, "asyncpg"))
    try:
        from sqlalchemy.ext.asyncio import AsyncSession

        async with AsyncSession(async_engine) as async_session:
            by_async_session = await enqueue_many_async(async_session, _batch("async session", 10))
            await async_session.commit()
    finally:
        await async_engine.dispose()
    await _all_scheduled(store, by_async_session, "async session")
    assert await enqueue_many_async(await asyncpg.connect(database_url), []) == []


async def test_enqueue_many_takes_each_idempotency_key_once(database_url: str, store: Store) -> None:
    with psycopg.connect(database_url) as conn:
        [first] = enqueue_many(conn, [NewTask("first", "sleep", idempotency_key="order-1")])
        conn.commit()
        ids = enqueue_many(conn, [
            NewTask("plain", "sleep"),
            NewTask("again", "sleep", idempotency_key="order-1"),  # taken: that task's id
            NewTask("new", "sleep", idempotency_key="order-2"),
            NewTask("twice", "sleep", idempotency_key="order-2"),  # the first of this batch's
        ])  # fmt: skip
        conn.commit()
    assert ids[1] == first
    assert ids[3] == ids[2]
    assert len({ids[0], first, ids[2]}) == 3
    assert [(await store.get_task(i)).name for i in ids] == ["plain", "first", "new", "new"]


async def test_enqueue_many_checks_every_task_before_writing_any(database_url: str, store: Store) -> None:
    before = await store.count_tasks()
    with psycopg.connect(database_url) as conn:
        with pytest.raises(taskservice.InvalidArgument) as refused:
            taskservice.enqueue_many(conn, [NewTask("ok", "sleep"), NewTask("bad", "sleep", priority=-1)])
        conn.commit()
    assert str(refused.value).startswith("invalid_argument: tasks[1].priority: ")
    assert await store.count_tasks() == before


async def test_enqueue_many_of_a_declared_type_and_one_wake_up_per_batch(
    database_url: str, store: Store, settings: Settings
) -> None:
    """The typed form (`square.new(...)`) checks its arguments; a batch of 6,000 is two statements (one
    NOTIFY each: PostgreSQL folds a transaction's same notifications into one), committed together."""
    with pytest.raises(taskservice.InvalidArgument) as refused:
        bulk_square.new(x="three")  # type: ignore[arg-type]
    assert str(refused.value).startswith("invalid_argument: payload.parameters['x']: ")
    conn = await asyncpg.connect(database_url)
    try:
        notified: list[str] = []
        await conn.add_listener(NOTIFY_CHANNEL, lambda _c, _pid, channel, _p: notified.append(channel))
        async with conn.transaction():
            ids = await enqueue_many_async(conn, [bulk_square.new(x=i) for i in range(6_000)])
            await conn.fetchval("SELECT 1")
            assert notified == []  # not before commit
        # A transaction's notifications reach its session before the answer to its COMMIT; one more
        # round trip lets the listener's callbacks run.
        await conn.fetchval("SELECT 1")
        assert notified == [NOTIFY_CHANNEL]
    finally:
        await conn.close()
    assert len(set(ids)) == 6_000
    assert ids == sorted(ids)
    last = await store.get_task(ids[-1])
    assert (last.type, last.parameters) == ("bulk_square", {"x": "5999"})
