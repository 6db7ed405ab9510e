"""Schedules (issue 22): cron in a time zone or an interval, each tick's task created exactly once by
whichever scheduler gets there first, catch-up and overlap policies; all under an injectable clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

import taskservice
from taskservice import Cron, Every
from taskservice.model import NewTask, Schedule, ScheduleSpec, Status
from taskservice.plugins.declare import ParameterSpec, TaskTypeSpec
from taskservice.rules import schedules as rules
from taskservice.rules.tasks import BrokenRule
from taskservice.store import Store
from taskservice.worker.scheduler import Scheduler

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
TYPES = {"sleep": None}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def spec(name: str = "s", **fields: object) -> ScheduleSpec:
    base: dict[str, object] = {"name": name, "task": NewTask("", "sleep", {"seconds": "0"})}
    return rules.checked(ScheduleSpec(**{**base, **fields}), TYPES)  # type: ignore[arg-type]


async def made(store: Store, schedule: ScheduleSpec, now: datetime) -> Schedule:
    created = await store.create_schedule(schedule, rules.first_tick(schedule, now))
    assert created is not None
    return created


async def ticks_of(store: Store, schedule_id: int) -> list[datetime]:
    rows = await store.pool.fetch(
        "SELECT schedule_tick FROM tasks WHERE schedule_id = $1 ORDER BY schedule_tick", schedule_id
    )
    return [row["schedule_tick"] for row in rows]


# -- the rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86_400), ("90", 90), ("1.5 min", 90)]
)
def test_an_interval_is_a_duration(text: str, seconds: float) -> None:
    assert rules.every(text) == seconds


@pytest.mark.parametrize("text", ["0.5s", "0s", "soon", "400d", "-5s", ""])
def test_an_interval_breaking_the_rule_is_refused(text: str) -> None:
    with pytest.raises(BrokenRule) as refused:
        rules.every(text)
    assert refused.value.field == "every"
    assert "at least 1 second" in refused.value.rule


def test_cron_nicknames_and_refusals_name_the_field() -> None:
    assert rules.cron("@hourly") == "0 * * * *"
    assert rules.cron(" @Daily ") == "0 0 * * *"
    for bad, says in [
        ("* * *", "five fields"),
        ("61 * * * *", "not a valid cron"),
        ("@often", "five fields"),
    ]:
        with pytest.raises(BrokenRule) as refused:
            spec(cron=bad)
        assert (refused.value.field, says in refused.value.rule) == ("cron", True), refused.value
    with pytest.raises(BrokenRule) as refused:
        spec(cron="* * * * *", timezone="Mars/Olympus")
    assert refused.value.field == "timezone"
    with pytest.raises(BrokenRule) as refused:
        spec()
    assert "one of them" in refused.value.rule
    with pytest.raises(BrokenRule) as refused:
        spec(every_seconds=60.0, overlap="sometimes")
    assert refused.value.field == "overlap"
    with pytest.raises(BrokenRule) as refused:
        spec(every_seconds=60.0, task=NewTask("", "nope"))
    assert refused.value.field == "task.type"


# -- ticks under the injectable clock -------------------------------------------------------------------


async def test_every_second_each_tick_once_and_the_next_one_after_it(store: Store) -> None:
    schedule = await made(store, spec(every_seconds=1.0), T0)
    clock = Clock(T0)
    scheduler = Scheduler(store, interval=1, grace=10, clock=clock)
    for step in range(1, 11):
        clock.now = T0 + timedelta(seconds=step, milliseconds=300)
        assert len(await scheduler.run_once()) == 1
        assert await scheduler.run_once() == []  # the same tick again: nothing
    assert await ticks_of(store, schedule.id) == [T0 + timedelta(seconds=s) for s in range(1, 11)]
    found = await store.get_schedule("s")
    assert found is not None
    assert (found.next_tick, found.last_tick) == (T0 + timedelta(seconds=11), T0 + timedelta(seconds=10))
    task = await store.get_task(found.last_task_id or 0)
    assert (task.schedule_id, task.schedule_tick, task.name, task.status) == (
        schedule.id, T0 + timedelta(seconds=10), "s", Status.QUEUED,
    )  # fmt: skip


async def test_many_schedulers_racing_on_one_tick_create_it_once(store: Store) -> None:
    """Ten schedulers, some with clocks a little ahead or behind, all at once, many times."""
    schedule = await made(store, spec(every_seconds=1.0), T0)
    for step in range(1, 21):
        now = T0 + timedelta(seconds=step)
        offsets = [-0.4, 0, 0.1, 0.2, 0.3, 0, 0.5, 0.05, 0, 0.9]
        racers = [Scheduler(store, 1, 10, Clock(now + timedelta(seconds=o))) for o in offsets]
        created = await asyncio.gather(*(r.run_once() for r in racers))
        assert sum(len(c) for c in created) == 1, created
    ticks = await ticks_of(store, schedule.id)
    assert ticks == sorted(set(ticks))
    assert ticks == [T0 + timedelta(seconds=s) for s in range(1, 21)]


async def test_a_tick_a_jump_forward_skips_fires_once_right_after_it(store: Store) -> None:
    """Europe/Berlin, 2026-03-29: 02:00 becomes 03:00, so 02:30 does not exist that night."""
    start = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    schedule = await made(store, spec(cron="30 2 * * *", timezone="Europe/Berlin"), start)
    clock = Clock(start)
    scheduler = Scheduler(store, 1, 3600, clock)  # looked at hourly: an hour's grace, nothing missed
    for hours in range(0, 72):  # three days, hour by hour
        clock.now = start.astimezone(UTC) + timedelta(hours=hours, minutes=31)  # real time, not wall time
        await scheduler.run_once()
    local = [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in await ticks_of(store, schedule.id)]
    assert local == ["03-29 03:00 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]


async def test_a_tick_a_jump_back_repeats_fires_once(store: Store) -> None:
    """Europe/Berlin, 2026-10-25: 03:00 becomes 02:00 again, so 02:30 happens twice that night."""
    start = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    daily = await made(store, spec("daily", cron="30 2 * * *", timezone="Europe/Berlin"), start)
    halves = await made(store, spec("halves", cron="*/30 * * * *", timezone="Europe/Berlin"), start)
    clock = Clock(start)
    scheduler = Scheduler(store, 1, 600, clock)  # looked at every ten minutes: as much grace
    for minutes in range(0, 36 * 60, 10):
        clock.now = start.astimezone(UTC) + timedelta(minutes=minutes, seconds=1)  # real time
        await scheduler.run_once()
    assert [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in await ticks_of(store, daily.id)] == [
        "10-25 02:30 CEST"
    ]
    # Every 30 minutes of real time goes on through the repeated hour: 02:00 and 02:30 twice each.
    night = [
        t.astimezone(BERLIN).strftime("%H:%M %Z")
        for t in await ticks_of(store, halves.id)
        if t.astimezone(BERLIN).date().isoformat() == "2026-10-25" and t.astimezone(BERLIN).hour in (1, 2, 3)
    ]
    assert night == [
        "01:00 CEST",
        "01:30 CEST",
        "02:00 CEST",
        "02:30 CEST",
        "02:00 CET",
        "02:30 CET",
        "03:00 CET",
        "03:30 CET",
    ]
    gaps = {b - a for a, b in pairwise(await ticks_of(store, halves.id))}
    assert gaps == {timedelta(minutes=30)}


@pytest.mark.parametrize(("catchup", "created", "missed"), [("none", 0, 60), ("last", 1, 59), ("all", 60, 0)])
async def test_catch_up_after_downtime(store: Store, catchup: str, created: int, missed: int) -> None:
    """Every minute; the schedulers are down for an hour; the first one back decides by the policy."""
    schedule = await made(store, spec(every_seconds=60.0, catchup=catchup), T0)
    back = T0 + timedelta(hours=1, seconds=30)
    fired = await Scheduler(store, 1, 10, Clock(back)).run_once()
    assert len(fired) == created
    after = await store.get_schedule("s")
    assert after is not None
    assert (after.missed, after.next_tick) == (missed, T0 + timedelta(minutes=61))
    ticks = await ticks_of(store, schedule.id)
    if catchup == "last":
        assert ticks == [T0 + timedelta(minutes=60)]
    # Back to the beat: the next tick is on time.
    assert len(await Scheduler(store, 1, 10, Clock(T0 + timedelta(minutes=61, seconds=1))).run_once()) == 1


async def test_all_catches_up_at_most_a_bounded_number(store: Store) -> None:
    await made(store, spec(every_seconds=1.0, catchup="all"), T0)
    fired = await Scheduler(store, 1, 10, Clock(T0 + timedelta(hours=1))).run_once()
    after = await store.get_schedule("s")
    assert after is not None
    # The on-time ones (within the grace of ten seconds) and a hundred missed ones.
    assert len(fired) == 11 + 100
    assert after.missed == 3600 - 111


async def test_overlap_skip_waits_for_the_previous_run(store: Store) -> None:
    schedule = await made(store, spec(every_seconds=60.0, overlap="skip"), T0)
    clock = Clock(T0 + timedelta(minutes=1, seconds=1))
    scheduler = Scheduler(store, 1, 10, clock)
    [first] = await scheduler.run_once()
    clock.now = T0 + timedelta(minutes=2, seconds=1)
    assert await scheduler.run_once() == []  # the first still waits
    clock.now = T0 + timedelta(minutes=3, seconds=1)
    assert await scheduler.run_once() == []
    await store.pool.execute("UPDATE tasks SET status = 3 WHERE id = $1", first)  # it finished
    clock.now = T0 + timedelta(minutes=4, seconds=1)
    assert len(await scheduler.run_once()) == 1
    after = await store.get_schedule("s")
    assert after is not None
    assert after.skipped == 2
    assert len(await ticks_of(store, schedule.id)) == 2


async def test_no_tick_after_the_end_and_none_while_paused(store: Store) -> None:
    ending = spec(every_seconds=60.0, ends_at=T0 + timedelta(minutes=2, seconds=30))
    schedule = await made(store, ending, T0)
    clock = Clock(T0)
    scheduler = Scheduler(store, 1, 10, clock)
    for minute in range(1, 6):
        clock.now = T0 + timedelta(minutes=minute, seconds=1)
        await scheduler.run_once()
    assert len(await ticks_of(store, schedule.id)) == 2
    ended = await store.get_schedule("s")
    assert ended is not None
    assert ended.next_tick is None

    paused = await made(store, spec("p", every_seconds=60.0, paused=True), T0)
    clock.now = T0 + timedelta(minutes=30)
    await scheduler.run_once()
    assert await ticks_of(store, paused.id) == []


async def test_a_trigger_by_hand_makes_a_task_of_the_schedule_without_a_tick(store: Store) -> None:
    schedule = await made(store, spec(every_seconds=3600.0), T0)
    task_id = await store.trigger_schedule("s")
    assert task_id is not None
    task = await store.get_task(task_id)
    assert (task.schedule_id, task.schedule_tick, task.type) == (schedule.id, None, "sleep")
    assert await store.trigger_schedule("nope") is None
    again = await store.get_schedule("s")
    assert again is not None
    assert again.next_tick == schedule.next_tick  # its ticks go on as they were


async def test_a_name_is_taken_once(store: Store) -> None:
    await made(store, spec(every_seconds=60.0), T0)
    assert await store.create_schedule(spec(every_seconds=30.0), T0) is None


# -- schedules declared with a task type ----------------------------------------------------------------


def test_a_task_type_declares_its_schedules() -> None:
    @taskservice.task(
        "digest_demo", cron="@daily", schedules=[Every("30m", name="often", parameters={"n": "1"})]
    )
    def digest(n: str = "0") -> None: ...

    assert [(s.name, s.cron, s.every, s.parameters) for s in digest.spec.schedules] == [
        ("", "0 0 * * *", None, {}),
        ("often", None, "30m", {"n": "1"}),
    ]
    published = TaskTypeSpec.from_json(digest.spec.to_json())
    assert published is not None
    assert published.to_json() == digest.spec.to_json()
    with pytest.raises(ValueError, match="five fields"):
        Cron("every day")
    with pytest.raises(ValueError, match="at least 1 second"):
        Every("0s")
    with pytest.raises(ValueError, match="its own name"):
        TaskTypeSpec(schedules=(Cron("@hourly"), Every("1h")))


async def test_declared_schedules_are_created_updated_and_reported_when_gone(store: Store) -> None:
    parameters = (ParameterSpec(name="n"),)
    first = TaskTypeSpec(parameters=parameters, schedules=(Cron("0 * * * *"), Every("1m", name="fast")))
    await store.register_task_types({"report": first.to_json()})
    clock = Clock(T0)
    scheduler = Scheduler(store, 1, 10, clock)
    await scheduler.run_once()
    hourly, fast = await store.get_schedule("report"), await store.get_schedule("fast")
    assert hourly is not None
    assert fast is not None
    assert (hourly.declared_type, hourly.spec.cron, hourly.next_tick) == (
        "report",
        "0 * * * *",
        T0 + timedelta(hours=1),
    )
    assert (fast.spec.every_seconds, fast.next_tick, fast.created_by) == (
        60.0,
        T0 + timedelta(minutes=1),
        "type report",
    )

    # An operator pauses the hourly one; the code moves it to the half hour and drops "fast".
    paused = replace(hourly.spec, paused=True)
    assert await store.update_schedule(hourly.id, paused, hourly.next_tick, declared_type="report")
    second = TaskTypeSpec(parameters=parameters, schedules=(Cron("30 * * * *"),))
    await store.register_task_types({"report": second.to_json()})
    clock.now = T0 + timedelta(minutes=5)
    await scheduler.run_once()
    moved, gone = await store.get_schedule("report"), await store.get_schedule("fast")
    assert moved is not None
    assert gone is not None
    assert (moved.spec.cron, moved.spec.paused, moved.next_tick) == (
        "30 * * * *",
        True,
        T0 + timedelta(minutes=30),
    )
    assert gone.undeclared_at is not None  # reported, not deleted: it keeps ticking
    assert gone.next_tick is not None

    # A name already taken by a schedule made through the API is left alone.
    await made(store, spec("mine", every_seconds=3600.0), T0)
    third = TaskTypeSpec(parameters=parameters, schedules=(Cron("30 * * * *"), Every("1m", name="mine")))
    await store.register_task_types({"report": third.to_json()})
    await scheduler.run_once()
    mine = await store.get_schedule("mine")
    assert mine is not None
    assert (mine.declared_type, mine.spec.every_seconds) == (None, 3600.0)


async def test_a_schedule_that_cannot_fire_leaves_the_others_firing(store: Store) -> None:
    """One schedule's time zone unknown to this machine, another's task refused by the database."""
    broken_zone = await made(store, spec("zone", cron="* * * * *"), T0)
    broken_task = await made(store, spec("task", every_seconds=60.0), T0)
    fine = await made(store, spec("fine", every_seconds=60.0), T0)
    await store.pool.execute("UPDATE schedules SET timezone = 'Nowhere/Gone' WHERE id = $1", broken_zone.id)
    await store.pool.execute(
        "UPDATE schedules SET task = task - 'type' WHERE id = $1", broken_task.id
    )  # NOT NULL
    assert len(await Scheduler(store, 1, 10, Clock(T0 + timedelta(minutes=1, seconds=1))).run_once()) == 1
    assert len(await ticks_of(store, fine.id)) == 1
    for name in ("zone", "task"):
        left = await store.get_schedule(name)
        assert left is not None
        assert left.last_tick is None  # still due: tried again next pass
