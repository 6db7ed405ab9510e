"""The heartbeat: extends the leases of the attempts a worker holds and notices the ones it lost."""

from __future__ import annotations

from collections.abc import Callable, Collection

from taskservice.worker.periodic import Periodic
from taskservice.worker.queue import WorkQueue


class Heartbeat(Periodic):
    """Every `interval`, extend the leases of the attempts `held()` (execution ids); call `on_lost`
    with those that are no longer current (the store refused to extend them)."""

    name = "heartbeat"

    def __init__(
        self,
        store: WorkQueue,
        worker_id: str,
        lease_seconds: float,
        held: Callable[[], Collection[int]],
        on_lost: Callable[[set[int]], None],
    ) -> None:
        super().__init__(lease_seconds / 3)
        self.store, self.worker_id, self.lease_seconds = store, worker_id, lease_seconds
        self.held, self.on_lost = held, on_lost

    async def tick(self) -> None:
        ids = set(self.held())
        kept = await self.store.extend_leases(self.worker_id, list(ids), self.lease_seconds)
        # Ids that finished while we were asking are not lost: only those still held count.
        lost = (ids - kept) & set(self.held())
        if lost:
            self.on_lost(lost)
