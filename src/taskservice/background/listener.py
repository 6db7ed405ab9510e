"""The wake-up line: LISTEN for new work on a connection of its own, reconnecting when it drops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from taskservice.db.connect import connect
from taskservice.store import NOTIFY_CHANNEL

log = structlog.get_logger(__name__)


class Listener:
    """Calls `on_notify()` for every NOTIFY on `channel` (the queue's by default), and once each time it
    (re)connects, for what was sent while it was not listening; `on_lost()` when the line drops."""

    def __init__(
        self,
        url: str,
        on_notify: Callable[[], None],
        retry_delay: float = 1.0,
        *,
        channel: str = NOTIFY_CHANNEL,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.url, self.on_notify, self.retry_delay = url, on_notify, retry_delay
        self.channel, self.on_lost = channel, on_lost
        self._task: asyncio.Task[None] | None = None

    name = "listener"

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _notified(self, *_: Any) -> None:
        self.on_notify()

    async def _loop(self) -> None:
        while True:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await connect(self.url)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _conn, closed=closed: closed.set())
                await conn.add_listener(self.channel, self._notified)
                self.on_notify()  # anything sent while we were not listening
                await closed.wait()
                log.warning("listen connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("listen connection failed; polling until it is back", error=str(error))
            finally:
                self.on_lost()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(self.retry_delay)
