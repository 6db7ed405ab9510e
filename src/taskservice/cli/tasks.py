"""`task-cli task ...`, `history` and `workers`: create, inspect, cancel and retry tasks."""

from __future__ import annotations

import click

from taskservice.cli.client import call
from taskservice.cli.main import AliasedGroup, add_alias, cli
from taskservice.cli.output import as_data, emit_data, key_values, output_option, table
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import Status

STATUS_NAMES = [s.name for s in Status]


def parse_parameter(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{value!r} is not key=value", param_hint="'--parameter' / '-p'")
    return key, val


def task_rows(task: pb.Task) -> list[tuple[str, object]]:
    return [
        ("ID", task.id64),
        ("Name", task.name),
        ("Type", task.type),
        ("Status", pb.TaskStatusEnum.Name(task.status)),
        ("Description", task.description),
        ("Parameters", ", ".join(f"{k}={v}" for k, v in sorted(task.payload.parameters.items()))),
        ("Priority", task.priority),
        ("Retries", f"{task.retries} of {task.max_retries}"),
        ("Attempts", task.attempts),
        ("Timeout", f"{task.timeout_seconds:g}s"),
        ("Created", task.created_at),
        ("Updated", task.updated_at),
        ("Next run", task.run_at),
        ("Worker", task.worker_id),
    ]


@cli.group(cls=AliasedGroup)
def task() -> None:
    """Create and manage tasks."""


add_alias(cli, "task", "t")


@task.command()
@click.argument("name")
@click.option("--type", "-t", "task_type", required=True, help="Task type (e.g. send_email, run_query).")
@click.option("--parameter", "-p", "parameters", multiple=True, help="key=value (repeatable).")
@click.option("--description", "-d", default="", help="What the task is for.")
@click.option("--priority", type=int, default=0, show_default=True, help="0..1000; higher runs first.")
@click.option("--max-retries", type=int, default=None, help="Retries after a failure [default: MAX_RETRIES].")
@click.option(
    "--timeout", type=float, default=None, help="Seconds one attempt may run [default: TASK_TIME_OUT]."
)
@click.option(
    "--idempotency-key", default="", help="A second create with the same key returns the first task."
)
@output_option
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    task_type: str,
    parameters: tuple[str, ...],
    description: str,
    priority: int,
    max_retries: int | None,
    timeout: float | None,
    idempotency_key: str,
    output: str,
) -> None:
    """Create a task NAME of a type, with parameters."""
    request = pb.CreateTaskRequest(
        name=name,
        type=task_type,
        payload=pb.Payload(parameters=dict(parse_parameter(p) for p in parameters)),
        description=description,
        priority=priority,
        idempotency_key=idempotency_key,
    )
    if max_retries is not None:
        request.max_retries = max_retries
    if timeout is not None:
        request.timeout_seconds = timeout
    response = call(ctx, lambda c: c.create_task(request))
    if output == "table":
        verb = "already exists" if response.existing else "created"
        click.echo(f"Task {verb} with ID: {response.id64}")
    else:
        emit_data(as_data(response), output)


add_alias(task, "create", "c", "new")


@task.command()
@click.option("--id", "-i", "task_id", type=int, required=True, help="ID of the task.")
@output_option
@click.pass_context
def get(ctx: click.Context, task_id: int, output: str) -> None:
    """Show a task."""
    found = call(ctx, lambda c: c.get_task(pb.GetTaskRequest(id64=task_id)))
    if output == "table":
        key_values(task_rows(found))
    else:
        emit_data(as_data(found), output)


add_alias(task, "get", "g", "show")


@task.command(name="list")
@output_option
@click.option("--pageNumber", "-n", "page_number", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--pageCount", "-c", "page_count", type=click.IntRange(1, 100), default=30, show_default=True)
@click.option(
    "--offset", "-f", type=click.IntRange(min=0), default=None, help="Skip this many (instead of pages)."
)
@click.option("--limit", "-l", type=click.IntRange(1, 100), default=None, help="At most this many.")
@click.option("--status", "-s", type=click.Choice(STATUS_NAMES, case_sensitive=False), default=None)
@click.option("--type", "-t", "task_type", default=None, help="Only tasks of this type.")
@click.pass_context
def list_tasks(
    ctx: click.Context,
    output: str,
    page_number: int,
    page_count: int,
    offset: int | None,
    limit: int | None,
    status: str | None,
    task_type: str | None,
) -> None:
    """List tasks, newest first."""
    size = limit or page_count
    request = pb.TaskListRequest(
        limit=size, offset=offset if offset is not None else (page_number - 1) * size
    )
    if status:
        request.status = pb.TaskStatusEnum.Value(status.upper())  # type: ignore[assignment]
    if task_type:
        request.type = task_type
    found = call(ctx, lambda c: c.list_tasks(request))
    if output != "table":
        emit_data(as_data(found), output)
        return
    rows = [
        (t.id64, t.name, t.type, pb.TaskStatusEnum.Name(t.status), t.retries, t.created_at, t.description)
        for t in found.tasks
    ]
    first = request.offset + 1 if rows else 0
    table(
        ("ID", "NAME", "TYPE", "STATUS", "RETRIES", "CREATED", "DESCRIPTION"),
        rows,
        title=f"Tasks {first}-{request.offset + len(rows)} of {found.total}",
    )


add_alias(task, "list", "l", "ls")


@task.command()
@output_option
@click.pass_context
def status(ctx: click.Context, output: str) -> None:
    """Count tasks by status."""
    found = call(ctx, lambda c: c.get_status(pb.GetStatusRequest()))
    counts = {pb.TaskStatusEnum.Name(number): count for number, count in sorted(found.status_counts.items())}
    if output == "table":
        table(("STATUS", "COUNT"), [*counts.items(), ("TOTAL", sum(counts.values()))])
    else:
        emit_data({"statusCounts": counts, "total": sum(counts.values())}, output)


add_alias(task, "status", "s", "stat")


@click.command()
@click.option("--id", "-i", "task_id", type=int, required=True, help="ID of the task.")
@output_option
@click.pass_context
def history(ctx: click.Context, task_id: int, output: str) -> None:
    """Show the status history of a task, oldest first."""
    found = call(ctx, lambda c: c.get_task_history(pb.GetTaskHistoryRequest(id64=task_id)))
    if output == "table":
        rows = [(h.id64, pb.TaskStatusEnum.Name(h.status), h.created_at, h.details) for h in found.history]
        table(("ID", "STATUS", "CREATED", "DETAILS"), rows)
    else:
        emit_data(as_data(found), output)


cli.add_command(history)
task.add_command(history)
add_alias(cli, "history", "h", "log")
add_alias(task, "history", "h", "log")


def _change(ctx: click.Context, task_id: int, reason: str, output: str, cancel: bool) -> None:
    if cancel:
        changed = call(ctx, lambda c: c.cancel_task(pb.CancelTaskRequest(id64=task_id, reason=reason)))
    else:
        changed = call(ctx, lambda c: c.retry_task(pb.RetryTaskRequest(id64=task_id, reason=reason)))
    if output == "table":
        click.echo(f"Task {changed.id64} is now {pb.TaskStatusEnum.Name(changed.status)}")
    else:
        emit_data(as_data(changed), output)


@task.command()
@click.option("--id", "-i", "task_id", type=int, required=True, help="ID of the task.")
@click.option("--reason", "-r", default="", help="Recorded in the task's history.")
@output_option
@click.pass_context
def cancel(ctx: click.Context, task_id: int, reason: str, output: str) -> None:
    """Cancel a queued, retrying or running task."""
    _change(ctx, task_id, reason, output, cancel=True)


@task.command()
@click.option("--id", "-i", "task_id", type=int, required=True, help="ID of the task.")
@click.option("--reason", "-r", default="", help="Recorded in the task's history.")
@output_option
@click.pass_context
def retry(ctx: click.Context, task_id: int, reason: str, output: str) -> None:
    """Run a finished (succeeded, failed or cancelled) task again."""
    _change(ctx, task_id, reason, output, cancel=False)


@task.command()
@click.option("--id", "-i", "task_id", type=int, required=True, help="ID of the task.")
@output_option
@click.pass_context
def attempts(ctx: click.Context, task_id: int, output: str) -> None:
    """Show the attempts of a task: worker, times, outcome, error."""
    found = call(ctx, lambda c: c.list_task_executions(pb.ListTaskExecutionsRequest(id64=task_id)))
    if output == "table":
        rows = [
            (e.attempt, e.worker_id, e.started_at, f"{e.duration_seconds:.3f}s", e.outcome, e.error)
            for e in found.executions
        ]
        table(("ATTEMPT", "WORKER", "STARTED", "DURATION", "OUTCOME", "ERROR"), rows)
    else:
        emit_data(as_data(found), output)


@cli.command()
@output_option
@click.pass_context
def workers(ctx: click.Context, output: str) -> None:
    """List workers, live ones first."""
    found = call(ctx, lambda c: c.list_workers(pb.ListWorkersRequest()))
    if output == "table":
        rows = [
            (
                w.id,
                w.host,
                w.pid,
                w.concurrency,
                w.running,
                "alive" if w.alive else "gone",
                w.last_heartbeat_at,
            )
            for w in found.workers
        ]
        table(("ID", "HOST", "PID", "CONCURRENCY", "RUNNING", "STATE", "LAST HEARTBEAT"), rows)
    else:
        emit_data(as_data(found), output)
