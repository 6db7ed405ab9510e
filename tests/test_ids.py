"""64-bit ids across the 2^31 boundary, through a real server: our clients and the original's int32 ones."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from conftest import ServerProcess, eventually, subprocess_env
from taskservice.api.ids import INT32_MAX, SendsWideIds, check_narrow, history_for_old_client
from taskservice.api.ids import fits as all_ids_fit
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

FAST = pb.Payload(parameters={"seconds": "0"})
LATER = 3600.0
TASK_CLI = str(Path(sys.executable).parent / "task-cli")
SERVICE = "/cloud.v1.TaskManagementService"


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


async def old_client_reads(
    url: str, old: TaskManagementServiceClient, fits: list[int], big: list[int]
) -> None:
    """The original's client reads every task whose id fits, never gets a wrong id, and no big id fails
    an answer it could otherwise read: a page leaves the big tasks out and says so; a history whose
    later rows got ids above 2^31 numbers its rows (its first row's own id fits, the others do not)."""
    small = await old.get_task(pb.GetTaskRequest(id=fits[0]))
    assert (small.id, small.status) == (fits[0], pb.SUCCEEDED)
    named = await old.list_tasks(pb.TaskListRequest(name_contains="fits"))
    assert sorted(t.id for t in named.tasks) == fits
    assert named.omitted == 0
    page = await old.list_tasks(pb.TaskListRequest())
    assert sorted(t.id for t in page.tasks) == fits
    assert page.omitted == len(big)
    assert page.total == len(fits) + len(big)  # every match counted: offsets page as before
    async with httpx.AsyncClient(base_url=url) as http:  # the header an old client can read
        response = await http.post(f"{SERVICE}/ListTasks", json={})
        assert response.status_code == 200, response.text
        assert sorted(int(i) for i in response.headers["task-ids-omitted"].split(",")) == sorted(big)
        assert sorted(int(t["id"]) for t in response.json()["tasks"]) == fits
    history = (await old.get_task_history(pb.GetTaskHistoryRequest(id=fits[0]))).history
    assert [h.status for h in history] == [pb.QUEUED, pb.RUNNING, pb.SUCCEEDED]
    assert [(h.id, h.id64) for h in history] == [(1, 1), (2, 2), (3, 3)]  # positions, oldest first


async def ours_read_history(ours: TaskManagementServiceClient, task_id: int) -> None:
    """Our clients get the rows' own ids, the first below 2^31 and the later ones above it."""
    history = (await ours.get_task_history(pb.GetTaskHistoryRequest(id64=task_id))).history
    ids = [h.id64 for h in history]
    assert ids == sorted(ids)
    assert ids[0] == INT32_MAX - 1  # the first history row made past the boundary's setup
    assert ids[-1] > INT32_MAX
    assert history[0].id == ids[0]
    assert history[-1].id == 0  # the int32 field cannot hold it: our clients read id64


def task_cli(url: str, settings: Settings, *args: str) -> str:
    result = subprocess.run(
        [TASK_CLI, "--address", url, *args],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def cli_reads(url: str, settings: Settings, task_id: int) -> None:
    """`task-cli` shows a task whose id is above 2^31, and prints 64-bit ids in its JSON."""
    shown = await asyncio.to_thread(task_cli, url, settings, "task", "get", "--id", str(task_id))
    assert str(task_id) in shown
    assert "SUCCEEDED" in shown
    created = json.loads(
        await asyncio.to_thread(task_cli, url, settings, "task", "create", "cli", "-t", "sleep", "-o", "json")
    )
    assert created["id"] == created["id64"]
    assert created["id"] > INT32_MAX
    got = json.loads(
        await asyncio.to_thread(task_cli, url, settings, "task", "get", "-i", str(task_id), "-o", "json")
    )
    assert (got["id"], got["id64"]) == (task_id, task_id)
    history = json.loads(
        await asyncio.to_thread(task_cli, url, settings, "task", "history", "-i", str(task_id), "-o", "json")
    )
    assert all(row["id"] == row["id64"] > INT32_MAX for row in history["history"])


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

        await old_client_reads(url, old, fits, [*big, one.id64, waiting])
        await ours_read_history(ours, fits[0])
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


def test_an_old_clients_history_keeps_its_rows_own_ids_while_they_all_fit() -> None:
    fitting = [pb.TaskHistory(id=7, id64=7), pb.TaskHistory(id=INT32_MAX, id64=INT32_MAX)]
    history_for_old_client(fitting)
    assert [(h.id, h.id64) for h in fitting] == [(7, 7), (INT32_MAX, INT32_MAX)]
    crossing = [pb.TaskHistory(id=INT32_MAX, id64=INT32_MAX), pb.TaskHistory(id64=INT32_MAX + 5)]
    history_for_old_client(crossing)
    assert [(h.id, h.id64) for h in crossing] == [(1, 1), (2, 2)]
    check_narrow(pb.GetTaskHistoryResponse(history=crossing))  # readable by an old client now
    assert all_ids_fit(pb.Task(id=5, id64=5))
    assert not all_ids_fit(pb.Task(id64=INT32_MAX + 1))
