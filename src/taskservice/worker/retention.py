"""The retention job: deletes finished tasks past RETENTION_* in bounded batches, one process at a time,
and the kept starts of limit keys idle for longer than any rate's period."""

from __future__ import annotations

from collections.abc import Callable
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
        deleted: dict[Status, int] = {}
        for status, before in self.policy.cutoffs(self.clock()).items():
            for _ in range(BATCHES_PER_TICK):
                count = await self.store.delete_finished(status, before, self.batch)
                if count is None:  # another process is deleting: its turn
                    return deleted
                deleted[status] = deleted.get(status, 0) + count
                if count < self.batch:
                    break
        if any(deleted.values()):
            log.info("retention: deleted finished tasks", **{s.name.lower(): n for s, n in deleted.items()})
        workflows: dict[Status, int] = {}
        for status, before in self.policy.cutoffs(self.clock()).items():
            for _ in range(BATCHES_PER_TICK):
                count = await self.store.delete_finished_workflows(status, before, self.batch)
                if count is None:
                    return deleted
                workflows[status] = workflows.get(status, 0) + count
                if count < self.batch:
                    break
        if any(workflows.values()):
            log.info(
                "retention: deleted finished workflows", **{s.name.lower(): n for s, n in workflows.items()}
            )
        return deleted
