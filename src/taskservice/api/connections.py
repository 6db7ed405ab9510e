"""Open connections against slow or many clients: a deadline for request headers, and a cap on connections.

A client that trickles its request headers (slowloris) held its connection, and its file descriptor,
for ever: 1,100 such connections took every descriptor of a process limited to 1,024, and no client
could connect until they went. Now a connection must complete its request headers within
HEADER_TIMEOUT_SECONDS of opening (or of its previous response), and the open connections are capped
below the process's descriptor limit; at the cap, a new connection makes room by closing the oldest one
still waiting for its headers (an idle keep-alive connection, or a trickler), so a client that sends
its request at once always gets in.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

# Descriptors kept out of the cap beside the database pool: the listening sockets, the LISTEN
# connections, log and data files, the event loop's own, and room for a burst to be closed.
RESERVED_DESCRIPTORS = 64
DROP_LOG_INTERVAL = 60.0  # seconds between warnings while connections are dropped at the cap


class Waiting(Protocol):
    """A connection that can be closed to make room."""

    def drop(self) -> None: ...


def connection_cap(pool_size: int) -> int:
    """The most connections this process may hold open: its descriptor limit less what it needs else."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, soft - pool_size - RESERVED_DESCRIPTORS)


class ConnectionWatch:
    """The connections waiting for request headers, oldest first, and the cap on open connections."""

    def __init__(self, header_timeout: float, cap: int) -> None:
        self.header_timeout, self.cap = header_timeout, cap
        self._waiting: dict[Waiting, None] = {}  # in the order their waits began
        self._dropped = 0
        self._last_warning = -DROP_LOG_INTERVAL

    def waiting(self, connection: Waiting) -> None:
        self._waiting[connection] = None

    def served(self, connection: Waiting) -> None:
        self._waiting.pop(connection, None)

    def admit(self, open_connections: int) -> None:
        """Called as a connection opens (already counted and waiting): at the cap, close the oldest
        waiting connection, which may be the new one when every other has a request under way."""
        if open_connections <= self.cap or not self._waiting:
            return
        oldest = next(iter(self._waiting))
        del self._waiting[oldest]
        oldest.drop()
        self._dropped += 1
        now = time.monotonic()
        if now - self._last_warning >= DROP_LOG_INTERVAL:
            log.warning(
                "too many open connections: closing the oldest without complete request headers",
                cap=self.cap, dropped=self._dropped,
            )  # fmt: skip
            self._last_warning = now


class HeaderDeadline:
    """A connection's timer for its request headers, and its place among the waiting connections."""

    def __init__(self, watch: ConnectionWatch, loop: asyncio.AbstractEventLoop) -> None:
        self.watch, self.loop = watch, loop
        self._timer: asyncio.TimerHandle | None = None

    def start(self, connection: Waiting) -> None:
        """The connection waits for request headers (from now, unless it already did)."""
        if self._timer is None:
            self._timer = self.loop.call_later(self.watch.header_timeout, self._late, connection)
            self.watch.waiting(connection)

    def stop(self, connection: Waiting) -> None:
        """The headers came (or the connection closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.watch.served(connection)

    def _late(self, connection: Waiting) -> None:
        self._timer = None
        self.watch.served(connection)
        connection.drop()
