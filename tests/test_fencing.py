"""Fencing and a worker that cannot be wedged: stale attempts are refused, bad outcomes fail alone."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from conftest import eventually
from taskservice.config import Settings
from taskservice.model import NewTask, Outcome, Status
from taskservice.store import Store
from test_worker import registry_with, running_worker, status_is


class Held:
    """A plugin whose every call waits until the test releases it; it notes a cancellation."""

    def __init__(self) -> None:
        self.calls: list[asyncio.Event] = []
        self.cancelled: list[int] = []

    async def run(self, parameters: dict[str, str]) -> dict[str, Any]:
        number = len(self.calls)
        release = asyncio.Event()
        self.calls.append(release)
        try:
            await release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(number)
            raise
        return {"call": number}

    async def started(self, count: int) -> None:
        await eventually(lambda: asyncio.sleep(0, len(self.calls) >= count))


async def attempts(store: Store, task_id: int) -> list[str]:
    return [e.outcome for e in await store.executions(task_id)]


def stopped_clock() -> float:
    """A worker clock that never moves: its leases never run out on their own (as far as it can
    tell), so what stops a stale attempt here is the database's fencing alone (tests/test_leases.py
    has the worker's own bookkeeping)."""
    return 0.0


async def test_a_worker_paused_past_its_lease_cannot_overwrite_the_newer_attempt(
    store: Store, settings: Settings
) -> None:
    held = Held()
    task_id, _ = await store.create_task(NewTask("fenced", "held", max_retries=0))
    async with running_worker(store, settings, registry_with(held=held.run), stopped_clock) as paused:
        await held.started(1)
        first = (await store.get_task(task_id)).execution_id
        await paused._heartbeat.stop()  # the worker freezes: no more heartbeats
        # Its lease expires; a reaper puts the task back (no retry spent) and attempt 2 starts.
        async with running_worker(store, settings, registry_with(held=held.run)):
            await held.started(2)
            assert await attempts(store, task_id) == [Outcome.LOST, Outcome.RUNNING]
            second = (await store.get_task(task_id)).execution_id
            assert second != first
            # The paused worker wakes and reports attempt 1 as a success: refused, nothing changes.
            held.calls[0].set()
            await eventually(lambda: asyncio.sleep(0, not paused._reporter.unwritten()))
            task = await store.get_task(task_id)
            assert (task.status, task.execution_id, task.attempts) == (Status.RUNNING, second, 2)
            assert await attempts(store, task_id) == [Outcome.LOST, Outcome.RUNNING]
            # The current attempt's own outcome counts.
            held.calls[1].set()
            await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED))
    history = [h.details for h in await store.history(task_id)]
    assert "Task completed successfully (Attempt 1)" not in history
    assert history[-1] == "Task completed successfully (Attempt 2)"
    [lost, won] = await store.executions(task_id)
    assert (lost.outcome, lost.result, won.outcome, won.result) == (
        Outcome.LOST, None, Outcome.SUCCEEDED, {"call": 1},
    )  # fmt: skip


async def test_a_refused_heartbeat_stops_the_plugin_at_once(store: Store, settings: Settings) -> None:
    held = Held()
    task_id, _ = await store.create_task(NewTask("reaped", "held"))
    async with running_worker(store, settings, registry_with(held=held.run), stopped_clock) as worker:
        await held.started(1)
        await worker._heartbeat.stop()
        # Wait for the reaper to take the attempt away, then let one heartbeat run: it is refused,
        # and the plugin of the stale attempt is cancelled at once.

        async def reaped() -> bool:
            return Outcome.LOST in await attempts(store, task_id)

        await eventually(reaped)
        await worker._heartbeat.tick()
        await eventually(lambda: asyncio.sleep(0, held.cancelled == [0]))
        for release in held.calls:
            release.set()
        await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED))


async def test_one_outcome_the_database_refuses_fails_alone(store: Store, settings: Settings) -> None:
    async def results(parameters: dict[str, str]) -> Any:
        kind = parameters["kind"]
        if kind == "nul":
            return {"text": "a\u0000b"}  # jsonb cannot hold U+0000
        if kind == "nan":
            return {"value": float("nan")}  # nor NaN
        return {"ok": kind}

    kinds = ["good"] * 20 + ["nul", "nan"]
    created = await store.create_tasks(
        [NewTask(f"r{i}", "results", {"kind": k}) for i, k in enumerate(kinds)]
    )
    ids = dict(zip((i for i, _ in created), kinds, strict=True))
    async with running_worker(store, settings, registry_with(results=results)):

        async def all_settled() -> bool:
            return all(
                await asyncio.gather(*(status_is(store, i, Status.SUCCEEDED, Status.FAILED) for i in ids))
            )

        await eventually(all_settled)
        # The worker is not wedged: a task after the bad ones still runs.
        later, _ = await store.create_task(NewTask("later", "results", {"kind": "later"}))
        await eventually(lambda: status_is(store, later, Status.SUCCEEDED))
    for task_id, kind in ids.items():
        task = await store.get_task(task_id)
        [attempt] = await store.executions(task_id)
        if kind == "good":
            assert (task.status, attempt.result) == (Status.SUCCEEDED, {"ok": "good"})
            continue
        assert (task.status, attempt.outcome, attempt.result) == (Status.FAILED, Outcome.FAILED, None)
        assert attempt.error is not None
        assert attempt.error.startswith("the attempt's outcome could not be stored: ")
        assert (await store.history(task_id))[-1].details.startswith("Task failed: the attempt's outcome")


async def test_an_outcome_being_written_keeps_its_lease_and_a_stop_does_not_wait_forever(
    store: Store, database_url: str
) -> None:
    from taskservice import model
    from taskservice.worker.heartbeat import Heartbeat
    from taskservice.worker.reporter import Reporter

    task_id, _ = await store.create_task(NewTask("slow write", "t"))
    [claim] = await store.claim("w", 1, lease_seconds=30)
    reporter = Reporter(store, on_refused=lambda _: None)
    reporter.start()
    blocker = await asyncpg.connect(database_url)
    try:
        # Another transaction holds the task's row: the outcome's write waits for it.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task_id)
        reporter.report(model.succeeded(claim.task, claim.execution_id, None))
        await eventually(lambda: asyncio.sleep(0, reporter.unwritten() == [claim.execution_id]))
        lost: list[set[int]] = []
        heartbeat = Heartbeat(store, "w", 30, reporter.unwritten, lost.append)
        before = claim.task.lease_expires_at
        await heartbeat.tick()  # the lease of an outcome still being written is extended
        assert lost == []
        after = (await store.get_task(task_id)).lease_expires_at
        assert before is not None
        assert after is not None
        assert after > before
        # A stopping worker waits for it, but only so long.
        await asyncio.wait_for(reporter.stop(timeout=0.2), 10)
        assert (await store.get_task(task_id)).status == Status.RUNNING
        await transaction.rollback()
    finally:
        await blocker.close()
