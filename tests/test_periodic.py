"""The periodic-job base the server and the workers share (background/periodic.py), on a clock the test
moves: a tick runs when its interval has passed, a transient failure is tried again, a bug ends the job."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from taskservice.background.periodic import Periodic


class Clock:
    """The intervals a job waits out, passed only when the test says so."""

    def __init__(self) -> None:
        self.passed: asyncio.Queue[None] = asyncio.Queue()
        self.waiting = asyncio.Event()

    async def wait(self, stopped: asyncio.Event, interval: float) -> None:
        self.waiting.set()
        passed = asyncio.ensure_future(self.passed.get())
        stop = asyncio.ensure_future(stopped.wait())
        await asyncio.wait({passed, stop}, return_when=asyncio.FIRST_COMPLETED)
        passed.cancel()
        stop.cancel()

    async def advance(self) -> None:
        """One interval passes; returns when the job waits for the next one (or has ended)."""
        self.waiting.clear()
        await self.passed.put(None)


class Job(Periodic):
    name = "job"

    def __init__(self, clock: Clock, failures: list[Exception]) -> None:
        super().__init__(60.0, wait=clock.wait)
        self.ticks, self.failures = 0, failures
        self.ticked = asyncio.Event()

    async def tick(self) -> None:
        self.ticks += 1
        self.ticked.set()
        if self.failures:
            raise self.failures.pop(0)


async def test_a_tick_runs_each_time_its_interval_passes_and_not_before() -> None:
    clock = Clock()
    job = Job(clock, [])
    job.start()
    await clock.waiting.wait()
    assert job.ticks == 0
    for expected in (1, 2):
        await clock.advance()
        await clock.waiting.wait()
        assert job.ticks == expected
    await job.stop()
    assert job.task is not None
    assert job.task.done()
    assert job.task.exception() is None


async def test_a_transient_failure_is_logged_and_tried_again() -> None:
    clock = Clock()
    job = Job(clock, [ConnectionResetError("the database went away")])
    job.start()
    await clock.waiting.wait()
    with structlog.testing.capture_logs() as logs:
        await clock.advance()
        await clock.waiting.wait()
    assert [e["event"] for e in logs] == ["job failed; trying again"]
    await clock.advance()
    await clock.waiting.wait()
    assert job.ticks == 2
    await job.stop()


async def test_a_bug_ends_the_job_with_its_exception() -> None:
    clock = Clock()
    job = Job(clock, [RuntimeError("a bug")])
    job.start()
    await clock.waiting.wait()
    await clock.advance()
    assert job.task is not None
    with pytest.raises(RuntimeError, match="a bug"):
        await job.task
