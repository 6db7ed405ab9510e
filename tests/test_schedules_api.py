"""Schedules and absolute run times through the API (issue 22), against real server and worker
processes: the RPCs by client and CLI, every broken rule, the rights, run_at, and three servers and two
workers running one every-second schedule. The ticks under an injectable clock: tests/test_schedules.py."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

import taskservice
from agents import AgentProcess
from conftest import ServerProcess, eventually, subprocess_env
from taskservice.client.asynchronous import AsyncClient
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.plugins.declare import Every, TaskTypeSpec
from taskservice.store import Store
from taskservice.worker.scheduler import Scheduler
from test_cli import task_cli

TICKS = int(os.environ.get("SCHEDULE_TICKS", "10"))  # the every-second schedule's ticks to wait for

FAR = datetime(2099, 12, 24, 18, 0, 0, tzinfo=UTC)  # a time no test reaches
LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)
HOURLY = "1h"  # an interval that does not tick while a test runs
SLEEP = {"seconds": "0"}


def _within_a_second_of(value: datetime | None, expected: datetime) -> bool:
    """The API's times are to the second (the stored ones to the microsecond)."""
    return value is not None and abs(value - expected) <= timedelta(seconds=1)


# -- create, get, list, update, pause, resume, delete, trigger: the client ---------------------------


async def test_a_schedule_is_made_with_its_task_resolved_and_read_by_name_or_id(
    workerless_server: ServerProcess, settings: Settings
) -> None:
    async with AsyncClient(workerless_server.url) as client:
        nightly = await client.create_schedule(
            "nightly", type="sleep", parameters=SLEEP, cron="@daily", timezone="Asia/Kolkata",
            options=taskservice.TaskOptions(priority=7, queue="reports", description="the night's"),
            overlap="skip", catchup="last",
        )  # fmt: skip
        # Stored as five fields; the task with every option resolved (the server's defaults included).
        assert (nightly.name, nightly.cron, nightly.timezone, nightly.every_seconds) == (
            "nightly", "0 0 * * *", "Asia/Kolkata", None,
        )  # fmt: skip
        assert nightly.task == NewTask(
            "nightly", "sleep", SLEEP, "the night's", 7, settings.max_retries, settings.task_time_out,
            queue="reports",
        )  # fmt: skip
        assert (nightly.overlap, nightly.catchup, nightly.paused, nightly.ends_at, nightly.created_by) == (
            "skip", "last", False, None, "anonymous",
        )  # fmt: skip
        assert (nightly.missed, nightly.skipped, nightly.last_tick, nightly.last_task_id) == (
            0,
            0,
            None,
            None,
        )
        assert (nightly.declared_type, nightly.last_task_status) == (None, None)
        # Midnight in Kolkata (UTC+05:30, no daylight saving) is 18:30 UTC, within a day of now.
        assert nightly.next_tick is not None
        assert nightly.created_at is not None
        assert nightly.next_tick.timetz() == time(18, 30, tzinfo=UTC)
        assert nightly.created_at < nightly.next_tick <= nightly.created_at + timedelta(days=1)

        hourly = await client.create_schedule("hourly", type="sleep", every=HOURLY)
        assert (hourly.cron, hourly.every_seconds, hourly.task.name, hourly.task.parameters) == (
            None, 3600.0, "hourly", {},  # no parameters: none; the task's name is the schedule's
        )  # fmt: skip
        assert hourly.created_at is not None
        assert _within_a_second_of(hourly.next_tick, hourly.created_at + timedelta(hours=1))
        taken = "already_exists: a schedule named 'hourly' exists"
        with pytest.raises(taskservice.RequestError, match=taken):
            await client.create_schedule("hourly", type="sleep", every="5m")

        assert await client.list_schedules() == [hourly, nightly]  # by name
        assert await client.list_schedules(limit=1, offset=1) == [nightly]
        assert await client.get_schedule("nightly") == nightly
        assert await client.get_schedule(nightly.id) == nightly  # by id: a task's schedule_id
        with pytest.raises(taskservice.NotFound, match="no schedule 'weekly'"):
            await client.get_schedule("weekly")
        with pytest.raises(taskservice.NotFound, match="no schedule with id 999"):
            await client.get_schedule(999)


async def test_an_update_changes_what_it_is_given_and_a_new_timing_ticks_next_after_now(
    workerless_server: ServerProcess,
) -> None:
    async with AsyncClient(workerless_server.url) as client:
        nightly = await client.create_schedule(
            "nightly", type="sleep", parameters=SLEEP, cron="@daily", timezone="Asia/Kolkata", catchup="last"
        )
        # A policy or the task does not move the next tick; the task is replaced whole.
        changed = await client.update_schedule(
            "nightly", overlap="skip", type="sleep", parameters={"seconds": "1"}
        )
        assert (changed.overlap, changed.catchup, changed.cron, changed.timezone) == (
            "skip", "last", "0 0 * * *", "Asia/Kolkata",
        )  # fmt: skip
        assert (changed.task.parameters, changed.next_tick) == ({"seconds": "1"}, nightly.next_tick)
        # Re-timed: ticks next by the new expression; an interval replaces the cron expression.
        retimed = await client.update_schedule("nightly", cron="30 3 * * *", timezone="UTC")
        assert retimed.next_tick is not None
        assert retimed.next_tick.timetz() == time(3, 30, tzinfo=UTC)
        as_interval = await client.update_schedule("nightly", every="2h")
        assert (as_interval.cron, as_interval.every_seconds) == (None, 7200.0)
        assert as_interval.updated_at is not None
        assert _within_a_second_of(as_interval.next_tick, as_interval.updated_at + timedelta(hours=2))

        # An end in the past ends it; no end, and it ticks again.
        ended = await client.update_schedule("nightly", ends_at=LONG_AGO)
        assert (ended.ends_at, ended.next_tick) == (LONG_AGO, None)
        again = await client.update_schedule("nightly", ends_at="never")
        assert again.ends_at is None
        assert again.next_tick is not None

        # Paused: its next tick stays (the schedulers skip it); resumed: it ticks next after now.
        paused = await client.pause_schedule("nightly")
        assert (paused.paused, paused.next_tick) == (True, again.next_tick)
        resumed = await client.resume_schedule("nightly")
        assert resumed.paused is False
        assert resumed.updated_at is not None
        assert _within_a_second_of(resumed.next_tick, resumed.updated_at + timedelta(hours=2))


async def test_a_trigger_creates_a_task_without_a_tick_and_a_deleted_schedules_tasks_stay(
    workerless_server: ServerProcess, store: Store
) -> None:
    async with AsyncClient(workerless_server.url) as client:
        hourly = await client.create_schedule("hourly", type="sleep", parameters=SLEEP, every=HOURLY)
        task_id = await client.trigger_schedule("hourly")
        task = await client.get_task(task_id)
        assert (task.name, task.type, task.schedule_id, task.schedule_tick, task.status) == (
            "hourly", "sleep", hourly.id, None, taskservice.TaskStatus.QUEUED,
        )  # fmt: skip
        # The ticks go on as they were.
        after = await client.get_schedule("hourly")
        assert (after.last_task_id, after.last_task_status, after.last_tick, after.next_tick) == (
            task_id, taskservice.TaskStatus.QUEUED, None, hourly.next_tick,
        )  # fmt: skip
        await client.delete_schedule("hourly")
        for gone in (client.delete_schedule, client.trigger_schedule, client.pause_schedule):
            with pytest.raises(taskservice.NotFound, match="no schedule 'hourly'"):
                await gone("hourly")
        assert await client.list_schedules() == []
        assert (await store.get_task(task_id)).schedule_id == hourly.id


async def test_a_declared_schedule_is_its_codes_but_pausing_and_ending_it_are_an_operators(
    workerless_server: ServerProcess, store: Store
) -> None:
    declared = TaskTypeSpec(extra_parameters=True, schedules=(Every("1h", name="from-code"),))
    await store.register_task_types({"sleep": declared.to_json()})
    await Scheduler(store, 1, 10).run_once()  # (any scheduler makes it; this one at once)
    async with AsyncClient(workerless_server.url) as client:
        made = await client.get_schedule("from-code")
        assert (made.declared_type, made.every_seconds) == ("sleep", 3600.0)
        with pytest.raises(taskservice.FailedPrecondition, match="declared by task type 'sleep' in its code"):
            await client.update_schedule("from-code", every="2h")
        paused = await client.pause_schedule("from-code")
        assert paused.paused is True
        assert paused.undeclared_at is None
        # Its code drops it: reported (undeclared_at), not deleted.
        await store.register_task_types({"sleep": TaskTypeSpec(extra_parameters=True).to_json()})
        await Scheduler(store, 1, 10).run_once()
        dropped = await client.get_schedule("from-code")
        assert dropped.undeclared_at is not None
        assert dropped.declared_type == "sleep"


async def test_two_partial_updates_at_once_both_land(workerless_server: ServerProcess) -> None:
    """Each change reads the schedule under its lock: none undoes the other's field."""
    async with AsyncClient(workerless_server.url) as client:
        await client.create_schedule("s", type="sleep", every=HOURLY)
        for _ in range(5):
            await asyncio.gather(
                client.update_schedule("s", overlap="skip"),
                client.update_schedule("s", catchup="all"),
                client.update_schedule("s", type="sleep", parameters={"seconds": "2"}),
                client.update_schedule("s", timezone="Europe/Berlin"),
            )
            found = await client.get_schedule("s")
            assert (found.overlap, found.catchup, found.task.parameters, found.timezone) == (
                "skip", "all", {"seconds": "2"}, "Europe/Berlin",
            )  # fmt: skip
            await client.update_schedule(
                "s", overlap="allow", catchup="none", type="sleep", parameters={}, timezone="UTC"
            )


async def test_a_ticks_task_knows_its_schedule_and_tick(
    workerless_server: ServerProcess, store: Store
) -> None:
    async with AsyncClient(workerless_server.url) as client:
        made = await client.create_schedule("often", type="sleep", parameters=SLEEP, every="1s")

        async def ticked() -> int | None:
            return (await client.get_schedule("often")).last_task_id

        await eventually(ticked)
        found = await client.pause_schedule("often")  # no tick more: its last tick is its last task's
        assert found.last_task_id is not None
        task = await client.get_task(found.last_task_id)
        assert (task.schedule_id, task.schedule_tick) == (made.id, found.last_tick)
        stored = await store.get_task(found.last_task_id)
        assert stored.schedule_tick is not None
        assert task.schedule_tick == stored.schedule_tick.replace(microsecond=0)  # the API's: to the second
        assert made.created_at is not None
        assert stored.schedule_tick > made.created_at


# -- the CLI ------------------------------------------------------------------------------------------


def _lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def _cli(server: ServerProcess, settings: Settings) -> Callable[..., str]:
    """task-cli against `server`: its output, when it succeeds."""

    def cli(*args: str) -> str:
        done = task_cli(settings, "--address", server.url, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return cli


def test_the_cli_makes_lists_and_shows_schedules(
    workerless_server: ServerProcess, settings: Settings
) -> None:
    cli = _cli(workerless_server, settings)
    made = cli("schedule", "create", "nightly", "--cron", "0 2 * * *", "--timezone", "Asia/Kolkata",
               "--type", "sleep", "-p", "seconds=0", "--priority", "5", "--queue", "reports",
               "--max-retries", "1", "--timeout", "9", "--overlap", "skip", "--catchup", "all")  # fmt: skip
    assert made.startswith("Schedule nightly created (0 2 * * * Asia/Kolkata); next tick ")
    assert made.endswith("T20:30:00Z.\n")  # 02:00 in Kolkata
    assert cli("schedule", "create", "poll", "--every", "90", "-t", "sleep", "--paused") == (
        "Schedule poll created, paused (every 90s).\n"
    )
    assert cli(
        "schedule", "create", "once", "--every", "1d", "-t", "sleep", "--ends-at", "2001-01-01T00:00:00Z"
    ) == ("Schedule once created (every 1d); it ends before its first tick.\n")
    rows = _lines(cli("schedule", "list"))
    assert rows[0] == ["NAME", "WHEN", "NEXT", "LAST", "LAST", "RUN", "STATE", "MISSED", "SKIPPED"]
    assert rows[2][:3] == ["nightly", "0", "2"]
    assert rows[2][-3:] == ["active", "0", "0"]
    assert rows[3] == ["once", "every", "1d", "ended", "0", "0"]
    assert rows[4] == ["poll", "every", "90s", "paused", "0", "0"]
    listed = json.loads(cli("schedule", "list", "-o", "json"))["schedules"]
    assert [(s["name"], s["everySeconds"], s["paused"]) for s in listed] == [
        ("nightly", 0.0, False), ("once", 86400.0, False), ("poll", 90.0, True),
    ]  # fmt: skip
    assert listed[0]["task"]["maxRetries"] == 1
    assert listed[0]["task"]["timeoutSeconds"] == 9.0

    shown = _lines(cli("schedule", "get", "nightly"))
    for row in (["When", "0", "2", "*", "*", "*", "Asia/Kolkata"], ["State", "active"], ["Overlap", "skip"],
                ["Catch-up", "all"], ["Task", "nightly", "(sleep)"], ["Parameters", "seconds=0"],
                ["Queue", "reports"], ["Priority", "5"], ["Max", "retries", "1"], ["Timeout", "9s"],
                ["Ends", "never"]):  # fmt: skip
        assert row in shown, (row, shown)
    assert json.loads(cli("schedule", "get", "poll", "-o", "json"))["everySeconds"] == 90.0


async def test_the_cli_pauses_resumes_triggers_and_deletes_and_task_get_names_the_schedule(
    workerless_server: ServerProcess, settings: Settings, store: Store
) -> None:
    cli = _cli(workerless_server, settings)
    cli("schedule", "create", "nightly", "--cron", "0 2 * * *", "-t", "sleep", "-p", "seconds=0")
    assert cli("schedule", "pause", "nightly") == "Schedule nightly paused.\n"
    assert ["State", "paused"] in _lines(cli("schedule", "get", "nightly"))
    assert cli("schedule", "resume", "nightly").startswith("Schedule nightly resumed; next tick ")
    triggered = cli("schedule", "trigger", "nightly")
    assert triggered.startswith("Task created with ID: ")
    assert triggered.endswith(" (schedule nightly, by hand)\n")
    task_id = triggered.split()[4]
    assert ["Schedule", "nightly", "(triggered", "by", "hand)"] in _lines(cli("task", "get", "-i", task_id))
    listed_now = _lines(cli("schedule", "list"))
    assert listed_now[2][:3] == ["nightly", "0", "2"]
    assert "QUEUED" in listed_now[2]  # its last run
    shown = _lines(cli("schedule", "get", "nightly"))
    assert ["Last", "task", task_id, "(QUEUED)"] in shown

    # A tick's task: the schedule's name and the tick; once the schedule is gone, its id.
    cli("schedule", "create", "often", "--every", "1s", "-t", "sleep")
    often = await store.get_schedule("often")
    assert often is not None

    async def ticked() -> int | None:
        found = await store.get_schedule("often")
        return found.last_task_id if found is not None else None

    tick_task = await store.get_task(await eventually(ticked))
    assert tick_task.schedule_tick is not None
    tick = tick_task.schedule_tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ["Schedule", "often,", "tick", tick] in _lines(cli("task", "get", "-i", str(tick_task.id)))
    assert cli("schedule", "delete", "often") == "Schedule often deleted.\n"
    shown = _lines(cli("task", "get", "-i", str(tick_task.id)))
    assert ["Schedule", "schedule", str(often.id), "(deleted),", "tick", tick] in shown

    assert [s.spec.name for s in await store.list_schedules()] == ["nightly"]


async def test_the_cli_says_which_rule_a_schedule_breaks(
    workerless_server: ServerProcess, settings: Settings, store: Store
) -> None:
    """A broken rule names the field (invalid_argument: exit 1); a usage error exits 2."""
    for wrong, said in [
        (("--cron", "61 * * * *", "-t", "sleep"), "invalid_argument: cron: is not a valid cron expression"),
        (("--cron", "@often", "-t", "sleep"), "invalid_argument: cron: must have five fields"),
        (("--cron", "* * * * *", "-z", "Mars/Olympus", "-t", "sleep"), "invalid_argument: timezone: "),
        (("--every", "0.5s", "-t", "sleep"), "invalid_argument: every: must be a duration"),
        (("--every", "1m", "-t", "nope"), "invalid_argument: task.type: unknown task type 'nope'"),
        (("--every", "1m", "-t", "sleep", "-p", "seconds=-1"),
         "invalid_argument: task.payload.parameters['seconds']: "),
        (("--every", "1m", "-t", "sleep", "--priority", "5000"), "invalid_argument: task.priority: "),
        (("--every", "1m", "-t", "sleep", "--ends-at", "soon"), "invalid_argument: ends_at: must be a time"),
    ]:  # fmt: skip
        refused = task_cli(settings, "--address", workerless_server.url, "schedule", "create", "bad", *wrong)
        assert (refused.returncode, said in refused.stderr) == (1, True), (wrong, refused.stderr)
    for wrong, said in [
        (("--cron", "* * * * *", "--every", "1m", "-t", "sleep"), "give --cron EXPR or --every DURATION"),
        (("-t", "sleep"), "give --cron EXPR or --every DURATION"),
        (("--every", "1m", "-t", "sleep", "--overlap", "never"), "Invalid value for '--overlap'"),
        (("--every", "1m", "-t", "sleep", "--catchup", "some"), "Invalid value for '--catchup'"),
    ]:
        refused = task_cli(settings, "--address", workerless_server.url, "schedule", "create", "bad", *wrong)
        assert (refused.returncode, said in refused.stderr) == (2, True), (wrong, refused.stderr)
    missing = task_cli(settings, "--address", workerless_server.url, "schedule", "pause", "nope")
    assert (missing.returncode, missing.stderr) == (1, "Error: not_found: no schedule 'nope'\n")
    assert await store.list_schedules() == []


# -- every broken rule: invalid_argument naming the field ---------------------------------------------


async def test_every_broken_rule_is_invalid_argument_naming_the_field(
    workerless_server: ServerProcess,
) -> None:
    options = taskservice.TaskOptions
    async with AsyncClient(workerless_server.url) as client:

        def create(**fields: Any) -> Any:
            return client.create_schedule(**{"name": "s", "type": "sleep", "every": HOURLY, **fields})

        await client.create_schedule("kept", type="sleep", every=HOURLY)
        refusals: list[tuple[Any, str]] = [
            (create(name=""), "name: is required"),
            (create(name="a\nb"), "name: must not contain control characters"),
            (create(name="n" * 201), "name: must be at most 200 characters"),
            (create(cron="61 * * * *", every=None), "cron: is not a valid cron expression"),
            (create(cron="* * *", every=None), "cron: must have five fields"),
            (create(cron="* " * 150, every=None), "cron: must be at most 200 characters"),
            (create(cron="* * * * *"), "cron: give a cron expression or an interval (every), one of them"),
            (create(every=None), "cron: give a cron expression or an interval (every), one of them"),
            (create(timezone="Mars/Olympus"), "timezone: must be an IANA time zone"),
            (create(every="0.5s"), "every: must be a duration"),
            (create(every=0.5), "every: must be a duration"),
            (create(every="367d"), "every: must be a duration"),
            (create(every="soon"), "every: must be a duration"),
            (create(overlap="never"), "overlap: must be one of allow, skip (got 'never')"),
            (create(catchup="some"), "catchup: must be one of none, last, all (got 'some')"),
            (create(type="nope"), "task.type: unknown task type 'nope'"),
            (create(type=""), "task.type: is required"),
            (create(parameters={"seconds": "-1"}), "task.payload.parameters['seconds']: must be >= 0"),
            (create(parameters={"bad key": "1"}), "task.payload.parameters['bad key']: key must match"),
            (create(options=options(priority=5000)), "task.priority: must be >= 0 and <= 1000"),
            (create(options=options(max_retries=99)), "task.max_retries: must be >= 0 and <= 10"),
            (create(options=options(timeout_seconds=0)), "task.timeout_seconds: must be > 0"),
            (create(options=options(queue="two words")), "task.queue: must be 1 to 100 characters"),
            (create(options=options(name="a\nb")), "task.name: must not contain control characters"),
            (
                create(options=options(delay_seconds=5)),
                "task: a scheduled task has no idempotency key, delay",
            ),
            (create(options=options(run_at=FAR)), "task: a scheduled task has no idempotency key, delay"),
            (create(options=options(idempotency_key="k")), "task: a scheduled task has no idempotency key"),
            (client.update_schedule("kept"), "cron: give cron, every, timezone, task, overlap, catchup"),
            (client.update_schedule("kept", cron="* * * * *", every="1m"), "cron: give a cron expression or"),
            (client.update_schedule("kept", cron="61 * * * *"), "cron: is not a valid cron expression"),
            (client.update_schedule("kept", every="0s"), "every: must be a duration"),
            (client.update_schedule("kept", timezone="Nowhere"), "timezone: must be an IANA time zone"),
            (client.update_schedule("kept", overlap="x"), "overlap: must be one of allow, skip"),
            (client.update_schedule("kept", catchup="x"), "catchup: must be one of none, last, all"),
            (client.update_schedule("kept", type="nope"), "task.type: unknown task type 'nope'"),
            (client.update_schedule("", paused=True), "name: is required"),
            (client.get_schedule(""), "name: name a schedule by its name or its id (id64), exactly one"),
            (client.get_schedule(-1), "id64: must be >= 1"),
            (client.list_schedules(limit=1001), "limit: must be >= 0 and <= 1000"),
            (client.list_schedules(offset=-1), "offset: must be >= 0"),
            (client.delete_schedule("a\nb"), "name: must not contain control characters"),
            (client.trigger_schedule(""), "name: is required"),
        ]
        for attempt, said in refusals:
            with pytest.raises(taskservice.InvalidArgument) as refused:
                await attempt
            assert str(refused.value).startswith(f"invalid_argument: {said}"), (said, str(refused.value))
        kept = await client.get_schedule("kept")
        assert [s.name for s in await client.list_schedules()] == ["kept"]  # nothing else was made
        assert (kept.cron, kept.every_seconds, kept.overlap, kept.catchup, kept.timezone) == (
            None, 3600.0, "allow", "none", "UTC",
        )  # fmt: skip

    # The JSON a browser or curl sends: an end without an offset is refused; a schedule's task may leave
    # its payload out (no parameters).
    async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:
        service = "/cloud.v1.TaskManagementService"
        body: dict[str, Any] = {"name": "j", "every": "30s", "task": {"type": "sleep"}}
        answer = await http.post(f"{service}/CreateSchedule", json={**body, "endsAt": "2027-01-01T00:00:00"})
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_argument")
        assert answer.json()["message"].startswith("ends_at: must be a time with its offset, RFC 3339")
        made = await http.post(f"{service}/CreateSchedule", json=body)
        assert made.status_code == 200, made.text
        assert made.json()["schedule"]["everySeconds"] == 30
        assert made.json()["schedule"]["task"]["name"] == "j"


# -- rights ---------------------------------------------------------------------------------------------


async def test_changing_a_schedule_is_an_operators_and_reading_one_a_viewers(
    token_server: tuple[ServerProcess, dict[str, str]],
) -> None:
    server, tokens = token_server
    async with (
        AsyncClient(server.url, token=tokens["viewer"]) as reader,
        AsyncClient(server.url, token=tokens["operator"]) as op,
    ):
        for call, rpc in [
            (reader.create_schedule("s", type="sleep", every=HOURLY), "CreateSchedule"),
            (reader.update_schedule("s", paused=True), "UpdateSchedule"),
            (reader.trigger_schedule("s"), "TriggerSchedule"),
            (reader.delete_schedule("s"), "DeleteSchedule"),
        ]:
            with pytest.raises(taskservice.PermissionDenied, match=f"{rpc} needs the right 'write'"):
                await call
        assert await reader.list_schedules() == []
        made = await op.create_schedule("s", type="sleep", every=HOURLY)
        assert made.created_by == "token:t-operator"
        assert await reader.get_schedule("s") == made
        assert await reader.list_schedules() == [made]
        assert (await op.pause_schedule("s")).paused
        task_id = await op.trigger_schedule("s")
        assert (await reader.get_task(task_id)).schedule_id == made.id
        await op.delete_schedule("s")
        assert await reader.list_schedules() == []


# -- absolute run times -------------------------------------------------------------------------------


async def test_run_at_by_the_api_the_cli_and_the_typed_options(
    workerless_server: ServerProcess, store: Store, settings: Settings
) -> None:
    """A task with a run_at ahead is due then, by the database's clock; one past is due at once. Read
    from its run_at and from what a claim takes, not by waiting."""
    async with AsyncClient(workerless_server.url) as client:
        later = await client.create_task(type="sleep", parameters=SLEEP, run_at=FAR)
        past = await client.create_task(type="sleep", parameters=SLEEP, run_at=LONG_AGO)
        by_options = await client.create_task(
            type="sleep", options=taskservice.TaskOptions(run_at=FAR + timedelta(microseconds=250_000))
        )
        assert (await client.get_task(later.id)).run_at == FAR
        stored = await store.get_task(by_options.id)
        assert stored.run_at == FAR + timedelta(
            microseconds=250_000
        )  # to the microsecond: a time, not a delay
        stored = await store.get_task(past.id)
        assert stored.run_at == stored.created_at  # a time past: now, when it was created

        made = task_cli(settings, "--address", workerless_server.url, "task", "create", "eve", "-t", "sleep",
                        "--at", "2099-12-24T19:00:00+01:00", "-o", "json")  # fmt: skip
        assert made.returncode == 0, made.stderr
        from_cli = int(json.loads(made.stdout)["id64"])
        assert (await store.get_task(from_cli)).run_at == FAR
        shown = task_cli(settings, "--address", workerless_server.url, "task", "get", "-i", str(from_cli))
        assert ["Next", "run", "2099-12-24T18:00:00Z"] in [
            line.split()[:3] for line in shown.stdout.splitlines()
        ]

        # Only the task due now is claimed: those ahead wait for their time.
        claimed = await store.claim("w", 10)
        assert [c.task.id for c in claimed] == [past.id]

        refused = task_cli(settings, "--address", workerless_server.url, "task", "create", "x", "-t", "sleep",
                           "--at", "tomorrow")  # fmt: skip
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: invalid_argument: run_at: must be a time with its offset")

    async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:
        service = "/cloud.v1.TaskManagementService"
        task = {"name": "n", "type": "sleep", "payload": {"parameters": {}}}
        for body, said in [
            ({**task, "runAt": "2099-12-24T18:00:00"}, "run_at: must be a time with its offset"),
            ({**task, "runAt": "2099-13-24T18:00:00Z"}, "run_at: must be a time with its offset"),
            (
                {**task, "runAt": "2099-12-24T18:00:00Z", "delaySeconds": 5},
                "run_at: give run_at or delay_seconds",
            ),
        ]:
            answer = await http.post(f"{service}/CreateTask", json=body)
            assert (answer.status_code, answer.json()["code"]) == (400, "invalid_argument"), answer.text
            assert answer.json()["message"].startswith(said)
        answer = await http.post(f"{service}/CreateTasks", json={"tasks": [task, {**task, "runAt": "soon"}]})
        assert answer.json()["message"].startswith("tasks[1].run_at: must be a time with its offset")
    assert await store.count_tasks() == 4  # the refused created nothing


# -- the whole: three servers and two workers, one every-second schedule ---------------------------------


def _worker(settings: Settings, log: Path, **env: str) -> AgentProcess:
    args = [sys.executable, "-m", "taskservice.cli", "--log-level", "info", "serve", "-c", "4"]
    return AgentProcess(args, subprocess_env(settings, **env), log)


@pytest.mark.e2e
async def test_three_servers_and_two_workers_create_each_tick_of_a_schedule_once(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    """Five schedulers (every server and worker runs one), looking often so that they race on each
    tick, on one database: the ticks' tasks are consecutive seconds, each once, and they run. TICKS of
    them (10 in CI; `make soak-schedules` runs a minute's)."""
    often: dict[str, Any] = {"SCHEDULER_INTERVAL": "0.1"}
    servers = [
        ServerProcess(settings, tmp_path / f"server{i}.log", WORKER_COUNT="0", **often) for i in range(3)
    ]
    workers = [_worker(settings, tmp_path / f"worker{i}.log", **often) for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        async with AsyncClient(servers[0].url) as client:

            async def live_workers() -> bool:
                return sum(w.alive for w in await client.list_workers()) == 2

            await eventually(live_workers, timeout=60)
            made = await client.create_schedule("every-second", type="sleep", parameters=SLEEP, every="1s")

            async def ticks() -> list[datetime]:
                query = "SELECT schedule_tick FROM tasks WHERE schedule_id = $1 ORDER BY schedule_tick"
                return [row["schedule_tick"] for row in await store.pool.fetch(query, made.id)]

            async def enough_ticks() -> bool:
                return len(await ticks()) >= TICKS

            await eventually(enough_ticks, timeout=TICKS + 30)
            # Paused under the schedule's lock: once that returns, no scheduler creates another tick.
            await client.pause_schedule("every-second")
            created = await ticks()
            assert len(created) == len(set(created)) >= TICKS
            assert all(later - earlier == timedelta(seconds=1) for earlier, later in pairwise(created)), (
                created
            )
            assert made.created_at is not None
            assert created[0] >= made.created_at
            stopped = await client.get_schedule("every-second")
            assert (stopped.last_tick, stopped.missed, stopped.skipped) == (
                created[-1].replace(microsecond=0), 0, 0,
            )  # fmt: skip

            async def all_ran() -> bool:
                query = "SELECT status FROM tasks WHERE schedule_id = $1"
                statuses = [row["status"] for row in await store.pool.fetch(query, made.id)]
                return len(statuses) == len(created) and set(statuses) == {Status.SUCCEEDED}

            await eventually(all_ran, timeout=30)
    finally:
        for worker in workers:
            worker.stop()
        for server in servers:
            server.stop()
    for log in [*(s.log() for s in servers), *(w.log() for w in workers)]:
        assert "Traceback" not in log, log[-5000:]
