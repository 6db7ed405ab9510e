"""`task-cli task ...` and `history`: create, inspect, list, cancel, retry and delete tasks."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from taskservice import model
from taskservice.cli.client import Api, call
from taskservice.cli.escape import literal
from taskservice.cli.group import Command, Group, add_alias, global_value
from taskservice.cli.output import (
    age,
    as_data,
    emit_data,
    is_machine,
    key_values,
    output_option,
    status_cell,
    table,
    when,
)
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.protocol.errors import TaskServiceError

STATUS_NAMES = list(pb.TaskStatusEnum.keys())
RESULT_SHOWN = 2000  # characters of a result `task get` shows; -o json of `task attempts` has it all
EXAMPLE = (
    'task-cli task create "Send Newsletter" --type send_email '
    '--parameter recipient=user@example.com --parameter subject="Weekly Update"'
)


def status_name(number: int) -> str:
    try:
        return pb.TaskStatusEnum.Name(number)
    except ValueError:
        return str(number)


def parse_parameter(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{value!r} is not key=value", param_hint="'--parameter' / '-p'")
    return key, val


def _id_option(function: Any) -> Any:
    return click.option("--id", "-i", "task_id", type=int, required=True, help="ID of the task.")(function)


@click.group(cls=Group)
def task() -> None:
    """Create and manage tasks."""


# -- create ----------------------------------------------------------------------------------------


def _task_types(ctx: click.Context) -> tuple[list[pb.TaskTypeDeclaration], str]:
    """The task types the server accepts with what they declare, or (unreachable) the names of those
    installed here; and where they came from."""
    address = global_value(ctx, "address")
    client = Api(address, global_value(ctx, "token"), timeout=2.0)
    try:
        found = client.call("ListTaskTypes", pb.ListTaskTypesRequest(), pb.ListTaskTypesResponse)
        # A server older than declarations sends names only.
        declared = list(found.declarations) or [pb.TaskTypeDeclaration(name=n) for n in found.types]
        return declared, f"registered at {address}"
    except TaskServiceError:
        from importlib.metadata import entry_points

        names = sorted(ep.name for ep in entry_points(group="taskservice.plugins"))
        return [pb.TaskTypeDeclaration(name=n) for n in names], f"installed here ({address} did not answer)"
    finally:
        client.close()


def parameter_note(p: pb.TaskTypeParameter) -> str:
    """How `task create --help` describes one parameter: its type and rules, then its description."""
    rules = [p.type or "string", *(["required"] if p.required else [])]
    if p.choices:
        rules.append("one of " + "|".join(p.choices))
    if p.format:
        rules.append(f"format {p.format}")
    if p.HasField("default_value"):
        rules.append(f"default {p.default_value or '(empty)'}")
    if p.HasField("minimum"):
        rules.append(f">= {p.minimum:g}")
    if p.HasField("maximum"):
        rules.append(f"<= {p.maximum:g}")
    if p.aliases:
        rules.append("also as " + ", ".join(p.aliases))
    return f"({', '.join(rules)}) {p.description}".rstrip()


class CreateCommand(Command):
    """`task create`, whose help lists the task types the server accepts, with their parameters."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        types, source = _task_types(ctx)
        with formatter.section(f"Task types {source}"):
            formatter.write_text(", ".join(t.name for t in types) or "none")
        declared = [t for t in types if t.declared]
        if declared:
            with formatter.section("Parameters (--parameter NAME=VALUE)"):
                for t in declared:
                    formatter.write_text(f"{t.name}: {t.description}" if t.description else t.name)
                    with formatter.indentation():
                        if t.HasField("container"):  # run as a Kubernetes Job
                            formatter.write_text(f"(runs in a container: {t.container.image})")
                        if t.parameters:
                            formatter.write_dl([(p.name, parameter_note(p)) for p in t.parameters])
                        if t.extra_parameters:
                            formatter.write_text("(other parameters are accepted too)")
        with formatter.section("Example"):
            formatter.write_text(EXAMPLE)


@task.command(cls=CreateCommand)
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
@click.option(
    "--queue",
    "-q",
    default="",
    help="The queue it waits in [default: its type's declared queue, else default].",
)
@click.option(
    "--limit-key",
    default="",
    help="The key it counts under when its type (or queue) has a limit [default: the value of the "
    "parameter the limit names].",
)
@click.option(
    "--at",
    "run_at",
    default="",
    help="When it may start, RFC 3339 (e.g. 2026-12-24T18:00:00Z); a time past: now [default: now].",
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
    queue: str,
    limit_key: str,
    run_at: str,
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
        queue=queue,
        limit_key=limit_key,
        run_at=run_at,
    )
    if max_retries is not None:
        request.max_retries = max_retries
    if timeout is not None:
        request.timeout_seconds = timeout
    response = call(ctx, lambda c: c.call("CreateTask", request, pb.CreateTaskResponse))
    if is_machine(output):
        emit_data(as_data(response), output)
        return
    verb = "already exists" if response.existing else "created"
    click.echo(f"Task {verb} with ID: {response.id64}")


add_alias(task, "create", "c", "new")


# -- get -------------------------------------------------------------------------------------------


def _result_text(value: Any, task_id: int, attempt: int) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > RESULT_SHOWN:
        whole = f"task attempts -i {task_id} --attempt {attempt} -o json"
        text = f"{text[:RESULT_SHOWN]}… ({len(text) - RESULT_SHOWN} more characters: {whole})"
    return text


def limit_cell(found: pb.Task) -> str:
    """The limit a task counts under and its key there: "type send_email, key 42"; empty: neither."""
    key = f"key {found.limit_key}" if found.limit_key else ""
    if not found.limit_scope:
        return f"{key} (no limit)" if key else ""
    scope = found.limit_scope.replace(":", " ", 1)
    return f"{scope}, {key}" if key else scope


def schedule_cell(found: pb.Task, schedule: pb.Schedule | None) -> str:
    """The schedule that created a task and its tick: "nightly, tick 2026-12-06T02:00:00Z", or "nightly
    (triggered by hand)"; empty: none."""
    if not found.schedule_id:
        return ""
    name = schedule.name if schedule is not None else f"schedule {found.schedule_id} (deleted)"
    return f"{name}, tick {found.schedule_tick}" if found.schedule_tick else f"{name} (triggered by hand)"


def workflow_cell(found: pb.Task) -> str:
    """The workflow a task is a step of: "42, step load", "42, step fetch/page-1 (spawned by task 7)"."""
    spawned = f" (spawned by task {found.spawned_by})" if found.spawned_by else ""
    return f"{found.workflow_id}, step {found.step}{spawned}"


def depends_on(found: pb.Task) -> str:
    """The tasks a step waits for (its parents, the children spawned for it): "task 12, task 13"."""
    return ", ".join(f"task {parent}" for parent in found.dependencies)


def container_cell(found: pb.Task) -> str:
    """A container task's container as its agent runs it: image, command, environment; "": none."""
    if not found.base_image:
        return ""
    lines = [f"image {found.base_image}"]
    if found.entrypoint:
        lines.append(f"entrypoint {found.entrypoint}")
    if found.args:
        lines.append(f"args {shlex.join(found.args)}")
    lines += [f"env {name}={value}" for name, value in sorted(found.env.items())]
    return "\n".join(lines)


def task_rows(
    found: pb.Task, last: pb.TaskExecution | None, schedule: pb.Schedule | None = None
) -> list[tuple[str, Any]]:
    parameters = "\n".join(f"{k}={v}" for k, v in sorted(found.payload.parameters.items()))
    rows: list[tuple[str, Any]] = [
        ("ID", found.id64),
        ("Name", found.name),
        ("Type", found.type),
        ("Queue", found.queue or "default"),
        ("Status", status_cell(status_name(found.exact_status))),
        ("Description", found.description),
        ("Parameters", parameters),
        ("Priority", found.priority),
        ("Retries", f"{found.retries} of {found.max_retries}"),
        ("Attempts", found.attempts),
        ("Timeout", f"{found.timeout_seconds:g}s"),
        ("Created", when(found.created_at)),
        ("Updated", when(found.updated_at)),
        ("Next run", when(found.run_at) if found.exact_status in (pb.QUEUED, pb.RETRYING) else ""),
        ("Worker", found.worker_id),
    ]
    if container := container_cell(found):
        rows.insert(rows.index(("Parameters", parameters)) + 1, ("Container", container))
    if limit := limit_cell(found):
        rows.insert(rows.index(("Queue", found.queue or "default")) + 1, ("Limit", limit))
    if found.schedule_id:
        created = rows.index(("Created", when(found.created_at)))
        rows.insert(created, ("Schedule", schedule_cell(found, schedule)))
    if found.workflow_id:
        rows.insert(rows.index(("Created", when(found.created_at))), ("Workflow", workflow_cell(found)))
        if found.dependencies:
            rows.insert(rows.index(("Created", when(found.created_at))), ("Depends on", depends_on(found)))
    if found.waiting_reason:  # e.g. "no live worker runs type X", "queue emails is paused"
        rows.insert(rows.index(("Worker", found.worker_id)), ("Waiting", found.waiting_reason))
    if last is not None:
        rows.append(("Last error", last.error))
        if last.outcome == "succeeded":
            from google.protobuf import json_format

            result = json_format.MessageToDict(last.result)
            rows.append(("Result", _result_text(result, found.id64, last.attempt)))
    return rows


@task.command()
@_id_option
@output_option
@click.pass_context
def get(ctx: click.Context, task_id: int, output: str) -> None:
    """Show a task, with the last error and the result of its last attempt."""
    with_attempts = not is_machine(output)

    def fetch(client: Api) -> tuple[pb.Task, pb.ListTaskExecutionsResponse | None, pb.Schedule | None]:
        found = client.call("GetTask", pb.GetTaskRequest(id64=task_id), pb.Task)
        if not with_attempts:
            return found, None, None
        request = pb.ListTaskExecutionsRequest(id64=task_id)
        attempts = client.call("ListTaskExecutions", request, pb.ListTaskExecutionsResponse)
        last = attempts.executions[-1] if attempts.executions else None
        if last is not None and last.result_truncated:  # a list has a preview: ask for it whole
            request.attempt = last.attempt
            attempts = client.call("ListTaskExecutions", request, pb.ListTaskExecutionsResponse)
        return found, attempts, _schedule_of(client, found)

    found, attempts, schedule = call(ctx, fetch)
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    last = attempts.executions[-1] if attempts and attempts.executions else None
    key_values(task_rows(found, last, schedule))


def _schedule_of(client: Api, found: pb.Task) -> pb.Schedule | None:
    """The schedule that created a task, for its name; None: none, or deleted since."""
    if not found.schedule_id:
        return None
    request = pb.GetScheduleRequest(id64=found.schedule_id)
    try:
        return client.call("GetSchedule", request, pb.GetScheduleResponse).schedule
    except TaskServiceError as error:
        if error.code == "not_found":
            return None
        raise


add_alias(task, "get", "g", "show")


# -- list ------------------------------------------------------------------------------------------


def page_title(offset: int, shown: int, total: int) -> str:
    """The line above a page of tasks: which rows it shows of how many, or why it shows none."""
    if total == 0:
        return "No tasks"
    if shown == 0:
        return f"No tasks from {offset + 1} on ({total} in all)"
    return f"Tasks {offset + 1}-{offset + shown} of {total}"


@task.command(name="list")
@output_option
@click.option("--pageNumber", "-n", "page_number", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--pageCount", "-c", "page_count", type=click.IntRange(1, 100), default=30, show_default=True)
@click.option(
    "--offset", "-f", type=click.IntRange(min=0), default=None, help="Skip this many (instead of pages)."
)
@click.option("--limit", "-l", type=click.IntRange(1, 100), default=None, help="At most this many.")
@click.option(
    "--status",
    "-s",
    type=click.Choice(STATUS_NAMES, case_sensitive=False),
    default=None,
    help="Only tasks of this status (any case; all for every status).",
)
@click.option("--type", "-t", "task_type", default=None, help="Only tasks of this type.")
@click.option(
    "--sort-by",
    "order_by",
    type=click.Choice(model.LIST_ORDERS),
    default="created_desc",
    show_default=True,
    help="A column and a direction; other columns than created take at most "
    f"{model.SORTED_MAX:,} matching tasks (filter first).",
)
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
    order_by: str,
) -> None:
    """List tasks, newest first (or as --sort-by says)."""
    size = limit or page_count
    first_row = offset if offset is not None else (page_number - 1) * size
    request = pb.TaskListRequest(limit=size, offset=first_row, order_by=order_by)
    if status:
        request.status = pb.TaskStatusEnum.Value(status.upper())  # type: ignore[assignment]
    if task_type:
        request.type = task_type
    found = call(ctx, lambda c: c.call("ListTasks", request, pb.TaskList))
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    title = page_title(request.offset, len(found.tasks), found.total)
    if not found.tasks:
        click.echo(title)
        return
    if output == "wide":
        wide = ("ID", "NAME", "TYPE", "STATUS", "RETRIES", "ATTEMPTS", "PRIORITY", "CREATED", "UPDATED",
                "WORKER", "DESCRIPTION")  # fmt: skip
        rows = [
            (t.id64, t.name, t.type, status_cell(status_name(t.exact_status)), f"{t.retries}/{t.max_retries}",
             t.attempts, t.priority, t.created_at, t.updated_at, t.worker_id, t.description)
            for t in found.tasks
        ]  # fmt: skip
        table(wide, rows, title=title, flexible=("NAME", "DESCRIPTION", "WORKER"))
        return
    short_rows = [
        (t.id64, t.name, t.type, status_cell(status_name(t.exact_status)), t.retries, age(t.created_at),
         t.description)
        for t in found.tasks
    ]  # fmt: skip
    columns = ("ID", "NAME", "TYPE", "STATUS", "RETRIES", "AGE", "DESCRIPTION")
    table(columns, short_rows, title=title, flexible=("NAME", "DESCRIPTION"))


add_alias(task, "list", "l", "ls")


# -- status ----------------------------------------------------------------------------------------


@task.command()
@output_option
@click.pass_context
def status(ctx: click.Context, output: str) -> None:
    """Count tasks by status."""
    found = call(ctx, lambda c: c.call("GetStatus", pb.GetStatusRequest(), pb.GetStatusResponse))
    counts = {status_name(number): count for number, count in sorted(found.exact_status_counts.items())}
    if is_machine(output):
        emit_data({"statusCounts": counts, "total": sum(counts.values())}, output)
        return
    rows: list[tuple[Any, Any]] = [(status_cell(name), count) for name, count in counts.items()]
    table(("STATUS", "COUNT"), [*rows, ("TOTAL", sum(counts.values()))])


add_alias(task, "status", "s", "stat")


# -- history and attempts --------------------------------------------------------------------------


@click.command(cls=Command)
@_id_option
@output_option
@click.pass_context
def history(ctx: click.Context, task_id: int, output: str) -> None:
    """Show the status history of a task, oldest first."""
    request = pb.GetTaskHistoryRequest(id64=task_id)
    found = call(ctx, lambda c: c.call("GetTaskHistory", request, pb.GetTaskHistoryResponse))
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    wide = output == "wide"
    rows = [
        (
            h.id64,
            status_cell(status_name(h.exact_status)),
            h.created_at if wide else age(h.created_at),
            h.details,
        )
        for h in found.history
    ]
    table(("ID", "STATUS", "CREATED" if wide else "AGE", "DETAILS"), rows, wrap=("DETAILS",))


task.add_command(history)
add_alias(task, "history", "h", "log")


# -- cancel, retry and delete: one task, or many by ids or a filter ---------------------------------

# The statuses a task can be in (the list's filter values ALL and UNKNOWN are none).
TASK_STATUS_NAMES = [n for n in STATUS_NAMES if n not in ("ALL", "UNKNOWN")]


@dataclass(frozen=True)
class Action:
    """A bulk action as the CLI says it: the RPC, its request and answer, the words."""

    method: str
    request: Callable[..., Any]
    answer: type[Any]
    verb: str  # "Cancel": the question's
    done: str  # "Cancelled": the answer's
    note: str = ""  # what the question adds


CANCEL = Action("CancelTasks", pb.CancelTasksRequest, pb.CancelTasksResponse, "Cancel", "Cancelled")
RETRY = Action("RetryTasks", pb.RetryTasksRequest, pb.RetryTasksResponse, "Retry", "Retried")
DELETE = Action(
    "DeleteTasks", pb.DeleteTasksRequest, pb.DeleteTasksResponse, "Delete", "Deleted",
    " Their history and attempts go with them; this cannot be undone.",
)  # fmt: skip


def parse_statuses(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    """`--status queued --status retrying` or `--status queued,retrying`, any case."""
    names = [n.strip().upper() for value in values for n in value.split(",") if n.strip()]
    for name in names:
        if name not in TASK_STATUS_NAMES:
            known = ", ".join(n.lower() for n in TASK_STATUS_NAMES)
            raise click.BadParameter(f"{name.lower()!r} is not a task status; one of {known}")
    return names


def _selection_options(function: Any) -> Any:
    """The options that choose the tasks of `task cancel`, `retry` and `delete`."""
    options: list[Callable[[Any], Any]] = [
        click.option("--id", "-i", "task_ids", type=int, multiple=True, help="ID of a task (repeatable)."),
        click.option(
            "--status", "-s", "statuses", multiple=True, callback=parse_statuses,
            help="Tasks of this status (repeatable, or a comma list: queued,retrying).",
        ),
        click.option("--type", "-t", "task_type", default=None, help="Tasks of this type."),
        click.option("--queue", "-q", default=None, help="Tasks of this queue."),
        click.option("--name-contains", default="", help="Tasks whose name contains this (any case)."),
        click.option("--created-after", default="", help="Tasks created at or after (YYYY-MM-DDTHH:MM:SSZ)."),
        click.option("--created-before", default="", help="Tasks created before (YYYY-MM-DDTHH:MM:SSZ)."),
        click.option("--all", "every", is_flag=True, help="Every task (that the action applies to)."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
        click.option("--reason", "-r", default="", help="Recorded in each task's history."),
        output_option,
        click.pass_context,
    ]  # fmt: skip
    for option in reversed(options):
        function = option(function)
    return function


def _bulk_request(action: Action, task_ids: tuple[int, ...], where: dict[str, Any], reason: str) -> Any:
    request = action.request(ids=list(task_ids), reason=reason)
    if not task_ids:
        f = request.filter
        f.SetInParent()
        f.statuses.extend(pb.TaskStatusEnum.Value(name) for name in where["statuses"])
        if where["task_type"] is not None:
            f.type = where["task_type"]
        if where["queue"] is not None:
            f.queue = where["queue"]
        f.name_contains, f.all = where["name_contains"], where["every"]
        f.created_after, f.created_before = where["created_after"], where["created_before"]
    return request


def _tasks(count: int) -> str:
    return f"{count:,} task" + ("" if count == 1 else "s")


def _act(
    ctx: click.Context, action: Action, task_ids: tuple[int, ...], reason: str, yes: bool, output: str,
    **where: Any,
) -> None:  # fmt: skip
    """Count the tasks the action would take (a dry run), ask, then act."""
    filtered = _filtered(where)
    if task_ids and filtered:
        raise click.UsageError("give --id, or a filter (--status, --type, ...), not both")
    if not task_ids and not filtered:
        raise click.UsageError(
            "which tasks? Give --id, a filter (--status, --type, --name-contains, --created-after, "
            "--created-before), or --all"
        )
    request = _bulk_request(action, task_ids, where, reason)
    if not yes:
        request.dry_run = True
        count = call(ctx, lambda c: c.call(action.method, request, action.answer)).count
        if count == 0:
            click.echo(f"No tasks to {action.verb.lower()}.")
            return
        click.confirm(f"{action.verb} {_tasks(count)}?{action.note}", default=False, abort=True, err=True)
        request.dry_run = False

    def act(client: Api) -> int:
        """One call, or more when the server stopped one at its time limit (its resume_token)."""
        count = 0
        while True:
            answer = client.call(action.method, request, action.answer)
            count += int(answer.count)
            if not answer.resume_token:
                return count
            request.resume_token = answer.resume_token

    count = call(ctx, act)
    if is_machine(output):
        emit_data({"count": count}, output)
        return
    click.echo(f"{action.done} {_tasks(count)}.")


def _change_one(ctx: click.Context, task_id: int, reason: str, output: str, cancel: bool) -> None:
    if cancel:
        request: Any = pb.CancelTaskRequest(id64=task_id, reason=reason)
    else:
        request = pb.RetryTaskRequest(id64=task_id, reason=reason)
    changed = call(ctx, lambda c: c.call("CancelTask" if cancel else "RetryTask", request, pb.Task))
    if is_machine(output):
        emit_data(as_data(changed), output)
        return
    click.echo(f"Task {changed.id64} is now {status_name(changed.exact_status)}")


def _filtered(where: dict[str, Any]) -> bool:
    """Whether a filter option was given (`--type ""` too: the server says what is wrong with it)."""
    unset = ("task_type", "queue")  # None when not given; "" is given
    return any(where[k] is not None for k in unset) or any(v for k, v in where.items() if k not in unset)


def _one_task(task_ids: tuple[int, ...], where: dict[str, Any]) -> int | None:
    """The task of `--id N` alone (the single call, its answer the task), else None."""
    return task_ids[0] if len(task_ids) == 1 and not _filtered(where) else None


@task.command()
@_selection_options
def cancel(
    ctx: click.Context, task_ids: tuple[int, ...], reason: str, yes: bool, output: str, **where: Any
) -> None:
    """Cancel queued, retrying or running tasks: one (--id) or many.

    Several --id, or a filter (--status, --type, --queue, --name-contains, --created-after,
    --created-before; or --all), first counts the tasks and asks (--yes does not), then cancels them
    in one call.
    """
    one = _one_task(task_ids, where)
    if one is not None:
        _change_one(ctx, one, reason, output, cancel=True)
        return
    _act(ctx, CANCEL, task_ids, reason, yes, output, **where)


@task.command()
@_selection_options
def retry(
    ctx: click.Context, task_ids: tuple[int, ...], reason: str, yes: bool, output: str, **where: Any
) -> None:
    """Run finished (succeeded, failed or cancelled) tasks again: one (--id) or many.

    Several --id, or a filter, first counts the tasks and asks (--yes does not), as `task cancel`.
    """
    one = _one_task(task_ids, where)
    if one is not None:
        _change_one(ctx, one, reason, output, cancel=False)
        return
    _act(ctx, RETRY, task_ids, reason, yes, output, **where)


@task.command()
@_selection_options
def delete(
    ctx: click.Context, task_ids: tuple[int, ...], reason: str, yes: bool, output: str, **where: Any
) -> None:
    """Delete finished tasks with their history and attempts (an admin's right).

    By --id (repeatable) or a filter, as `task cancel`; it counts them and asks first (--yes does not).
    A queued or running task is never deleted: cancel it first.
    """
    _act(ctx, DELETE, task_ids, reason, yes, output, **where)


def duration(execution: pb.TaskExecution) -> str:
    """How long an attempt took; `running` for one still running (its recorded duration is 0 until it
    ends, and this machine's clock is not the server's)."""
    if not execution.finished_at:
        return "running"
    return f"{execution.duration_seconds:.3f}s"


@task.command()
@_id_option
@click.option(
    "--attempt",
    "-a",
    type=click.IntRange(min=1),
    default=None,
    help="Only this attempt (1 for the first), with its traceback if it failed, and its whole result "
    "in -o json/yaml.",
)
@output_option
@click.pass_context
def attempts(ctx: click.Context, task_id: int, attempt: int | None, output: str) -> None:
    """Show the attempts of a task: worker, times, outcome, error (one line each).

    With --attempt, a failed attempt's traceback follows.
    """
    request = pb.ListTaskExecutionsRequest(id64=task_id, attempt=attempt or 0)
    found = call(ctx, lambda c: c.call("ListTaskExecutions", request, pb.ListTaskExecutionsResponse))
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    if output == "wide":
        rows = [
            (e.attempt, e.worker_id, e.started_at, e.finished_at, duration(e), e.outcome, e.error)
            for e in found.executions
        ]  # fmt: skip
        columns = ("ATTEMPT", "WORKER", "STARTED", "FINISHED", "DURATION", "OUTCOME", "ERROR")
        table(columns, rows, wrap=("ERROR",))
        _tracebacks(found, attempt)
        return
    short_rows = [
        (e.attempt, e.worker_id, age(e.started_at), duration(e), e.outcome, e.error) for e in found.executions
    ]
    table(("ATTEMPT", "WORKER", "AGE", "DURATION", "OUTCOME", "ERROR"), short_rows, wrap=("ERROR",))
    _tracebacks(found, attempt)


def _tracebacks(found: pb.ListTaskExecutionsResponse, attempt: int | None) -> None:
    """Below the one attempt asked for, its traceback (a list of attempts stays one line each)."""
    if attempt is None:
        return
    for e in found.executions:
        if e.traceback:
            click.echo("\n" + literal(e.traceback, multiline=True).rstrip())
