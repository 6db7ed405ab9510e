"""64-bit ids across the 2^31 boundary, through a real server: our clients and the original's int32 ones."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from conftest import ServerProcess, eventually, subprocess_env
from taskservice.api.ids import INT32_MAX, SendsWideIds, check_narrow
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

FAST = pb.Payload(parameters={"seconds": "0"})
LATER = 3600.0
TASK_CLI = str(Path(sys.executable).parent / "task-cli")


def near_the_boundary(database_url: str) -> None:
    """The next task, history and attempt ids are 2^31 - 2 (two fit in an int32, then none does)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT setval('tasks_id_seq', %s)", (INT32_MAX - 2,))
        conn.execute(f"ALTER TABLE task_history ALTER COLUMN id RESTART WITH {INT32_MAX - 1}")
        conn.execute(f"ALTER TABLE task_executions ALTER COLUMN id RESTART WITH {INT32_MAX - 1}")


@pytest.fixture
def boundary_server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    near_the_boundary(settings.database_url)
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="4", EVENTS_POLL_INTERVAL="0.1")
    server.wait_ready()
    yield server
    server.stop()


def task(name: str, delay: float = 0.0) -> pb.CreateTaskRequest:
    return pb.CreateTaskRequest(name=name, type="sleep", payload=FAST, delay_seconds=delay)


async def collect(client: TaskManagementServiceClient, into: list[pb.TaskEvent]) -> None:
    async for event in client.watch_events(pb.WatchEventsRequest()):
        into.append(event)


async def runs_to_the_end(ours: TaskManagementServiceClient, task_ids: list[int]) -> None:
    """Every task succeeds, across the boundary: history and attempts carry the big ids."""
    history: list[pb.TaskHistory] = []
    for task_id in task_ids:

        async def succeeded(task_id: int = task_id) -> bool:
            found = await ours.get_task(pb.GetTaskRequest(id64=task_id))
            return found.status == pb.SUCCEEDED

        await eventually(succeeded)
        found = await ours.get_task(pb.GetTaskRequest(id64=task_id))
        assert found.id64 == task_id
        assert found.id == (task_id if task_id <= INT32_MAX else 0)
        history = list((await ours.get_task_history(pb.GetTaskHistoryRequest(id64=task_id))).history)
        assert [h.status for h in history] == [pb.QUEUED, pb.RUNNING, pb.SUCCEEDED]
        request = pb.ListTaskExecutionsRequest(id64=task_id)
        [attempt] = (await ours.list_task_executions(request)).executions
        assert (attempt.task_id64, attempt.outcome) == (task_id, "succeeded")
    assert max(h.id64 for h in history) > INT32_MAX  # history ids crossed it too


async def old_client_reads(old: TaskManagementServiceClient, fits: list[int]) -> None:
    """The original's client still works for every task whose ids fit, and gets an error, never a
    wrong id, where one does not: a page holding big tasks, or a history whose later rows got ids
    above 2^31 (only its first row's id fits)."""
    small = await old.get_task(pb.GetTaskRequest(id=fits[0]))
    assert (small.id, small.status) == (fits[0], pb.SUCCEEDED)
    named = await old.list_tasks(pb.TaskListRequest(name_contains="fits"))
    assert sorted(t.id for t in named.tasks) == fits
    with pytest.raises(ConnectError) as listing:
        await old.list_tasks(pb.TaskListRequest())
    assert listing.value.code == Code.OUT_OF_RANGE
    assert "tasks[0].id" in listing.value.message
    with pytest.raises(ConnectError) as history_error:
        await old.get_task_history(pb.GetTaskHistoryRequest(id=fits[0]))
    assert history_error.value.code == Code.OUT_OF_RANGE
    assert re.match(r"history\[[12]\]\.id: id 21474836\d\d does not fit", history_error.value.message)


async def cli_reads(url: str, settings: Settings, task_id: int) -> None:
    """`task-cli task get` shows a task whose id is above 2^31."""
    result = await asyncio.to_thread(
        subprocess.run,
        [TASK_CLI, "--address", url, "task", "get", "--id", str(task_id)],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert str(task_id) in result.stdout
    assert "SUCCEEDED" in result.stdout


async def test_ids_above_2_to_the_31_for_new_clients_and_a_clear_error_for_old_ones(
    boundary_server: ServerProcess, settings: Settings
) -> None:
    url = boundary_server.url
    async with (
        TaskManagementServiceClient(url, interceptors=[SendsWideIds()]) as ours,
        TaskManagementServiceClient(url) as old,
    ):
        events: list[pb.TaskEvent] = []
        old_events: list[pb.TaskEvent] = []
        watcher = asyncio.create_task(collect(ours, events))
        old_watcher = asyncio.create_task(collect(old, old_events))
        # The first keep-alives: both are subscribed.
        await eventually(lambda: asyncio.sleep(0, bool(events) and bool(old_events)))
        # An old client creates the last two tasks whose ids fit.
        fits = [(await old.create_task(task(f"fits {i}"))).id for i in range(2)]
        assert fits == [INT32_MAX - 1, INT32_MAX]
        # The next one would not fit: refused, and nothing is created.
        with pytest.raises(ConnectError) as refused:
            await old.create_task(task("too big"))
        assert refused.value.code == Code.OUT_OF_RANGE
        assert "id64" in refused.value.message
        assert "Task-Id-Width: 64" in refused.value.message
        with pytest.raises(ConnectError) as refused_batch:
            await old.create_tasks(pb.CreateTasksRequest(tasks=[task("batch too big")] * 3))
        assert refused_batch.value.code == Code.OUT_OF_RANGE
        with psycopg.connect(settings.database_url) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE name LIKE '%too big') FROM tasks"
            ).fetchone()
        assert row == (2, 0)

        # Ours create tasks beyond it and read every id from the 64-bit twins.
        created = await ours.create_tasks(pb.CreateTasksRequest(tasks=[task(f"big {i}") for i in range(3)]))
        big = list(created.ids64)
        assert all(i > INT32_MAX for i in big)
        assert list(created.ids) == [0, 0, 0]
        one = await ours.create_task(task("big one"))
        assert (one.id, one.id64 > INT32_MAX) == (0, True)
        waiting = (await ours.create_task(task("big and waiting", LATER))).id64

        await runs_to_the_end(ours, [*fits, *big, one.id64])

        page = await ours.list_tasks(pb.TaskListRequest(limit=100))
        assert {t.id64 for t in page.tasks} == {*fits, *big, one.id64, waiting}
        assert page.total == 7
        cancelled = await ours.cancel_task(pb.CancelTaskRequest(id64=waiting, reason="done"))
        assert (cancelled.id64, cancelled.exact_status) == (waiting, pb.CANCELLED)
        retried = await ours.retry_task(pb.RetryTaskRequest(id64=waiting))
        assert retried.status == pb.QUEUED

        async def seen_every_task() -> bool:
            return {e.task_id64 for e in events if not e.keepalive} >= {*fits, *big, one.id64, waiting}

        await eventually(seen_every_task)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        # The old client's stream carried the events of tasks whose ids fit, then ended with the error.
        with pytest.raises(ConnectError) as stream_error:
            await asyncio.wait_for(old_watcher, 30)
        assert stream_error.value.code == Code.OUT_OF_RANGE
        assert {e.task_id for e in old_events if not e.keepalive} <= set(fits)

        await old_client_reads(old, fits)
        # Both fields naming different tasks is a mistake, not a guess.
        with pytest.raises(ConnectError) as both:
            await ours.get_task(pb.GetTaskRequest(id=1, id64=big[0]))
        assert both.value.code == Code.INVALID_ARGUMENT

    await cli_reads(url, settings, big[0])


def test_the_guard_finds_every_id_that_does_not_fit() -> None:
    check_narrow(pb.TaskList(tasks=[pb.Task(id=5, id64=5)], total=2**40))  # a count is not an id
    check_narrow(pb.GetStatusResponse(status_counts={3: 2**40}))
    with pytest.raises(Exception, match=r"tasks\[1\]\.id: id 2147483648"):
        check_narrow(pb.TaskList(tasks=[pb.Task(id64=1), pb.Task(id64=2**31)]))
    with pytest.raises(Exception, match=r"ids\[0\]: id 4294967296"):
        check_narrow(pb.CreateTasksResponse(ids64=[2**32]))
    with pytest.raises(Exception, match=r"history\[0\]\.id"):
        check_narrow(pb.GetTaskHistoryResponse(history=[pb.TaskHistory(id64=2**31)]))
    with pytest.raises(Exception, match=r"^task_id: id"):
        check_narrow(pb.TaskEvent(task_id64=2**31))
