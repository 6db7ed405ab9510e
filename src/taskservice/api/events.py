"""The event hub: one loop reads new history rows and hands them to every live subscriber."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import structlog

from taskservice.store import HistoryEvent, Store

log = structlog.get_logger(__name__)

# History ids come from a sequence but commit out of order: a row may appear below the highest id
# already seen. Each look re-reads this many ids below the top and skips the ones already sent.
REREAD_WINDOW = 200
QUEUE_LIMIT = 10_000


class SubscriberTooSlow(Exception):
    """A subscriber fell more than QUEUE_LIMIT events behind; it should reconnect."""


class EventHub:
    """Polls task_history while someone listens; polling costs nothing on the write path."""

    def __init__(self, store: Store, interval: float) -> None:
        self.store, self.interval = store, interval
        self._subscribers: set[asyncio.Queue[HistoryEvent | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._floor = self._top = 0  # events at or below the floor happened before anyone listened
        self._sent: set[int] = set()

    async def subscribe(self) -> AsyncGenerator[HistoryEvent | None]:
        """First None once subscribed, then every event from that moment, until the caller closes it."""
        queue: asyncio.Queue[HistoryEvent | None] = asyncio.Queue(QUEUE_LIMIT)
        if not self._subscribers:
            self._floor = self._top = await self.store.last_history_id()
            self._sent.clear()
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="event-hub")
        try:
            yield None
            while True:
                event = await queue.get()
                if event is None:
                    raise SubscriberTooSlow
                yield event
        finally:
            self._subscribers.discard(queue)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while self._subscribers:
            try:
                await self._deliver_new()
            except Exception as error:  # the database may blink; subscribers keep waiting
                log.warning("reading events failed", error=str(error))
            await asyncio.sleep(self.interval)

    async def _deliver_new(self) -> None:
        events = await self.store.history_after(max(self._top - REREAD_WINDOW, 0))
        fresh = [e for e in events if e.entry.id > self._floor and e.entry.id not in self._sent]
        if not fresh:
            return
        self._top = max(self._top, *(e.entry.id for e in fresh))
        self._sent.update(e.entry.id for e in fresh)
        self._sent = {i for i in self._sent if i > self._top - REREAD_WINDOW}
        for queue in list(self._subscribers):
            for event in fresh:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self._subscribers.discard(queue)
                    queue.get_nowait()
                    queue.put_nowait(None)  # tells it to give up
                    break
