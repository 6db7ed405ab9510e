"""`task-cli schedule`: tasks created at each tick of a cron expression or an interval."""

from __future__ import annotations

from typing import Any

import click

from taskservice.cli.client import call
from taskservice.cli.group import Command, Group
from taskservice.cli.output import as_data, emit_data, is_machine, key_values, output_option, table, when
from taskservice.cli.tasks import parse_parameter, status_name
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import CATCHUP_POLICIES, OVERLAP_POLICIES

EXAMPLE = (
    "task-cli schedule create nightly-report --cron '0 2 * * *' --timezone Europe/Berlin "
    "--type run_query -p query='SELECT 1'"
)
_UNITS = (("d", 86_400), ("h", 3600), ("m", 60))


def every_text(seconds: float) -> str:
    """An interval as it would be typed: "30s", "5m", "2h", "1d", "90s"."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def when_text(s: pb.Schedule) -> str:
    """When a schedule ticks: "0 2 * * * Europe/Berlin", "*/5 * * * * UTC", "every 30s"."""
    return f"{s.cron} {s.timezone}" if s.cron else f"every {every_text(s.every_seconds)}"


def state(s: pb.Schedule) -> str:
    """paused, ended (no tick left before its end), or active."""
    return "paused" if s.paused else "active" if s.next_tick else "ended"


def last_run(s: pb.Schedule) -> str:
    """Its last task's status; empty when it has none (or it was deleted)."""
    return status_name(s.last_task_status) if s.HasField("last_task_status") else ""


@click.group(cls=Group)
def schedule() -> None:
    """Schedules: create tasks at each tick of a cron expression or an interval; list, pause, trigger."""


class CreateCommand(Command):
    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Example"):
            formatter.write_text(EXAMPLE)


@schedule.command(cls=CreateCommand)
@click.argument("name")
@click.option("--cron", help="Five fields (minute hour day month weekday), or @hourly, @daily...")
@click.option(
    "--timezone", "-z", default="UTC", show_default=True, help="The cron expression's, e.g. Europe/Berlin."
)
@click.option("--every", help='Or an interval: "30s", "5m", "2h", "1d" (at least 1s).')
@click.option("--type", "-t", "task_type", required=True, help="The task type created at each tick.")
@click.option("--parameter", "-p", "parameters", multiple=True, help="key=value (repeatable).")
@click.option("--description", "-d", default="", help="The tasks' description.")
@click.option("--priority", type=int, default=0, show_default=True, help="0..1000; higher runs first.")
@click.option("--queue", "-q", default="", help="Its tasks' queue [default: the type's, else default].")
@click.option("--max-retries", type=int, default=None, help="Retries after a failure [default: MAX_RETRIES].")
@click.option("--timeout", type=float, default=None, help="Seconds an attempt may run [TASK_TIME_OUT].")
@click.option(
    "--overlap",
    type=click.Choice(OVERLAP_POLICIES),
    default=OVERLAP_POLICIES[0],
    show_default=True,
    help="skip: no new run while the previous one is unfinished.",
)
@click.option(
    "--catchup",
    type=click.Choice(CATCHUP_POLICIES),
    default=CATCHUP_POLICIES[0],
    show_default=True,
    help="The ticks missed while no scheduler ran: none, the last one, or all (at most 100).",
)
@click.option("--ends-at", default="", help="No tick after this time (RFC 3339, e.g. 2027-01-01T00:00:00Z).")
@click.option("--paused", is_flag=True, help="Create it paused: nothing runs until `schedule resume`.")
@output_option
@click.pass_context
def create(
    ctx: click.Context, name: str, cron: str | None, timezone: str, every: str | None, task_type: str,
    parameters: tuple[str, ...], description: str, priority: int, queue: str, max_retries: int | None,
    timeout: float | None, overlap: str, catchup: str, ends_at: str, paused: bool, output: str,
) -> None:  # fmt: skip
    """Create a schedule NAME: a task of a type at each tick of --cron (in --timezone) or --every.

    It first ticks after now; each tick's task is created once, whichever server or worker gets there.
    """
    if (cron is None) == (every is None):
        raise click.UsageError("give --cron EXPR or --every DURATION (one of them)")
    task = pb.CreateTaskRequest(
        type=task_type, payload=pb.Payload(parameters=dict(parse_parameter(p) for p in parameters)),
        description=description, priority=priority, queue=queue,
    )  # fmt: skip
    if max_retries is not None:
        task.max_retries = max_retries
    if timeout is not None:
        task.timeout_seconds = timeout
    request = pb.CreateScheduleRequest(
        name=name, cron=cron or "", timezone=timezone, every=every or "", task=task, overlap=overlap,
        catchup=catchup, paused=paused, ends_at=ends_at,
    )  # fmt: skip
    made = call(ctx, lambda c: c.call("CreateSchedule", request, pb.CreateScheduleResponse)).schedule
    if is_machine(output):
        emit_data(as_data(made), output)
    elif made.paused:
        click.echo(f"Schedule {made.name} created, paused ({when_text(made)}).")
    elif made.next_tick:
        click.echo(f"Schedule {made.name} created ({when_text(made)}); next tick {made.next_tick}.")
    else:
        click.echo(f"Schedule {made.name} created ({when_text(made)}); it ends before its first tick.")


@schedule.command("list", cls=Command)
@output_option
@click.pass_context
def list_schedules(ctx: click.Context, output: str) -> None:
    """List the schedules: when each ticks, its next and last tick, how its last run went."""
    request = pb.ListSchedulesRequest()
    found = call(ctx, lambda c: c.call("ListSchedules", request, pb.ListSchedulesResponse))
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    if not found.schedules:
        click.echo("No schedules")
        return
    rows = [
        (s.name, when_text(s), s.next_tick if not s.paused else "", s.last_tick, last_run(s), state(s),
         s.missed, s.skipped)
        for s in found.schedules
    ]  # fmt: skip
    columns = ("NAME", "WHEN", "NEXT", "LAST", "LAST RUN", "STATE", "MISSED", "SKIPPED")
    table(columns, rows, flexible=("NAME", "WHEN"))


def schedule_rows(s: pb.Schedule) -> list[tuple[str, Any]]:
    t = s.task
    last = f"{s.last_task_id64} ({last_run(s) or 'deleted'})" if s.last_task_id64 else ""
    made = f"{when(s.created_at)} by {s.created_by}" if s.created_by else when(s.created_at)
    return [
        ("Name", s.name),
        ("ID", s.id64),
        ("When", when_text(s)),
        ("State", state(s)),
        ("Next tick", when(s.next_tick) if not s.paused else ""),
        ("Last tick", when(s.last_tick)),
        ("Last task", last),
        ("Missed", s.missed),
        ("Skipped", s.skipped),
        ("Overlap", s.overlap),
        ("Catch-up", s.catchup),
        ("Ends", s.ends_at or "never"),
        ("Task", f"{t.name} ({t.type})"),
        ("Parameters", "\n".join(f"{k}={v}" for k, v in sorted(t.payload.parameters.items()))),
        ("Queue", t.queue),
        ("Priority", t.priority),
        ("Max retries", t.max_retries),
        ("Timeout", f"{t.timeout_seconds:g}s"),
        ("Declared by", f"task type {s.declared_type}" if s.declared_type else ""),
        ("Created", made),
        ("Updated", when(s.updated_at)),
    ]


@schedule.command(cls=Command)
@click.argument("name")
@output_option
@click.pass_context
def get(ctx: click.Context, name: str, output: str) -> None:
    """Show a schedule: when it ticks, what it creates, how its last run went."""
    request = pb.GetScheduleRequest(name=name)
    found = call(ctx, lambda c: c.call("GetSchedule", request, pb.GetScheduleResponse)).schedule
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    key_values(schedule_rows(found))


def _set_paused(ctx: click.Context, name: str, paused: bool) -> pb.Schedule:
    request = pb.UpdateScheduleRequest(name=name, paused=paused)
    return call(ctx, lambda c: c.call("UpdateSchedule", request, pb.UpdateScheduleResponse)).schedule


@schedule.command(cls=Command)
@click.argument("name")
@click.pass_context
def pause(ctx: click.Context, name: str) -> None:
    """Pause a schedule: no tick fires until it is resumed (those missed meanwhile are not caught up)."""
    _set_paused(ctx, name, True)
    click.echo(f"Schedule {name} paused.")


@schedule.command(cls=Command)
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Resume a paused schedule: it ticks next after now."""
    resumed = _set_paused(ctx, name, False)
    upcoming = f"next tick {resumed.next_tick}" if resumed.next_tick else "it has ended"
    click.echo(f"Schedule {name} resumed; {upcoming}.")


@schedule.command(cls=Command)
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete a schedule. The tasks it created stay."""
    request = pb.DeleteScheduleRequest(name=name)
    call(ctx, lambda c: c.call("DeleteSchedule", request, pb.DeleteScheduleResponse))
    click.echo(f"Schedule {name} deleted.")


@schedule.command(cls=Command)
@click.argument("name")
@click.pass_context
def trigger(ctx: click.Context, name: str) -> None:
    """Create a schedule's task now, by hand; its ticks go on as they were."""
    request = pb.TriggerScheduleRequest(name=name)
    answer = call(ctx, lambda c: c.call("TriggerSchedule", request, pb.TriggerScheduleResponse))
    click.echo(f"Task created with ID: {answer.task_id64} (schedule {name}, by hand)")
