"""The soak (`task-cli bench --soak`) ends on time whatever the backlog: its enqueuer stops at its time
even when the server stops answering, and its drain waits a bounded time and says what was left."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from conftest import ServerProcess
from taskservice.bench.client import Client
from taskservice.bench.soak import CALL_GRACE, drain, drain_seconds, enqueue_at
from taskservice.model import NewTask, Status
from taskservice.store import Pool, Store

pytestmark = pytest.mark.e2e  # starts a server process


async def test_the_enqueuer_sends_at_its_rate_and_stops_at_its_time_when_the_server_hangs(
    workerless_server: ServerProcess, pool: Pool
) -> None:
    async with Client(workerless_server.url) as api:
        sent = await asyncio.wait_for(enqueue_at(api, rate=200.0, seconds=0.5), 30)
    assert 0 < sent <= 100
    assert await pool.fetchval("SELECT count(*) FROM tasks") == sent
    async with Client(workerless_server.url) as api:
        os.kill(workerless_server.process.pid, signal.SIGSTOP)  # every call now waits for good
        try:
            # Fails (TimeoutError) if it waits for the answers instead of stopping at its time.
            stuck = await asyncio.wait_for(enqueue_at(api, rate=200.0, seconds=0.5), 0.5 + CALL_GRACE + 10)
        finally:
            os.kill(workerless_server.process.pid, signal.SIGCONT)
    assert stuck == 0  # nothing answered: nothing counted as sent


async def test_the_drain_waits_a_bounded_time_and_says_what_is_left(store: Store, pool: Pool) -> None:
    ids = [i for i, _ in await store.create_tasks([NewTask(f"t{i}", "t") for i in range(3)])]
    # No worker runs them: it gives up after its time, with all three left.
    assert await asyncio.wait_for(drain(pool, 0.3), 10) == 3
    await store.claim("w", 1)
    assert await asyncio.wait_for(drain(pool, 0.3), 10) == 3  # running is not finished either
    for task_id in ids:
        await store.set_status(task_id, Status.CANCELLED, "done with it")
    assert await asyncio.wait_for(drain(pool, 60), 10) == 0  # nothing left: it returns at once


def test_the_drain_s_time_grows_with_the_soak_within_bounds() -> None:
    assert drain_seconds(0.1) == 10.0
    assert drain_seconds(10) == 30.0
    assert drain_seconds(30) == 60.0
    assert drain_seconds(600) == 60.0
