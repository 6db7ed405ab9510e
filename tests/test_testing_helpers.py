"""taskservice.testing: a fresh database, drain (a worker until nothing is due), enqueued."""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import psycopg
import pytest

import taskservice
from taskservice import TaskStatus
from taskservice.client.enqueue import enqueue, enqueue_async
from taskservice.model import Outcome, Status
from taskservice.plugins import PermanentFailure, Registry
from taskservice.testing import database, default_data_dir, drain, drain_async, enqueued, enqueued_async


def _registry(**plugins: Any) -> Registry:
    registry = Registry(load_entry_points=False)
    for name, plugin in plugins.items():
        registry.register(name, plugin)
    return registry


def test_database_is_fresh_migrated_and_dropped_after(pg_server_url: str) -> None:
    with database(pg_server_url) as url, psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url).close()


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="the suite runs on a given server")
def test_database_defaults_to_the_embedded_postgresql(pg_server_url: str) -> None:
    # The suite's own embedded server lives where database() looks by default: it is joined, not doubled.
    with database() as url, psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
    assert default_data_dir().exists()


def test_drain_runs_every_due_task_to_its_end(database_url: str) -> None:
    calls: list[str] = []

    def double(parameters: dict[str, str]) -> int:
        calls.append(parameters["n"])
        return 2 * int(parameters["n"])

    def flaky(parameters: dict[str, str]) -> str:
        raise RuntimeError("down")

    def broken(parameters: dict[str, str]) -> str:
        raise PermanentFailure("bad input")

    with psycopg.connect(database_url) as conn:
        first = enqueue(conn, type="double", name="d1", parameters={"n": "1"})
        second = enqueue(conn, type="double", name="d2", parameters={"n": "2"})
        retried = enqueue(conn, type="flaky", name="f", max_retries=2)
        failed = enqueue(conn, type="broken", name="b")
        later = enqueue(conn, type="double", name="later", parameters={"n": "9"}, delay_seconds=3600)
        other = enqueue(conn, type="not_mine", name="o")
        conn.commit()

    ran = drain(database_url, registry=_registry(double=double, flaky=flaky, broken=broken))

    by_task: dict[int, list[tuple[TaskStatus, str]]] = {}
    for attempt in ran:
        by_task.setdefault(attempt.task_id, []).append((attempt.status, attempt.outcome))
    assert by_task[first] == [(TaskStatus.SUCCEEDED, Outcome.SUCCEEDED)]
    assert by_task[second] == [(TaskStatus.SUCCEEDED, Outcome.SUCCEEDED)]
    failed_again, failed_for_good = (TaskStatus.RETRYING, Outcome.FAILED), (TaskStatus.FAILED, Outcome.FAILED)
    assert by_task[retried] == [failed_again, failed_again, failed_for_good]
    assert by_task[failed] == [(TaskStatus.FAILED, Outcome.FAILED)]
    assert later not in by_task  # not due
    assert other not in by_task  # a type the registry does not run
    assert sorted(calls) == ["1", "2"]
    results = {a.name: a.result for a in ran if a.type == "double"}
    assert results == {"d1": 2, "d2": 4}
    assert next(a.error for a in ran if a.task_id == failed) == "bad input"
    with psycopg.connect(database_url) as conn:
        assert [t.name for t in enqueued(conn, status=Status.QUEUED)] == ["later", "o"]  # model's too
    assert drain(database_url, registry=_registry(double=double)) == []  # nothing left that is due


async def test_enqueued_sees_the_transactions_own_tasks(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        enqueue(conn, type="sleep", name="one", parameters={"seconds": "0"})
        enqueue(conn, type="email", name="two")
        [task] = enqueued(conn, type="sleep")
        assert (task.name, task.status, task.parameters) == ("one", TaskStatus.QUEUED, {"seconds": "0"})
        assert type(task) is taskservice.Task  # the client's, one public Task
        assert type(task.status) is TaskStatus
        assert [t.name for t in enqueued(conn, status=TaskStatus.QUEUED)] == ["one", "two"]
        assert [t.name for t in enqueued(conn)] == ["one", "two"]
        assert enqueued(conn, name="two")[0].type == "email"
        conn.rollback()
        assert enqueued(conn) == []
    conn2 = await asyncpg.connect(database_url)
    try:
        async with conn2.transaction():
            await enqueue_async(conn2, type="sleep", name="async one", parameters={"seconds": "0"})
            assert [t.name for t in await enqueued_async(conn2, type="sleep")] == ["async one"]
    finally:
        await conn2.close()
    ran = await drain_async(database_url, types=["sleep"])
    [(name, status, result)] = [(a.name, a.status, a.result) for a in ran]
    assert (name, status, result) == ("async one", TaskStatus.SUCCEEDED, {"slept": 0.0})
    assert type(status) is TaskStatus
