"""Worker processes (`task-cli serve`) against a real PostgreSQL: crashes, shutdown, many workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import eventually, subprocess_env
from taskservice.config import Settings
from taskservice.model import NewTask, Outcome, Status
from taskservice.store import Pool, Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)


class Workers:
    """Starts `task-cli serve` processes and makes sure none outlives the test."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings, self.log_dir = settings, log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "taskservice.cli", "--log-level", "info", "serve", *args],
            env=subprocess_env(self.settings, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(settings, tmp_path)
    yield group
    group.stop_all()


async def status_is(store: Store, task_id: int, status: Status) -> bool:
    return (await store.get_task(task_id)).status == status


async def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int:
    return await asyncio.wait_for(asyncio.to_thread(process.wait), timeout)


async def test_a_killed_worker_loses_no_task(store: Store, workers: Workers) -> None:
    # No retries at all: a crash of the worker is not the task's failure, so it must not spend one.
    task_id, _ = await store.create_task(NewTask("survivor", "sleep", {"seconds": "1.5"}, max_retries=0))
    doomed = workers.start("--concurrency", "2")
    await eventually(lambda: status_is(store, task_id, Status.RUNNING), timeout=60)
    first_owner = (await store.get_task(task_id)).lease_owner
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)

    workers.start("--concurrency", "2")
    await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED), timeout=60)
    task = await store.get_task(task_id)
    assert (task.attempts, task.retries, task.lost_leases) == (2, 0, 1)
    details = [h.details for h in await store.history(task_id)]
    assert details == [
        "Task is scheduled",
        "Task started (Attempt 1)",
        f"Lease expired (Attempt 1): worker {first_owner} stopped responding;"
        " queued again without spending a retry (1 of 3 lost leases)",
        "Task started (Attempt 2)",
        "Task completed successfully (Attempt 2)",
    ]
    executions = await store.executions(task_id)
    assert [e.outcome for e in executions] == [Outcome.LOST, Outcome.SUCCEEDED]
    assert executions[0].worker_id == first_owner != executions[1].worker_id


async def test_sigterm_lets_short_tasks_finish_and_puts_back_long_ones(
    store: Store, workers: Workers
) -> None:
    short, long = [
        i for i, _ in await store.create_tasks(
            [NewTask("short", "sleep", {"seconds": "1"}), NewTask("long", "sleep", {"seconds": "120"})]
        )
    ]  # fmt: skip
    worker = workers.start("--concurrency", "4")
    await eventually(lambda: status_is(store, long, Status.RUNNING), timeout=60)
    await eventually(lambda: status_is(store, short, Status.RUNNING), timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert await wait_exit(worker, 30) == 0, workers.logs()
    assert (await store.get_task(short)).status == Status.SUCCEEDED
    put_back = await store.get_task(long)
    assert put_back.status == Status.QUEUED
    assert (await store.history(long))[-1].details == (
        "Worker stopped before the task finished; put back in the queue (Attempt 1)"
    )
    [info] = await store.list_workers()
    assert info.stopped_at is not None


async def test_a_second_signal_cuts_the_grace_period_short(store: Store, workers: Workers) -> None:
    task_id, _ = await store.create_task(NewTask("long", "sleep", {"seconds": "300"}))
    worker = workers.start(SHUTDOWN_GRACE="600")
    await eventually(lambda: status_is(store, task_id, Status.RUNNING), timeout=60)
    worker.send_signal(signal.SIGINT)
    # The first signal is handled: the worker waits out its grace period.
    await eventually(lambda: asyncio.sleep(0, "waiting for running tasks" in workers.logs()))
    assert worker.poll() is None
    worker.send_signal(signal.SIGINT)
    assert await wait_exit(worker, 60) == 0, workers.logs()  # long before the 600 s grace
    assert (await store.get_task(task_id)).status == Status.QUEUED
    assert (await store.history(task_id))[-1].details.startswith("Worker stopped before the task finished")


HUNG_PLUGIN = """
import threading

from taskservice import task


@task("hang")
def hang() -> None:
    threading.Event().wait()  # a sync plugin that never returns: its thread cannot be stopped
"""


async def test_a_worker_with_stuck_sync_plugins_still_stops_on_sigterm(
    store: Store, workers: Workers, tmp_path: Path
) -> None:
    (tmp_path / "hung_plugin.py").write_text(HUNG_PLUGIN)
    timed_out, running = [
        i for i, _ in await store.create_tasks(
            [NewTask("t", "hang", max_retries=0, timeout_seconds=0.5), NewTask("r", "hang", max_retries=0)]
        )
    ]  # fmt: skip
    worker = workers.start(
        "--concurrency", "2", TASK_MODULES="hung_plugin", PYTHONPATH=str(tmp_path), SHUTDOWN_GRACE="1"
    )
    await eventually(lambda: status_is(store, timed_out, Status.FAILED), timeout=60)
    await eventually(lambda: status_is(store, running, Status.RUNNING), timeout=60)
    worker.send_signal(signal.SIGTERM)
    # One thread stuck since its timeout, one since the grace ran out: neither is waited for.
    assert await wait_exit(worker, 30) == 0, workers.logs()
    assert workers.logs().count("a sync plugin outlived its attempt") == 2, workers.logs()
    assert (await store.get_task(running)).status == Status.QUEUED


async def test_sigint_stops_an_idle_worker_cleanly(store: Store, workers: Workers) -> None:
    worker = workers.start()
    await eventually(lambda: _worker_count(store, 1), timeout=60)
    worker.send_signal(signal.SIGINT)
    assert await wait_exit(worker, 30) == 0, workers.logs()
    assert "Traceback" not in workers.logs()


async def _worker_count(store: Store, count: int) -> bool:
    return len(await store.list_workers()) == count


@pytest.mark.slow
async def test_several_worker_processes_run_every_task_exactly_once(
    store: Store, pool: Pool, workers: Workers
) -> None:
    total = 2000
    for _ in range(3):
        workers.start("--concurrency", "20")

    async def all_started() -> bool:  # before any task: the first up does not drain them alone
        return bool(await pool.fetchval("SELECT count(*) FROM workers WHERE stopped_at IS NULL") == 3)

    await eventually(all_started, timeout=60)
    await store.create_tasks([NewTask(f"task {i}", "sleep", {"seconds": "0"}) for i in range(total)])

    async def all_done() -> bool:
        counts = await store.status_counts()
        return counts[Status.SUCCEEDED] == total

    await eventually(all_done, timeout=240, interval=0.5)
    for process in workers.processes:
        process.send_signal(signal.SIGTERM)
    for process in workers.processes:
        assert await wait_exit(process, 30) == 0
    per_task = await pool.fetch(
        "SELECT task_id, count(*) AS n, min(outcome) AS outcome FROM task_executions GROUP BY task_id"
    )
    assert len(per_task) == total
    assert {(row["n"], row["outcome"]) for row in per_task} == {(1, Outcome.SUCCEEDED)}
    history = await pool.fetch("SELECT task_id, count(*) AS n FROM task_history GROUP BY task_id")
    assert {row["n"] for row in history} == {3}
    busy = await pool.fetchval("SELECT count(DISTINCT worker_id) FROM task_executions")
    assert busy >= 2, "the work should be shared between processes"


def test_the_cli_entry_point_is_installed() -> None:
    assert os.access(Path(sys.executable).parent / "task-cli", os.X_OK)
