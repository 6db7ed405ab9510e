"""The reporter: writes the outcomes of finished attempts, many per statement when they pile up."""

from __future__ import annotations

import asyncio

import structlog

from taskservice.model import Transition
from taskservice.store import Store

log = structlog.get_logger(__name__)


class Reporter:
    """Queues transitions and writes each backlog in one round trip.

    No artificial delay: an outcome is written as soon as the previous write is done, so under light
    load each goes alone (lowest latency) and under heavy load they share commits (highest throughput).
    """

    def __init__(self, store: Store, worker_id: str, retry_delay: float = 0.5) -> None:
        self.store, self.worker_id, self.retry_delay = store, worker_id, retry_delay
        self._pending: list[Transition] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def report(self, transition: Transition) -> None:
        self._pending.append(transition)
        self._idle.clear()
        self._ready.set()

    def pending_ids(self) -> list[int]:
        return [t.task_id for t in self._pending]

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reporter")

    async def drain(self) -> None:
        """Wait until everything reported so far is written."""
        await self._idle.wait()

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._pending = self._pending, []
            try:
                await self.store.finish([self.worker_id] * len(batch), batch)
            except Exception as error:
                # Keep them and try again: the lease still protects these tasks meanwhile.
                log.warning("writing outcomes failed; retrying", error=str(error), count=len(batch))
                self._pending[:0] = batch
                await asyncio.sleep(self.retry_delay)
                self._ready.set()
                continue
            if not self._pending:
                self._idle.set()
