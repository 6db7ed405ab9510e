"""The heartbeat: extends the leases of the attempts a worker holds and notices the ones it lost."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from taskservice.background.periodic import Periodic
from taskservice.worker.queue import WorkQueue


class Heartbeat(Periodic):
    """Every `interval`, extend the leases of the attempts `held()` (execution ids); call `on_kept`
    with those extended and when the request was sent (on `clock`), `on_lost` with those that are no
    longer current (the store refused to extend them)."""

    name = "heartbeat"

    def __init__(
        self,
        store: WorkQueue,
        worker_id: str,
        lease_seconds: float,
        held: Callable[[], Collection[int]],
        on_lost: Callable[[set[int]], None],
        on_kept: Callable[[set[int], float], None] = lambda kept, sent_at: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(lease_seconds / 3)
        self.store, self.worker_id, self.lease_seconds = store, worker_id, lease_seconds
        self.held, self.on_lost, self.on_kept, self.clock = held, on_lost, on_kept, clock

    async def tick(self) -> None:
        ids = set(self.held())
        sent_at = self.clock()
        kept = await self.store.extend_leases(self.worker_id, list(ids), self.lease_seconds)
        self.on_kept(kept, sent_at)
        # Ids that finished while we were asking are not lost: only those still held count.
        lost = (ids - kept) & set(self.held())
        if lost:
            self.on_lost(lost)
