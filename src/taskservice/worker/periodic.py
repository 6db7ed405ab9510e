"""A background job that runs every so often until stopped: the base of the heartbeat and the reaper."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

log = structlog.get_logger(__name__)


class Periodic:
    """Calls `tick()` every `interval` seconds; a failing tick is logged and tried again next time."""

    name = "periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        while not self._stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.interval)
            if self._stopped.is_set():
                return
            try:
                await self.tick()
            except Exception as error:  # a database blip must not kill the worker
                log.warning(f"{self.name} failed", error=str(error))
