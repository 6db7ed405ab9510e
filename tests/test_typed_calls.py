"""A declared type's typed calls (`typed_resize.enqueue(conn, user=..., width=...)`, `enqueue_async`,
`create(client, ...)`): serialised by the declaration, refused before anything is written, with
TaskOptions honoured on every path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from conftest import Served, serving
from taskservice import AsyncClient, Client, InvalidArgument, TaskOptions, TaskStatus, enqueue
from taskservice.model import Status
from taskservice.plugins.declare import ParameterError
from taskservice.store import Store, TaskNotFound
from typed_tasks import Order, Size, typed_resize, typed_ship

TESTS = Path(__file__).parent


def _sqlalchemy_url(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


async def _parameters(store: Store, task_id: int) -> dict[str, str] | None:
    """The stored task's parameters; None when there is no such task (its transaction rolled back)."""
    try:
        task = await store.get_task(task_id)
    except TaskNotFound:
        return None
    assert (task.type, task.name, task.status) == ("typed_resize", "typed_resize", Status.QUEUED)
    return task.parameters


SENT = {"user": "ada", "width": "128", "ratio": "0.5", "square": "true", "size": "large"}


def _resize_ada() -> dict[str, Any]:
    return {"user": "ada", "width": 128, "ratio": 0.5, "square": True, "size": Size.LARGE}


# -- serialising: the inverse of the declaration's parsing --------------------------------------


def test_a_call_is_sent_as_the_strings_the_worker_parses_back() -> None:
    sent = typed_resize.parameters(**_resize_ada())
    assert sent == SENT
    assert typed_resize.arguments(sent, None) == _resize_ada()
    assert typed_resize.parameters("ada", 16, note="hi") == {"user": "ada", "width": "16", "note": "hi"}
    # A model parameter is sent as its fields, and read back as the model.
    order = Order(order_id=7, email="ada@example.com")
    assert typed_ship.parameters(order=order) == {
        "order_id": "7", "email": "ada@example.com", "express": "false",
    }  # fmt: skip
    assert Order.model_validate(typed_ship.spec.check(typed_ship.parameters(order=order))) == order
    # And the function is still the function.
    assert typed_resize(user="ada", width=20, size=Size.LARGE)["size"] == "large"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"user": "ada", "width": "128"}, r"width: must be an integer \(got '128'\)"),
        ({"user": "ada", "width": True}, r"width: must be an integer \(got True\)"),
        ({"user": "ada", "width": 8}, r"width: must be >= 16 \(got '8'\)"),
        ({"user": 5, "width": 128}, r"user: must be a string \(got 5\)"),
        ({"user": "ada", "width": 128, "ratio": "x"}, r"ratio: must be a number \(got 'x'\)"),
        ({"user": "ada", "width": 128, "square": 1}, r"square: must be true or false \(got 1\)"),
        ({"user": "ada", "width": 128, "size": "medium"}, r"size: must be one of small, large"),
        ({"user": None, "width": 128}, r"user: is required \(got None\)"),
        ({"width": 128}, r"parameters: missing a required argument: 'user'"),
        ({"user": "ada", "width": 128, "colour": "red"}, r"unexpected keyword argument 'colour'"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_parameter(
    arguments: dict[str, Any], error: str
) -> None:
    with pytest.raises(ParameterError, match=error):
        typed_resize.parameters(**arguments)


def test_a_model_parameter_is_checked_as_its_fields() -> None:
    with pytest.raises(ParameterError, match=r"order: must be a Order"):
        typed_ship.parameters(order={"order_id": 7})
    bad = Order.model_construct(order_id=7, email="not-an-address")
    with pytest.raises(ParameterError, match=r"email: must be an e-mail address"):
        typed_ship.parameters(order=bad)
    with pytest.raises(ParameterError, match=r"unexpected keyword argument 'ctx'"):
        typed_ship.parameters(ctx=None, order=bad)


def test_run_at_is_sent_as_a_time_not_a_delay() -> None:
    # A delay from this process's clock would move the start by that clock's error: the database's
    # clock decides, when the task is created.
    at = datetime(2030, 1, 1, 12, tzinfo=UTC)
    new = TaskOptions(run_at=at).new_task("t")
    assert (new.run_at, new.delay_seconds) == (at, 0.0)
    assert TaskOptions(name="mine").new_task("t").name == "mine"
    assert TaskOptions().new_task("t").name == "t"
    with pytest.raises(ValueError, match="run_at: give run_at or delay_seconds, not both"):
        TaskOptions(run_at=at, delay_seconds=5)
    with pytest.raises(ValueError, match="run_at: must be timezone-aware"):
        TaskOptions(run_at=datetime(2030, 1, 1))


# -- enqueue in the application's transaction, with every driver ---------------------------------


async def test_psycopg_typed_enqueue_commits_and_rolls_back(database_url: str, store: Store) -> None:
    with psycopg.connect(database_url) as conn:
        kept = typed_resize.enqueue(conn, **_resize_ada())
        conn.commit()
        dropped = typed_resize.enqueue(conn, user="bob", width=64)
        conn.rollback()
    assert await _parameters(store, kept) == SENT
    assert await _parameters(store, dropped) is None


async def test_sqlalchemy_typed_enqueue_commits_and_rolls_back(database_url: str, store: Store) -> None:
    engine = sqlalchemy.create_engine(_sqlalchemy_url(database_url, "psycopg"))
    try:
        with Session(engine) as session:
            kept = typed_resize.enqueue(session, **_resize_ada())
            session.commit()
            dropped = typed_resize.enqueue(session, user="bob", width=64)
            session.rollback()
    finally:
        engine.dispose()
    assert await _parameters(store, kept) == SENT
    assert await _parameters(store, dropped) is None


async def test_asyncpg_typed_enqueue_commits_and_rolls_back(database_url: str, store: Store) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            kept = await typed_resize.enqueue_async(conn, **_resize_ada())
        transaction = conn.transaction()
        await transaction.start()
        dropped = await typed_resize.enqueue_async(conn, user="bob", width=64)
        await transaction.rollback()
    finally:
        await conn.close()
    assert await _parameters(store, kept) == SENT
    assert await _parameters(store, dropped) is None


async def test_psycopg_async_typed_enqueue_commits_and_rolls_back(database_url: str, store: Store) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        kept = await typed_resize.enqueue_async(conn, **_resize_ada())
        await conn.commit()
        dropped = await typed_resize.enqueue_async(conn, user="bob", width=64)
        await conn.rollback()
    assert await _parameters(store, kept) == SENT
    assert await _parameters(store, dropped) is None


async def test_sqlalchemy_async_typed_enqueue_commits_and_rolls_back(database_url: str, store: Store) -> None:
    engine = create_async_engine(_sqlalchemy_url(database_url, "asyncpg"))
    try:
        async with AsyncSession(engine) as session:
            kept = await typed_resize.enqueue_async(session, **_resize_ada())
            await session.commit()
            dropped = await typed_resize.enqueue_async(session, user="bob", width=64)
            await session.rollback()
    finally:
        await engine.dispose()
    assert await _parameters(store, kept) == SENT
    assert await _parameters(store, dropped) is None


async def test_a_bad_value_is_refused_before_anything_is_written(database_url: str, store: Store) -> None:
    with psycopg.connect(database_url) as conn:
        with pytest.raises(InvalidArgument, match=r"payload\.parameters\['width'\]: must be an integer"):
            typed_resize.enqueue(conn, user="ada", width="wide")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"payload\.parameters\['width'\]: must be <= 4096"):
            typed_resize.enqueue(conn, user="ada", width=5000)
        conn.commit()
    conn2 = await asyncpg.connect(database_url)
    try:
        with pytest.raises(InvalidArgument, match=r"payload\.parameters\['email'\]: must be an e-mail"):
            await typed_ship.enqueue_async(conn2, order=Order.model_construct(order_id=1, email="x"))
    finally:
        await conn2.close()
    assert await store.count_tasks() == 0


async def test_options_are_honoured(database_url: str, store: Store) -> None:
    run_at = datetime(2099, 12, 24, 18, 0, 0, 250_000, tzinfo=UTC)
    with psycopg.connect(database_url) as conn:
        plain = typed_resize.enqueue(conn, user="ada", width=64)
        chosen = typed_resize.with_options(
            TaskOptions(name="ada's avatar", description="for the profile", priority=9, max_retries=5,
                        timeout_seconds=12.5, idempotency_key="avatar-ada", run_at=run_at)
        )  # fmt: skip
        first = chosen.enqueue(conn, user="ada", width=64)
        again = chosen.enqueue(conn, user="ada", width=65)
        delayed = typed_resize.with_options(TaskOptions(delay_seconds=600)).enqueue(conn, user="c", width=64)
        # The old form takes the same options, as one value or by name (not both).
        old = enqueue(conn, type="typed_resize", parameters={"user": "d", "width": "64"}, priority=3)
        with pytest.raises(TypeError, match="not both"):
            enqueue(conn, type="typed_resize", options=TaskOptions(), priority=3)
        conn.commit()
    assert again == first  # the idempotency key's task
    task = await store.get_task(plain)
    # Unsaid: the name is the type's, max retries and timeout its declared ones.
    assert (task.name, task.priority, task.max_retries, task.timeout_seconds) == ("typed_resize", 0, 2, 30.0)
    assert task.run_at - task.created_at < timedelta(minutes=1)
    task = await store.get_task(first)
    assert (task.name, task.description, task.priority, task.max_retries, task.timeout_seconds) == (
        "ada's avatar", "for the profile", 9, 5, 12.5,
    )  # fmt: skip
    assert (task.idempotency_key, task.parameters) == ("avatar-ada", {"user": "ada", "width": "64"})
    assert task.run_at == run_at  # the time itself, not a delay from this process's clock
    task = await store.get_task(delayed)
    assert timedelta(minutes=9) < task.run_at - task.created_at < timedelta(minutes=11)
    task = await store.get_task(old)
    assert (task.name, task.priority) == ("typed_resize", 3)


# -- create through the API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("typed")
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    with serving(
        pg_server_url,
        template_database,
        folder,
        WORKER_COUNT="2",
        TASK_MODULES="typed_tasks",
        PYTHONPATH=path,
    ) as s:
        yield s  # ready: its workers have published the declarations


@pytest.mark.e2e
def test_typed_create_with_the_client(server: Served) -> None:
    with Client(server.url, timeout=30) as client:
        handle = typed_resize.create(client, user="ada", width=128, square=True, size=Size.LARGE)
        assert handle.wait(timeout=60) == {
            "user": "ada", "width": 128, "ratio": 0.75, "square": True, "size": "large", "note": None,
        }  # fmt: skip
        task = client.get_task(handle.id)
        assert (task.name, task.max_retries, task.timeout_seconds) == ("typed_resize", 2, 30.0)
        options = TaskOptions(name="later", priority=4, delay_seconds=3600, idempotency_key="typed-later")
        later = typed_resize.with_options(options).create(client, user="bob", width=64)
        assert typed_resize.with_options(options).create(client, user="bob", width=64).id == later.id
        task = client.get_task(later.id)
        assert (task.name, task.priority, task.status, task.idempotency_key) == (
            "later", 4, TaskStatus.QUEUED, "typed-later",
        )  # fmt: skip
        # A time to start at travels as that time (the API's times are to the second).
        at = datetime(2099, 12, 24, 18, tzinfo=UTC)
        eve = typed_resize.with_options(TaskOptions(run_at=at)).create(client, user="eve", width=64)
        assert (client.get_task(eve.id).run_at, client.get_task(eve.id).status) == (at, TaskStatus.QUEUED)
        with pytest.raises(InvalidArgument, match=r"payload\.parameters\['width'\]: must be >= 16"):
            typed_resize.create(client, user="ada", width=1)


@pytest.mark.e2e
async def test_typed_create_with_the_async_client(server: Served) -> None:
    async with AsyncClient(server.url, timeout=30) as client:
        order = Order(order_id=7, email="ada@example.com", express=True)
        handle = await typed_ship.create(client, order=order)
        assert await handle.wait(timeout=60) == {"order": order.model_dump(), "attempt": 1}
        with pytest.raises(InvalidArgument, match=r"payload\.parameters\['order'\]: must be a Order"):
            await typed_ship.create(client, order=None)  # type: ignore[call-overload]
