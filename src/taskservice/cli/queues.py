"""`task-cli queue`: the queues with their counts, and pausing or resuming a queue or a task type."""

from __future__ import annotations

from collections.abc import Iterable

import click

from taskservice.cli.client import call
from taskservice.cli.escape import literal
from taskservice.cli.group import Command, Group
from taskservice.cli.output import age, as_data, emit_data, is_machine, output_option, table
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import QUEUE_NAME, QUEUE_RULE


def queue_names(values: Iterable[str]) -> tuple[str, ...]:
    """The queues of repeated or comma-separated `--queue` values, each checked (a usage error)."""
    names = sorted({name.strip() for value in values for name in value.split(",") if name.strip()})
    for name in names:
        if not QUEUE_NAME.fullmatch(name):
            raise click.BadParameter(f"{name!r}: a queue's name is {QUEUE_RULE}", param_hint="--queue")
    return tuple(names)


@click.group(cls=Group)
def queue() -> None:
    """Queues: list them with their counts; pause or resume a queue, or a task type (--type)."""


@queue.command("list", cls=Command)
@output_option
@click.pass_context
def list_queues(ctx: click.Context, output: str) -> None:
    """List the queues: waiting and running tasks, live workers serving each, and what is paused."""
    found = call(ctx, lambda client: client.call("ListQueues", pb.ListQueuesRequest(), pb.ListQueuesResponse))
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    wide = output == "wide"
    rows = []
    for q in found.queues:
        state = "paused" if q.paused else "active"
        since = (q.pause.paused_at if wide else age(q.pause.paused_at)) if q.paused else ""
        reason = literal(q.pause.reason) if q.paused else ""
        rows.append((q.name, state, q.waiting, q.running, q.workers, since, reason))
    table(("QUEUE", "STATE", "WAITING", "RUNNING", "WORKERS", "PAUSED" if wide else "SINCE", "REASON"), rows)
    for p in found.paused_types:
        click.echo(
            f"Task type {p.name} is paused ({age(p.paused_at)}){': ' + literal(p.reason) if p.reason else ''}"
        )


def _target(name: str | None, task_type: str | None) -> tuple[str, str]:
    if bool(name) == bool(task_type):
        raise click.UsageError("name a queue, or a task type with --type (one of them)")
    if name:
        return queue_names([name])[0], ""
    return "", task_type or ""


@queue.command(cls=Command)
@click.argument("name", required=False)
@click.option("--type", "-t", "task_type", help="Pause every task of this type instead of a queue.")
@click.option("--reason", "-r", default="", help="Why (shown by `queue list` and on the waiting tasks).")
@click.pass_context
def pause(ctx: click.Context, name: str | None, task_type: str | None, reason: str) -> None:
    """Pause a queue (or a task type): no new attempt starts, on any worker, until it is resumed.

    Running attempts finish. The pause is kept in the database: it holds across restarts.
    """
    queue_name, kind = _target(name, task_type)
    request = pb.PauseQueueRequest(queue=queue_name, type=kind, reason=reason)
    answer = call(ctx, lambda client: client.call("PauseQueue", request, pb.PauseQueueResponse))
    what = f"Queue {queue_name}" if queue_name else f"Task type {kind}"
    click.echo(f"{what} was paused already." if answer.already else f"{what} paused.")


@queue.command(cls=Command)
@click.argument("name", required=False)
@click.option("--type", "-t", "task_type", help="Resume a paused task type instead of a queue.")
@click.pass_context
def resume(ctx: click.Context, name: str | None, task_type: str | None) -> None:
    """Resume a paused queue (or task type): its tasks start again."""
    queue_name, kind = _target(name, task_type)
    request = pb.ResumeQueueRequest(queue=queue_name, type=kind)
    answer = call(ctx, lambda client: client.call("ResumeQueue", request, pb.ResumeQueueResponse))
    what = f"Queue {queue_name}" if queue_name else f"Task type {kind}"
    click.echo(f"{what} resumed." if answer.resumed else f"{what} was not paused.")
