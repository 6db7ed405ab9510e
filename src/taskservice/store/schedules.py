"""Schedules in PostgreSQL (migration 0060): made, changed, listed, and fired exactly once per tick.

`fire_due` is what every scheduler (in every server and worker) runs: in one transaction it locks the
due schedules no other scheduler holds, asks `plan` (the rules' tick arithmetic, passed in) what to do
with each, and creates each tick's task and moves the schedule on in one statement. The unique
(schedule_id, schedule_tick) index makes a tick's task exist at most once whatever happens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from taskservice import model, tracing
from taskservice.model import Firing, NewTask, Schedule, ScheduleSpec, Status
from taskservice.store.sql import query

if TYPE_CHECKING:
    from asyncpg import Record

    from taskservice.store.store import Connection, Pool, TaskDefaults

UNFINISHED = (Status.QUEUED, Status.RUNNING, Status.RETRYING, Status.WAITING)  # a continuation waits


class ScheduleNotFound(LookupError):
    def __init__(self, which: str) -> None:
        super().__init__(f"no schedule {which}")


class ScheduleNameTaken(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} exists already; update it, or delete it first")


# What a scheduler asks of the rules for a due schedule: (the schedule, whether its last run is
# unfinished) -> what to fire (None: nothing now, it could not be planned).
Plan = Callable[[Schedule, bool], Firing | None]
# What a change of a schedule asks of the rules: (the schedule as it stands) -> (its new spec, checked,
# and its next tick).
Change = Callable[[Schedule], tuple[ScheduleSpec, datetime | None]]


def template(task: NewTask, defaults: TaskDefaults) -> dict[str, Any]:
    """The task a schedule creates at each tick, as stored: every option resolved."""
    return {
        "name": task.name,
        "type": task.type,
        "parameters": dict(task.parameters),
        "description": task.description,
        "priority": task.priority,
        "max_retries": defaults.max_retries if task.max_retries is None else task.max_retries,
        "timeout_seconds": defaults.timeout_seconds if task.timeout_seconds is None else task.timeout_seconds,
        "queue": task.queue or model.DEFAULT_QUEUE,
        "limit_key": task.limit_key,
    }


def _task(stored: Any) -> NewTask:
    data = json.loads(stored) if isinstance(stored, str) else stored
    return NewTask(
        name=data.get("name") or "",
        type=data.get("type") or "",
        parameters=dict(data.get("parameters") or {}),
        description=data.get("description") or "",
        priority=int(data.get("priority") or 0),
        max_retries=data.get("max_retries"),
        timeout_seconds=data.get("timeout_seconds"),
        queue=data.get("queue"),
        limit_key=data.get("limit_key"),
    )


def _schedule(row: Record) -> Schedule:
    spec = ScheduleSpec(
        name=row["name"], task=_task(row["task"]), cron=row["cron"], timezone=row["timezone"],
        every_seconds=row["every_seconds"], overlap=row["overlap"], catchup=row["catchup"],
        paused=row["paused"], ends_at=row["ends_at"],
    )  # fmt: skip
    last_status = row.get("last_status")  # in the statements that join the last task
    return Schedule(
        id=row["id"], spec=spec, next_tick=row["next_tick"], last_tick=row["last_tick"],
        last_task_id=row["last_task_id"], missed=row["missed"], skipped=row["skipped"],
        declared_type=row["declared_type"], undeclared_at=row["undeclared_at"], created_by=row["created_by"],
        created_at=row["created_at"], updated_at=row["updated_at"],
        last_status=None if last_status is None else Status(last_status),
    )  # fmt: skip


def _spec_values(spec: ScheduleSpec, defaults: TaskDefaults) -> tuple[Any, ...]:
    return (
        spec.cron, spec.timezone, spec.every_seconds, template(spec.task, defaults), spec.overlap,
        spec.catchup, spec.paused, spec.ends_at,
    )  # fmt: skip


async def create(
    conn: Pool | Connection,
    spec: ScheduleSpec,
    next_tick: datetime | None,
    defaults: TaskDefaults,
    *,
    declared_type: str | None = None,
    by: str = "",
) -> Schedule | None:
    """Store a new schedule (checked by the rules); None when its name is taken."""
    row = await conn.fetchrow(
        query("create_schedule"), spec.name, *_spec_values(spec, defaults), next_tick, declared_type, by
    )
    return None if row is None else _schedule(row)


async def update(
    conn: Pool | Connection,
    schedule_id: int,
    spec: ScheduleSpec,
    next_tick: datetime | None,
    defaults: TaskDefaults,
    *,
    declared_type: str | None = None,
) -> Schedule | None:
    """Replace a schedule's spec and next tick (its name stays); None when it is gone."""
    row = await conn.fetchrow(
        query("update_schedule"), schedule_id, *_spec_values(spec, defaults), next_tick, declared_type
    )
    return None if row is None else _schedule(row)


async def get(conn: Pool | Connection, name: str) -> Schedule | None:
    row = await conn.fetchrow(query("get_schedule"), name)
    return None if row is None else _schedule(row)


async def get_by_id(conn: Pool | Connection, schedule_id: int) -> Schedule | None:
    row = await conn.fetchrow(query("get_schedule_by_id"), schedule_id)
    return None if row is None else _schedule(row)


async def change(pool: Pool, name: str, changed: Change, defaults: TaskDefaults) -> Schedule | None:
    """Change a schedule as `changed` says, given it as it stands under its lock (so that two changes
    of different fields both land); None when there is no such schedule."""
    async with pool.acquire() as conn, conn.transaction():
        current = await locked(conn, name)
        if current is None:
            return None
        spec, next_tick = changed(current)
        return await update(conn, current.id, spec, next_tick, defaults, declared_type=current.declared_type)


async def list_all(conn: Pool | Connection, limit: int = 1000, offset: int = 0) -> list[Schedule]:
    return [_schedule(row) for row in await conn.fetch(query("list_schedules"), limit, offset)]


async def declared_by(conn: Pool | Connection, task_types: Sequence[str]) -> list[Schedule]:
    return [_schedule(row) for row in await conn.fetch(query("schedules_declared_by"), list(task_types))]


async def undeclare(conn: Pool | Connection, schedule_id: int) -> bool:
    """Note that a schedule's type no longer declares it; whether that is news."""
    return await conn.fetchrow(query("undeclare_schedule"), schedule_id) is not None


async def delete(conn: Pool | Connection, name: str) -> bool:
    return await conn.fetchrow(query("delete_schedule"), name) is not None


async def _fire(
    conn: Pool | Connection, schedule: Schedule, firing: Firing, ticks: Sequence[datetime | None]
) -> list[int]:
    """Create the ticks' tasks under a span of their own (with tracing on): a tick starts a trace, a
    trigger by hand continues its caller's (the RPC's); the tasks continue it."""
    attributes: tracing.Attributes = {
        "taskservice.schedule": schedule.spec.name,
        "taskservice.schedule.id": schedule.id,
    }
    name = "taskservice.schedule.tick" if any(ticks) else "taskservice.schedule.trigger"
    with tracing.span(name, root=any(ticks), attributes=attributes) as span:
        rows = await conn.fetch(
            query("fire_schedule"), schedule.id, list(ticks), firing.next_tick, firing.missed,
            firing.skipped, model.SCHEDULED, tracing.traceparent_of(span),
        )  # fmt: skip
    return [row["id"] for row in rows]


async def fire_due(
    pool: Pool, now: datetime, plan: Plan, limit: int = 100
) -> tuple[list[int], dict[str, str]]:
    """Fire the schedules due at `now` that no other scheduler holds: the ids of the tasks created, and
    the schedules that could not be fired, with why. Each schedule fires in a savepoint of its own, so
    one whose plan is None (the rules could not read it) or whose task the database refuses is left
    due, and the others fire."""
    created: list[int] = []
    failed: dict[str, str] = {}
    async with pool.acquire() as conn, conn.transaction():
        for row in await conn.fetch(query("due_schedules"), now, limit):
            schedule = _schedule(row)
            firing = plan(schedule, schedule.last_status in UNFINISHED)
            if firing is None:
                continue
            try:
                async with conn.transaction():
                    created += await _fire(conn, schedule, firing, firing.ticks)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as error:
                failed[schedule.spec.name] = str(error)
    return created, failed


async def trigger(pool: Pool, name: str) -> int | None:
    """Create a schedule's task now, by hand (no tick: its ticks go on as they were); None: no such
    schedule."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(query("lock_schedule"), name)
        if row is None:
            return None
        schedule = _schedule(row)
        [task_id] = await _fire(conn, schedule, Firing((), schedule.next_tick), [None])
        return task_id


async def locked(conn: Connection, name: str) -> Schedule | None:
    """A schedule, locked until the caller's transaction ends (to change it)."""
    row = await conn.fetchrow(query("lock_schedule"), name)
    return None if row is None else _schedule(row)
