"""A worker's helpers run as one unit: one that dies stops the worker cleanly, saying why; a database
blip is not a death."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from conftest import eventually
from taskservice.background.periodic import Periodic
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Store
from taskservice.worker.runtime import Worker
from taskservice.worker.serve import worker_options
from taskservice.worker.supervisor import HelperDied
from test_fencing import Held
from test_worker import registry_with, running_worker, status_is


async def test_a_helper_that_fails_for_real_stops_the_worker_which_says_why(
    store: Store, settings: Settings
) -> None:
    held = Held()
    task_id, _ = await store.create_task(NewTask("in flight", "held"))
    options = replace(worker_options(settings, 4, ()), shutdown_grace=0.5)
    worker = Worker(store, settings.database_url, registry_with(held=held.run), options)
    run = asyncio.create_task(worker.run(asyncio.Event()))
    await held.started(1)
    # Not a blip: the heartbeat's statement can never work again (the column only it writes is gone;
    # the outcomes still can be written).
    await store.pool.execute("ALTER TABLE workers RENAME COLUMN last_heartbeat_at TO heartbeat_gone")
    with pytest.raises(HelperDied, match=r'heartbeat failed: column "last_heartbeat_at" .*does not exist'):
        await asyncio.wait_for(run, 60)
    # It stopped the way a signalled worker stops: the running task went back to the queue.
    task = await store.get_task(task_id)
    assert task.status == Status.QUEUED
    assert (await store.history(task_id))[-1].details.startswith("Worker stopped before the task finished")


class Broken(Periodic):
    """A helper with a bug in it."""

    name = "broken"

    async def tick(self) -> None:
        raise RuntimeError("a bug in a helper")


async def test_an_injected_failing_helper_stops_the_worker(store: Store, settings: Settings) -> None:
    async def idle(parameters: dict[str, str]) -> None:
        """A worker runs at least one type (one with none has nothing to claim and refuses to start)."""

    registry = registry_with(idle=idle)
    worker = Worker(
        store, settings.database_url, registry, worker_options(settings, 1, ()), helpers=[Broken(0.05)]
    )
    with pytest.raises(HelperDied, match="broken failed: a bug in a helper"):
        await asyncio.wait_for(worker.run(asyncio.Event()), 60)
    [info] = await store.list_workers()
    assert info.stopped_at is not None  # and it said goodbye


async def test_connections_terminated_under_a_worker_are_a_blip_not_a_death(
    store: Store, settings: Settings
) -> None:
    async def echo(parameters: dict[str, str]) -> str:
        return "ok"

    async with running_worker(store, settings, registry_with(echo=echo)) as worker:
        first, _ = await store.create_task(NewTask("before", "echo"))
        await eventually(lambda: status_is(store, first, Status.SUCCEEDED))
        # Every connection to this database but ours: the pool's, the listener's.
        async with store.pool.acquire() as conn:
            terminated = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert terminated >= 1
        after, _ = await store.create_task(NewTask("after", "echo"))
        await eventually(lambda: status_is(store, after, Status.SUCCEEDED))
        assert not worker._supervisor.failed.is_set()
