"""A background job that runs every so often until stopped: the base of the heartbeat, the reaper, the
retention job and the dispatcher's lease tick (River's background services)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from taskservice.rules.transient import is_transient

log = structlog.get_logger(__name__)

# Waits out one interval: returns when it has passed or when the event (stop) is set, whichever is first.
Wait = Callable[[asyncio.Event, float], Awaitable[None]]


def utc_now() -> datetime:
    """The wall clock the jobs that go by it (retention, the scheduler) read unless a test gives one."""
    return datetime.now(UTC)


async def wait_interval(stopped: asyncio.Event, interval: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopped.wait(), interval)


class Periodic:
    """Calls `tick()` every `interval` seconds. A tick that fails for a transient reason (the database
    or server unreachable) is logged and tried again next time; any other failure ends the job, and
    the worker it belongs to stops and says why (worker/supervisor.py)."""

    name = "periodic"

    def __init__(self, interval: float, *, wait: Wait = wait_interval) -> None:
        self.interval, self._wait = interval, wait  # tests pass a `wait` that they move on themselves
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        raise NotImplementedError

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)  # a failure was reported already

    async def _loop(self) -> None:
        while not self._stopped.is_set():
            await self._wait(self._stopped, self.interval)
            if self._stopped.is_set():
                return
            try:
                await self.tick()
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning(f"{self.name} failed; trying again", error=str(error))  # a database blip
