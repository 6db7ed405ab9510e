"""A background job that runs every so often until stopped: the base of the heartbeat and the reaper."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from taskservice.worker.errors import is_transient

log = structlog.get_logger(__name__)


class Periodic:
    """Calls `tick()` every `interval` seconds. A tick that fails for a transient reason (the database
    or server unreachable) is logged and tried again next time; any other failure ends the job, and
    the worker it belongs to stops and says why (supervisor.py)."""

    name = "periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.interval)
            if self._stopped.is_set():
                return
            try:
                await self.tick()
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning(f"{self.name} failed; trying again", error=str(error))  # a database blip
