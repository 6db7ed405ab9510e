"""The retention job: deletes finished tasks past RETENTION_* in bounded batches, one process at a time,
and the kept starts of limit keys idle for longer than any rate's period."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from taskservice.background.periodic import Periodic, utc_now
from taskservice.model import RATE_PERIOD_MAX, Status
from taskservice.store import RetentionPolicy, Store

log = structlog.get_logger(__name__)

# Each batch is its own short transaction; a tick goes on while batches come back full, so that it
# keeps up with any rate of finishing tasks, and stops after this many (a million tasks) per status
# so that one tick never runs unbounded.
BATCHES_PER_TICK = 1000
# One batch of one status: (status, last changed before, at most) -> how many went, None when another
# process holds the retention lock.
Delete = Callable[[Status, datetime, int], Awaitable[int | None]]


class RetentionJob(Periodic):
    """Every `interval`, deletes what `policy` no longer keeps; `clock` says what time it is (tests
    move it instead of waiting days). Every server and worker runs one; the store's advisory lock lets
    one of them at a time delete, and the others skip their tick."""

    name = "retention"

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        interval: float,
        batch: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(interval)
        self.store, self.policy, self.batch, self.clock = store, policy, batch, clock

    async def tick(self) -> None:
        await self.run_once()

    async def run_once(self) -> dict[Status, int]:
        """Delete what is due now, up to BATCHES_PER_TICK batches per status; the counts deleted."""
        # A rate's period is a day at most: a key that started nothing since needs no kept starts.
        since = self.clock() - timedelta(seconds=RATE_PERIOD_MAX)
        if idle := await self.store.forget_idle_limit_keys(since, self.batch):
            log.info("retention: forgot the starts of idle limit keys", keys=idle)
        cutoffs = self.policy.cutoffs(self.clock())
        deleted, lock_held = await self._in_batches(self.store.delete_finished, cutoffs)
        if any(deleted.values()):
            log.info("retention: deleted finished tasks", **{s.name.lower(): n for s, n in deleted.items()})
        if lock_held:  # else another process is deleting: its turn
            workflows, _ = await self._in_batches(self.store.delete_finished_workflows, cutoffs)
            if any(workflows.values()):
                counts = {s.name.lower(): n for s, n in workflows.items()}
                log.info("retention: deleted finished workflows", **counts)
        return deleted

    async def _in_batches(
        self, delete: Delete, cutoffs: dict[Status, datetime]
    ) -> tuple[dict[Status, int], bool]:
        """Run `delete` per status, batch after batch while they come back full (up to BATCHES_PER_TICK);
        the counts deleted, and False once another process held the retention lock (then it stops)."""
        deleted: dict[Status, int] = {}
        for status, before in cutoffs.items():
            for _ in range(BATCHES_PER_TICK):
                count = await delete(status, before, self.batch)
                if count is None:
                    return deleted, False
                deleted[status] = deleted.get(status, 0) + count
                if count < self.batch:
                    break
        return deleted, True
