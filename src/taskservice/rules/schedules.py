"""Schedules' rules: what a schedule may be, and when it ticks (cron in a time zone, or an interval).

Cron expressions have five fields, or one of `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
`@midnight`, `@hourly`; they are evaluated by cronsim, which follows Debian's cron across daylight
saving changes: a time that a jump forward skips fires once, right after the jump (02:30 on the night
the clocks go from 02:00 to 03:00 fires at 03:00); a time that a jump back repeats fires once (the
first 02:30); an expression with a wildcard hour ("*/30 * * * *") keeps ticking every 30 minutes of
real time through both. Intervals (`every`) tick every N seconds from when the schedule was made.

`plan` decides what a scheduler does with a due schedule at a time `now` it is given (the injectable
clock): which ticks to create, which count as missed (the schedulers were down for longer than the
grace) or skipped (the previous run is unfinished, overlap "skip"), and the next tick.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim

from taskservice.model import (
    CATCHUP_MAX,
    CATCHUP_POLICIES,
    CRON_MAX,
    EVERY_MAX_SECONDS,
    EVERY_MIN_SECONDS,
    EVERY_RULE,
    OVERLAP_POLICIES,
    SCHEDULE_NAME_MAX,
    Firing,
    Schedule,
    ScheduleSpec,
    cron_expression,
    every_seconds,
)
from taskservice.rules.tasks import BrokenRule, PayloadLimits, TaskTypes, new_task, text

# The most ticks a scheduler looks at for one schedule at once (a year down with a schedule every
# second has 31 million): the newest LOOK_BACK; and the most a cron walk takes before it jumps to the
# last two days (the missed count is then a lower bound).
LOOK_BACK = 10_000
WALK_MAX = 100_000
WALK_IN = timedelta(hours=3)  # longer than any daylight saving change


# What may change of a schedule a task type declares: the rest is its code's (the schedulers would
# put it back at the next declaration).
OPERATORS_OWN = frozenset({"paused", "ends_at"})


class DeclaredInCode(Exception):
    """A change of a declared schedule's timing, task or policies: those are its code's."""

    def __init__(self, name: str, task_type: str, fields: set[str]) -> None:
        super().__init__(
            f"schedule {name!r} is declared by task type {task_type!r} in its code: change "
            f"{', '.join(sorted(fields))} there (pause, resume and an end may be set here)"
        )


def every(value: str, field: str = "every") -> float:
    """Seconds of a duration ("30s", "5m", "2h", "1d", or a number of seconds)."""
    try:
        return every_seconds(value)
    except ValueError as error:
        raise BrokenRule(field, str(error)) from None


def cron(value: str, field: str = "cron") -> str:
    """A cron expression as stored: five fields (a nickname such as @hourly becomes its five)."""
    text(field, value, CRON_MAX, required=True, single_line=True)
    try:
        return cron_expression(value)
    except ValueError as error:
        raise BrokenRule(field, str(error)) from None


def timezone(value: str, field: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise BrokenRule(
            field, f"must be an IANA time zone such as UTC or Europe/Berlin (got {value[:100]!r})"
        ) from None


def checked(
    spec: ScheduleSpec,
    task_types: TaskTypes,
    prefix: str = "",
    limits: PayloadLimits = PayloadLimits(),  # noqa: B008
) -> ScheduleSpec:
    """The schedule as it may be stored (its task with its type's defaults); BrokenRule otherwise."""
    name = text(f"{prefix}name", spec.name, SCHEDULE_NAME_MAX, required=True, single_line=True)
    if (spec.cron is None) == (spec.every_seconds is None):
        raise BrokenRule(f"{prefix}cron", "give a cron expression or an interval (every), one of them")
    expression = cron(spec.cron, f"{prefix}cron") if spec.cron is not None else None
    timezone(spec.timezone, f"{prefix}timezone")
    seconds = spec.every_seconds
    if seconds is not None and not EVERY_MIN_SECONDS <= seconds <= EVERY_MAX_SECONDS:
        raise BrokenRule(f"{prefix}every", f"must be {EVERY_RULE} (got {seconds:g} seconds)")
    if spec.overlap not in OVERLAP_POLICIES:
        raise BrokenRule(
            f"{prefix}overlap", f"must be one of {', '.join(OVERLAP_POLICIES)} (got {spec.overlap!r})"
        )
    if spec.catchup not in CATCHUP_POLICIES:
        raise BrokenRule(
            f"{prefix}catchup", f"must be one of {', '.join(CATCHUP_POLICIES)} (got {spec.catchup!r})"
        )
    if spec.ends_at is not None and spec.ends_at.tzinfo is None:
        raise BrokenRule(f"{prefix}ends_at", "must say its time zone (RFC 3339, e.g. 2027-01-01T00:00:00Z)")
    task = new_task(replace(spec.task, name=spec.task.name or name), task_types, f"{prefix}task.", limits)
    if task.idempotency_key or task.delay_seconds or task.run_at:
        raise BrokenRule(
            f"{prefix}task", "a scheduled task has no idempotency key, delay or run_at: its tick is all three"
        )
    return replace(spec, name=name, cron=expression, task=task)


def _cron_ticks(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """Cron ticks after `after`, as one cronsim walk begun three hours before gives them: its handling
    of a daylight saving change depends on having walked into the change, so every question about the
    ticks near one gets the same answer wherever it is asked from."""
    assert spec.cron is not None
    start = (after.astimezone(UTC) - WALK_IN).astimezone(ZoneInfo(spec.timezone))
    for tick in CronSim(spec.cron, start):
        if tick > after:
            yield tick


def ticks_after(spec: ScheduleSpec, after: datetime, anchor: datetime | None = None) -> Iterator[datetime]:
    """The schedule's ticks after `after`, oldest first. An interval ticks at `anchor` + k * every."""
    if spec.cron is not None:
        yield from _cron_ticks(spec, after)
        return
    assert spec.every_seconds is not None
    step = timedelta(seconds=spec.every_seconds)
    start = anchor if anchor is not None else after
    count = int((after - start) / step) + 1 if after >= start else 0
    while True:
        yield start + count * step
        count += 1


def _due(spec: ScheduleSpec, since: datetime, now: datetime) -> tuple[list[datetime], int]:
    """The ticks from `since` (a tick) to `now`, both included, oldest first: the newest LOOK_BACK of
    them, and how many older ones that leaves out (at least that many, after a very long downtime)."""
    if spec.every_seconds is not None:
        step = timedelta(seconds=spec.every_seconds)
        count = int((now - since) / step) + 1
        first = max(0, count - LOOK_BACK)
        return [since + k * step for k in range(first, count)], first
    kept: deque[datetime] = deque(maxlen=LOOK_BACK)
    walked, left_out = 0, 0
    ticks = _cron_ticks(spec, since - timedelta(microseconds=1))
    for tick in ticks:
        if tick > now:
            break
        kept.append(tick)
        walked += 1
        if walked == WALK_MAX:  # years behind on a dense expression: look at the last two days only
            left_out = walked
            kept.clear()
            ticks = _cron_ticks(spec, max(tick, now - timedelta(days=2)))
            for recent in ticks:
                if recent > now:
                    break
                kept.append(recent)
            break
    return list(kept), left_out + max(0, walked - left_out - LOOK_BACK)


def first_tick(spec: ScheduleSpec, now: datetime) -> datetime | None:
    """A new (or resumed) schedule's first tick: the first after `now`, unless it ends before."""
    tick = next(ticks_after(spec, now, anchor=now), None)
    return tick if tick is not None and (spec.ends_at is None or tick <= spec.ends_at) else None


def next_tick_after_change(before: Schedule, spec: ScheduleSpec, now: datetime) -> datetime | None:
    """The next tick of schedule `before` changed at `now` to `spec`. Re-timed (its cron, time zone or
    interval) or resumed: the first after `now` (the ticks it missed while paused are not caught up).
    Its end moved: its next tick stands if it still may fire, else the first after `now` (an ended
    schedule given a later end goes on). Otherwise (its task, its policies, a pause) it stays."""
    old = before.spec
    retimed = (spec.cron, spec.timezone, spec.every_seconds) != (old.cron, old.timezone, old.every_seconds)
    if retimed or (old.paused and not spec.paused):
        return first_tick(spec, now)
    kept = before.next_tick
    if spec.ends_at != old.ends_at and (kept is None or (spec.ends_at is not None and kept > spec.ends_at)):
        return first_tick(spec, now)
    return kept


def plan(schedule: Schedule, now: datetime, grace: float, previous_unfinished: bool) -> Firing:
    """What to do with `schedule` at `now`: the ticks from its next tick to `now` that are at most
    `grace` seconds old are on time and fire; older ones are missed, and its catch-up policy says
    which of them fire anyway (none, the last, or each up to CATCHUP_MAX). With overlap "skip", none
    fires while the previous run is unfinished, and at most the newest otherwise."""
    spec, since = schedule.spec, schedule.next_tick
    if since is None or since > now:
        return Firing((), since)
    due, left_out = _due(spec, since, now)
    if spec.ends_at is not None:
        due = [t for t in due if t <= spec.ends_at]
    on_time = [t for t in due if (now - t).total_seconds() <= grace]
    late = [t for t in due if (now - t).total_seconds() > grace]  # oldest first
    caught = {"none": 0, "last": 1, "all": CATCHUP_MAX}[spec.catchup]
    kept_late = late[max(0, len(late) - caught) :] if caught else []
    fire, missed = kept_late + on_time, left_out + len(late) - len(kept_late)
    skipped = 0
    if spec.overlap == "skip" and fire:
        kept = [] if previous_unfinished else fire[-1:]
        skipped, fire = len(fire) - len(kept), kept
    anchor = since if spec.every_seconds is not None else None
    upcoming = next(ticks_after(spec, now, anchor=anchor), None)
    if upcoming is not None and spec.ends_at is not None and upcoming > spec.ends_at:
        upcoming = None
    return Firing(tuple(sorted(fire)), upcoming, missed, skipped)
