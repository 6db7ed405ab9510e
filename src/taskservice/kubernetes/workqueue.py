"""The controller's queue of resource names to reconcile: each name at most once in it (many events
about one task are one reconcile), and names that are due again later (a retention time, a retry)."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable


class WorkQueue:
    """Names to reconcile, for one consumer thread; `add` and `add_after` from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._ready: dict[str, None] = {}  # insertion-ordered, each name once
        self._later: list[tuple[float, str]] = []
        self._changed = threading.Condition()

    def add(self, name: str) -> None:
        with self._changed:
            self._ready[name] = None
            self._changed.notify()

    def add_after(self, name: str, seconds: float) -> None:
        with self._changed:
            heapq.heappush(self._later, (self.clock() + seconds, name))
            self._changed.notify()

    def wake(self) -> None:
        """Make a waiting `get` look again (at stop, say)."""
        with self._changed:
            self._changed.notify_all()

    def get(self, timeout: float) -> str | None:
        """The next name to reconcile, waiting at most `timeout` seconds for one (None: none came)."""
        deadline = self.clock() + timeout
        with self._changed:
            while True:
                now = self.clock()
                while self._later and self._later[0][0] <= now:
                    self._ready[heapq.heappop(self._later)[1]] = None
                if self._ready:
                    name = next(iter(self._ready))
                    del self._ready[name]
                    return name
                if now >= deadline:
                    return None
                wait = deadline - now
                if self._later:
                    wait = min(wait, self._later[0][0] - now)
                self._changed.wait(max(wait, 0.0))
