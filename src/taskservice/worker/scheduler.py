"""The scheduler: creates the tasks of due schedule ticks. Every server and worker runs one; each due
schedule is fired by whichever locks it first, and each tick's task is created exactly once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from taskservice.background.periodic import Periodic
from taskservice.model import Firing, Schedule
from taskservice.rules import schedules
from taskservice.store import Store

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler(Periodic):
    """Every `interval`, fires the schedules due by `clock` (tests move it across ticks, daylight saving
    changes and downtime instead of waiting); a tick up to `grace` seconds late is on time."""

    name = "scheduler"

    def __init__(
        self, store: Store, interval: float, grace: float, clock: Callable[[], datetime] = utc_now
    ) -> None:
        super().__init__(interval)
        self.store, self.grace, self.clock = store, grace, clock

    async def tick(self) -> None:
        await self.run_once()

    async def run_once(self) -> list[int]:
        """Fire what is due now; the ids of the tasks created."""
        now = self.clock()

        def plan(schedule: Schedule, previous_unfinished: bool) -> Firing:
            return schedules.plan(schedule, now, self.grace, previous_unfinished)

        created = await self.store.fire_due_schedules(now, plan)
        if created:
            log.debug("scheduler: created the tasks of due ticks", tasks=len(created))
        return created
