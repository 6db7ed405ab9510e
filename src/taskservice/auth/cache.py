"""The server's memory of credentials it checked lately (AUTH_CACHE_SECONDS > 0), for throughput.

By default every request's token or session is looked up in PostgreSQL, so a revocation holds on
every replica the moment it commits; that lookup costs CreateTask 13-29% of its throughput. With
AUTH_CACHE_SECONDS set, each server keeps the holder of a secret it checked for that long (never past
the token's or session's expiry), and forgets everything when a token is revoked or a session ends
anywhere: those statements NOTIFY the credentials channel, which every server hears within
milliseconds of the commit — the window in which a replica may still accept a revoked token. The
memory is used only while that LISTEN connection is up: when it drops, a revocation could go unheard,
so every request goes to the database until it is back. A lookup that began before a revocation is
not kept (a generation counter tells).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from taskservice.store import Holder

MAX_ENTRIES = 10_000


class CredentialCache:
    """Secret hash -> holder, for `ttl` seconds at most; emptied by `forget_all()`."""

    def __init__(
        self,
        ttl: float = 0.0,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ttl, self.max_entries, self._clock, self._wall_clock = ttl, max_entries, clock, wall_clock
        self._entries: OrderedDict[bytes, tuple[float, Holder]] = OrderedDict()
        self._generation = 0
        self.enabled = False  # only while the invalidation line (LISTEN) is connected

    def get(self, digest: bytes) -> Holder | None:
        entry = self._entries.get(digest)
        if entry is None or not self.enabled:
            return None
        kept_until, holder = entry
        expired = holder.expires_at is not None and holder.expires_at <= self._wall_clock()
        if self._clock() >= kept_until or expired:
            del self._entries[digest]
            return None
        return holder

    def generation(self) -> int:
        """Take before a database lookup; give to `keep` after it."""
        return self._generation

    def keep(self, digest: bytes, holder: Holder, generation: int) -> None:
        """Remember `holder`, unless credentials changed since `generation` was taken."""
        if not self.enabled or self.ttl <= 0 or generation != self._generation:
            return
        self._entries[digest] = (self._clock() + self.ttl, holder)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()

    def heard(self) -> None:
        """A token was revoked or a session ended somewhere, or the line was just (re)connected: forget
        everything, and keep what is looked up from now on."""
        self.forget_all()
        self.enabled = self.ttl > 0

    def lost(self) -> None:
        """The line dropped: what is revoked meanwhile would go unheard, so keep nothing until it is back."""
        self.enabled = False
        self.forget_all()
