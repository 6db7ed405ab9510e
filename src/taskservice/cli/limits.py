"""`task-cli limit`: the concurrency and rate limits of task types and queues; setting and resetting one."""

from __future__ import annotations

import click

from taskservice.cli.client import call
from taskservice.cli.group import Command, Group
from taskservice.cli.output import age, as_data, emit_data, is_machine, output_option, table
from taskservice.cli.queues import queue_names
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import Rate


@click.group(cls=Group)
def limit() -> None:
    """Limits: list them; set or reset the concurrency and rate limit of a task type or a queue."""


@limit.command("list", cls=Command)
@output_option
@click.pass_context
def list_limits(ctx: click.Context, output: str) -> None:
    """List the limits in force: tasks waiting under each and running, and who set it."""
    found = call(ctx, lambda client: client.call("ListLimits", pb.ListLimitsRequest(), pb.ListLimitsResponse))
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    wide = output == "wide"
    rows = []
    for x in found.limits:
        changed = x.updated_at if wide else age(x.updated_at)
        rows.append((
            x.kind, x.name, x.concurrency or "", x.rate_limit, x.key, x.waiting, x.running,
            x.set_by or "declared", changed,
        ))  # fmt: skip
    columns = ("SCOPE", "NAME", "CONCURRENCY", "RATE", "KEY", "WAITING", "RUNNING", "SET-BY")
    table((*columns, "UPDATED" if wide else "AGE"), rows, flexible=("NAME", "SET-BY"))


def _target(task_type: str | None, queue: str | None) -> tuple[str, str, str]:
    """(queue, type, what it is in words) of `--type` or `--queue`, exactly one of them."""
    if bool(task_type) == bool(queue):
        raise click.UsageError("name a task type with --type, or a queue with --queue (one of them)")
    if queue:
        name = queue_names([queue])[0]
        return name, "", f"Queue {name}"
    return "", task_type or "", f"Task type {task_type}"


def summary(x: pb.TaskLimit) -> str:
    """A limit in words: "concurrency 2, rate 5/s, per customer_id", or "no limit"."""
    parts = [f"concurrency {x.concurrency}"] if x.concurrency else []
    parts += [f"rate {x.rate_limit}"] if x.rate_limit else []
    if not parts:
        return "no limit"
    return ", ".join([*parts, f"per {x.key}"] if x.key else parts)


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        try:
            return str(Rate.parse(value))
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return value


@limit.command("set", cls=Command)
@click.option("--type", "-t", "task_type", help="Limit this task type.")
@click.option("--queue", "-q", help="Limit this queue (its tasks of types without a limit).")
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=0), help="Attempts running at once, per key (0: no limit)."
)
@click.option(
    "--rate", "-r", callback=_rate, help='Starts per period, per key: "5/s", "100/min", "10/30s" ("": none).'
)
@click.option("--key", "-k", help='The parameter whose value is the key, e.g. customer_id ("": none).')
@click.pass_context
def set_limit(
    ctx: click.Context,
    task_type: str | None,
    queue: str | None,
    concurrency: int | None,
    rate: str | None,
    key: str | None,
) -> None:
    """Set the limit of a task type (or a queue), on every worker, agent and server at once.

    What is not given is kept. The limit holds across restarts, and a worker declaring the type does
    not replace it: `limit reset` goes back to the declaration.
    """
    queue_name, kind, what = _target(task_type, queue)
    if concurrency is None and rate is None and key is None:
        raise click.UsageError("give --concurrency, --rate or --key (at least one)")
    request = pb.SetLimitRequest(queue=queue_name, type=kind)
    if concurrency is not None:
        request.concurrency = concurrency
    if rate is not None:
        request.rate_limit = rate
    if key is not None:
        request.key = key
    answer = call(ctx, lambda client: client.call("SetLimit", request, pb.SetLimitResponse))
    click.echo(f"{what}: {summary(answer.limit)}.")


@limit.command(cls=Command)
@click.option("--type", "-t", "task_type", help="Reset this task type's limit to its declaration.")
@click.option("--queue", "-q", help="Clear this queue's limit.")
@click.pass_context
def reset(ctx: click.Context, task_type: str | None, queue: str | None) -> None:
    """Drop the limit set at run time: a task type's declared limit rules again; a queue's is cleared."""
    queue_name, kind, what = _target(task_type, queue)
    request = pb.ResetLimitRequest(queue=queue_name, type=kind)
    answer = call(ctx, lambda client: client.call("ResetLimit", request, pb.ResetLimitResponse))
    declared = " (as declared)" if answer.limit.concurrency or answer.limit.rate_limit else ""
    click.echo(f"{what} reset: {summary(answer.limit)}{declared}.")
