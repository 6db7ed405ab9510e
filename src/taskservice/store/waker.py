"""The wake-up call to the workers after new tasks commit: one NOTIFY at a time, shared by every caller."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from taskservice.store.sql import query

if TYPE_CHECKING:
    import asyncpg

# The channel of the queue's wake-ups: the one name, passed to every statement that notifies, and the
# one a worker LISTENs on.
NOTIFY_CHANNEL = "taskservice_queue"


class Waker:
    """Sends the queue's NOTIFY for tasks that have committed.

    A NOTIFY inside the inserting statement would hold PostgreSQL's notify lock (one per database)
    until that transaction's commit is on disk, so concurrent inserts would commit one after another.
    Sent apart, inserts commit together; a caller whose tasks committed while a NOTIFY was already on
    its way waits for the next one, which every caller arriving meanwhile shares.
    """

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool
        self._next: asyncio.Future[None] | None = None  # the NOTIFY not yet sent, with its waiters
        self._sender: asyncio.Task[None] | None = None

    async def wake(self) -> None:
        """Return once a NOTIFY begun after this call has committed (or failed: workers also poll)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiting = self._next
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="waker")
        await asyncio.shield(waiting)

    async def _send(self) -> None:
        while self._next is not None:
            sending, self._next = self._next, None
            try:
                # A lost wake-up only delays the tasks until the workers' next poll.
                with contextlib.suppress(Exception):
                    await self.pool.execute(query("wake_workers"), NOTIFY_CHANNEL)
            finally:
                if not sending.done():
                    sending.set_result(None)
