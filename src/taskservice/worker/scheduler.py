"""The scheduler: creates the tasks of due schedule ticks. Every server and worker runs one; each due
schedule is fired by whichever locks it first, and each tick's task is created exactly once.

It also keeps the schedules task types declare (`@task(cron=...)`, `schedules=[...]`) as their
published declarations say, whenever one changes: it creates a declared schedule, updates it when the
code changed it (keeping a pause or an end an operator set), and reports one the code no longer
declares (a warning, and `undeclared_at`) without deleting it. A name taken by a schedule made through
the API is left alone, with a warning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import structlog

from taskservice.background.periodic import Periodic, utc_now
from taskservice.model import Firing, NewTask, Schedule, ScheduleSpec, every_seconds
from taskservice.plugins.declare import DeclaredSchedule, TaskTypeSpec
from taskservice.rules import schedules
from taskservice.rules.tasks import BrokenRule
from taskservice.store import Store

log = structlog.get_logger(__name__)


class Scheduler(Periodic):
    """Every `interval`, fires the schedules due by `clock` (tests move it across ticks, daylight saving
    changes and downtime instead of waiting); a tick up to `grace` seconds late is on time."""

    name = "scheduler"

    def __init__(
        self, store: Store, interval: float, grace: float, clock: Callable[[], datetime] = utc_now
    ) -> None:
        super().__init__(interval)
        self.store, self.grace, self.clock = store, grace, clock
        self._declarations_seen: datetime | None = None

    async def tick(self) -> None:
        await self.run_once()

    async def run_once(self) -> list[int]:
        """Fire what is due now (after keeping the declared schedules as declared); the ids of the tasks
        created."""
        now = self.clock()
        changed = await self.store.declarations_changed()
        if changed is not None and changed != self._declarations_seen:
            await self.reconcile(now)
            self._declarations_seen = changed

        def plan(schedule: Schedule, previous_unfinished: bool) -> Firing | None:
            try:
                return schedules.plan(schedule, now, self.grace, previous_unfinished)
            except Exception as error:  # one unreadable schedule (a time zone gone?) stops no other
                log.error(
                    "schedule cannot be planned; it stays due", schedule=schedule.spec.name, error=str(error)
                )
                return None

        created, failed = await self.store.fire_due_schedules(now, plan)
        for name, error in failed.items():
            log.error("schedule's task refused by the database; it stays due", schedule=name, error=error)
        if created:
            log.debug("scheduler: created the tasks of due ticks", tasks=len(created))
        return created

    async def reconcile(self, now: datetime) -> None:
        """Make the declared schedules what the published declarations say."""
        published_by_type = await self.store.declarations()
        by_type: dict[str, dict[str, Schedule]] = {}
        for schedule in await self.store.schedules_declared_by(list(published_by_type)):
            by_type.setdefault(schedule.declared_type or "", {})[schedule.spec.name] = schedule
        for type_name, published in published_by_type.items():
            spec = TaskTypeSpec.from_json(published)
            if spec is None:
                continue  # a newer version's declaration this one cannot read: left to it
            existing = by_type.get(type_name, {})
            wanted: dict[str, ScheduleSpec] = {}
            for declared in spec.schedules:
                found = _declared_spec(type_name, declared, spec)
                if found is not None:
                    wanted[found.name] = found
            for name, wanted_spec in wanted.items():
                await self._keep(type_name, wanted_spec, existing.get(name), now)
            for name, gone in existing.items():
                if name not in wanted and await self.store.undeclare_schedule(gone.id):
                    log.warning(
                        "schedule no longer declared by its task type: it keeps running until deleted",
                        schedule=name, type=type_name,
                    )  # fmt: skip

    async def _keep(
        self, type_name: str, wanted: ScheduleSpec, existing: Schedule | None, now: datetime
    ) -> None:
        if existing is None:
            made = await self.store.create_schedule(
                wanted, schedules.first_tick(wanted, now), declared_type=type_name, by=f"type {type_name}"
            )
            if made is None:
                log.warning(
                    "a schedule of that name exists and is not the task type's: the declared one is left out",
                    schedule=wanted.name, type=type_name,
                )  # fmt: skip
            return
        # An operator's pause and end stay; the next tick moves only when the timing changed.
        kept = replace(wanted, paused=existing.spec.paused, ends_at=existing.spec.ends_at)
        timing = (kept.cron, kept.timezone, kept.every_seconds)
        same_timing = timing == (existing.spec.cron, existing.spec.timezone, existing.spec.every_seconds)
        next_tick = existing.next_tick if same_timing else schedules.first_tick(kept, now)
        await self.store.update_schedule(existing.id, kept, next_tick, declared_type=type_name)


def _declared_spec(type_name: str, declared: DeclaredSchedule, spec: TaskTypeSpec) -> ScheduleSpec | None:
    """A declared schedule as a checked ScheduleSpec, or None (with a warning) when it breaks a rule."""
    name = declared.name or type_name
    try:
        return schedules.checked(
            ScheduleSpec(
                name=name, task=NewTask(name, type_name, dict(declared.parameters)), cron=declared.cron,
                timezone=declared.timezone,
                every_seconds=every_seconds(declared.every) if declared.every is not None else None,
                overlap=declared.overlap, catchup=declared.catchup,
            ),
            {type_name: spec},
        )  # fmt: skip
    except (BrokenRule, ValueError) as error:
        log.warning("declared schedule left out", schedule=name, type=type_name, error=str(error))
        return None
