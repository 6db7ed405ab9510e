"""`task-cli workflow`: graphs of steps from a YAML or JSON file; list them, show one as a tree of its
steps, cancel or retry one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

import click

from taskservice.cli.client import call
from taskservice.cli.escape import literal
from taskservice.cli.group import Command, Group
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
from taskservice.cli.tasks import status_name
from taskservice.gen.cloud.v1 import task_pb2 as pb

# A workflow's status: RUNNING until nothing of it runs, then how it ended.
WORKFLOW_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
EXAMPLE_FILE = """\
name: nightly-etl
steps:
  extract:
    type: run_query
    parameters: {query: "SELECT * FROM orders"}
  clean:
    type: sleep
    parameters: {seconds: 1}
    depends_on: [extract]
  report:
    type: run_query
    parameters: {query: "SELECT 1"}
    depends_on: [extract]
    priority: 5
  notify:
    type: send_email
    parameters: {recipient: ops@example.com, subject: ETL done}
    depends_on: [clean, report]
    max_retries: 5"""


# -- reading a workflow file ----------------------------------------------------------------------


def load_file(text: str, filename: str = "") -> Any:
    """A workflow file's content: JSON (a .json file, or text starting with `{` that parses as JSON),
    else YAML. Every scalar is read as its text (a parameter `zip: 01234` stays "01234", `on: yes`
    stays "yes"); a key given twice in one mapping is refused. ValueError: why it does not parse."""
    import json

    if filename.endswith(".json") or text.lstrip().startswith("{"):
        try:
            return json.loads(
                text,
                object_pairs_hook=_json_object,
                parse_int=str,
                parse_float=str,
                parse_constant=_no_constant,
            )
        except json.JSONDecodeError as error:
            if filename.endswith(".json"):
                raise ValueError(f"not JSON: {error}") from None
            json_error = error  # a YAML flow mapping starts with `{` too
        else:
            json_error = None
    else:
        json_error = None
    import yaml

    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as error:
        if json_error is not None:
            raise ValueError(f"not JSON: {json_error}") from None
        raise ValueError(f"not YAML: {error}") from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} is given twice")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a parameter can hold")


def _loader() -> Any:
    """PyYAML's BaseLoader (every scalar as its text), refusing a key given twice in a mapping."""
    import yaml
    from yaml.constructor import ConstructorError

    class Loader(yaml.BaseLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    raise ConstructorError(None, None, f"the key {key!r} is given twice", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return Loader


def read_request(file: IO[str], idempotency_key: str = "") -> pb.CreateWorkflowRequest:
    """The CreateWorkflowRequest of a workflow file; click.BadParameter naming what is wrong in it."""
    from taskservice.client.workflows import read_workflow  # the client's rules, as the Python API's

    name = getattr(file, "name", "-")
    shown = "<stdin>" if name in ("-", "<stdin>") else str(name)
    try:
        workflow = read_workflow(load_file(file.read(), shown))
    except ValueError as error:
        raise click.BadParameter(f"{shown}: {error}", param_hint="'--file' / '-f'") from None
    return workflow.request(idempotency_key or None)


# -- showing one ----------------------------------------------------------------------------------


def steps_text(w: pb.Workflow) -> str:
    """How far its steps are: "3/4 succeeded"."""
    return f"{w.step_counts.get('SUCCEEDED', 0)}/{w.steps} succeeded"


def counts_text(w: pb.Workflow) -> str:
    """Its steps by status, in the statuses' order: "4: 1 SUCCEEDED, 1 RUNNING, 2 WAITING"."""
    order = {name: number for number, name in enumerate(pb.TaskStatusEnum.keys())}
    counts = sorted(((n, s) for s, n in w.step_counts.items() if n), key=lambda c: order.get(c[1], 99))
    if not counts:
        return str(w.steps)
    return f"{w.steps}: " + ", ".join(f"{n} {s}" for n, s in counts)


def step_tree(steps: Sequence[pb.WorkflowStepState]) -> list[str]:
    """The steps as a tree, each under the first step it depends on (a spawned one without any under
    the step that spawned it); one depending on more names the others: `(also after X)`.

        extract  task 12  SUCCEEDED
        ├── clean  task 13  RUNNING
        │   └── notify  task 15  WAITING  (also after report)
        └── report  task 14  QUEUED

    The steps come in creation order, a step after the steps it depends on; a step is shown under an
    earlier one only, so whatever the answer holds, every step shows once."""
    position = {s.name: n for n, s in enumerate(steps)}
    under: dict[str, str] = {}
    for n, s in enumerate(steps):
        earlier = [d for d in s.depends_on if position.get(d, n) < n]
        if earlier:
            under[s.name] = earlier[0]
        elif s.spawned_by and position.get(s.spawned_by, n) < n:
            under[s.name] = s.spawned_by
    children: dict[str | None, list[pb.WorkflowStepState]] = {}
    for s in steps:
        children.setdefault(under.get(s.name), []).append(s)
    lines: list[str] = []
    # Depth first, without recursion (a chain of 1000 steps is 1000 deep).
    stack: list[tuple[pb.WorkflowStepState, str, str]] = [
        (s, "", "") for s in reversed(children.get(None, []))
    ]
    while stack:
        s, lead, indent = stack.pop()
        lines.append(lead + _step_line(s, under.get(s.name)))
        below = children.get(s.name, [])
        for n, child in reversed(list(enumerate(below))):
            last = n == len(below) - 1
            stack.append(
                (child, indent + ("└── " if last else "├── "), indent + ("    " if last else "│   "))
            )
    return lines


def _step_line(s: pb.WorkflowStepState, shown_under: str | None) -> str:
    notes = []
    others = [d for d in s.depends_on if d != shown_under]
    if others:
        notes.append("also after " + ", ".join(others))
    if s.spawned_by:
        notes.append("spawned" if s.spawned_by == shown_under else f"spawned by {s.spawned_by}")
    if s.attempts > 1:
        notes.append(f"{s.attempts} attempts")
    line = f"{s.name}  task {s.task_id}  {status_name(s.status)}"
    return literal(f"{line}  ({'; '.join(notes)})" if notes else line)


def workflow_rows(w: pb.Workflow) -> list[tuple[str, Any]]:
    made = f"{when(w.created_at)} by {w.created_by}" if w.created_by else when(w.created_at)
    rows: list[tuple[str, Any]] = [
        ("ID", w.id),
        ("Name", w.name),
        ("Status", status_cell(status_name(w.status))),
        ("Steps", counts_text(w)),
        ("Created", made),
        ("Updated", when(w.updated_at)),
        ("Finished", when(w.finished_at)),
    ]
    if w.idempotency_key:
        rows.append(("Idempotency key", w.idempotency_key))
    return rows


def _plural(count: int, what: str) -> str:
    return f"{count} {what}" if count == 1 else f"{count} {what}s"


# -- the commands ---------------------------------------------------------------------------------


@click.group(cls=Group)
def workflow() -> None:
    """Workflows: steps that wait for each other, from a file; list, show, cancel, retry."""


class CreateCommand(Command):
    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("A workflow file (YAML, or the same in JSON)"):
            for line in EXAMPLE_FILE.splitlines():
                formatter.write(" " * formatter.current_indent + line + "\n")
        with formatter.section("Example"):
            formatter.write_text("task-cli workflow create --file nightly-etl.yaml")


@workflow.command(cls=CreateCommand)
@click.option(
    "--file", "-f", "file", type=click.File("r", encoding="utf-8"), required=True,
    help="The workflow, YAML or JSON (- reads stdin).",
)  # fmt: skip
@click.option(
    "--idempotency-key", default="", help="A second create with the same key returns the first workflow."
)
@output_option
@click.pass_context
def create(ctx: click.Context, file: IO[str], idempotency_key: str, output: str) -> None:
    """Create a workflow from a file: its name and steps, each a task that starts once every step it
    depends on succeeded.

    Each step under `steps` (its name, unique) has a `type`, `parameters` (numbers and booleans are
    sent as their text), `depends_on` (step names) and its task's `description`, `priority`,
    `max_retries`, `timeout` and `delay` (seconds), `queue`, `limit_key`. A step that fails for good
    cancels the steps after it.
    """
    request = read_request(file, idempotency_key)
    response = call(ctx, lambda c: c.call("CreateWorkflow", request, pb.CreateWorkflowResponse))
    if is_machine(output):
        emit_data(as_data(response), output)
        return
    verb = "already exists" if response.existing else "created"
    click.echo(f"Workflow {verb} with ID: {response.id}")


@workflow.command("list", cls=Command)
@click.option(
    "--status", "-s", type=click.Choice(WORKFLOW_STATUSES, case_sensitive=False), default=None,
    help="Only workflows of this status (any case).",
)  # fmt: skip
@click.option(
    "--limit", "-l", type=click.IntRange(1, 1000), default=100, show_default=True, help="At most this many."
)
@click.option("--offset", "-f", type=click.IntRange(min=0), default=0, help="Skip this many.")
@output_option
@click.pass_context
def list_workflows(ctx: click.Context, status: str | None, limit: int, offset: int, output: str) -> None:
    """List workflows, newest first, with how many of their steps succeeded."""
    request = pb.ListWorkflowsRequest(limit=limit, offset=offset)
    if status:
        request.status = pb.TaskStatusEnum.Value(status.upper())  # type: ignore[assignment]
    found = call(ctx, lambda c: c.call("ListWorkflows", request, pb.ListWorkflowsResponse))
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    if not found.workflows:
        click.echo("No workflows" if not offset else f"No workflows from {offset + 1} on")
        return
    if output == "wide":
        rows = [
            (w.id, w.name, status_cell(status_name(w.status)), steps_text(w), w.created_at, w.updated_at,
             w.finished_at, w.created_by)
            for w in found.workflows
        ]  # fmt: skip
        columns = ("ID", "NAME", "STATUS", "STEPS", "CREATED", "UPDATED", "FINISHED", "CREATED-BY")
        table(columns, rows, flexible=("NAME", "CREATED-BY"))
        return
    short = [(w.id, w.name, status_cell(status_name(w.status)), steps_text(w), age(w.created_at))
             for w in found.workflows]  # fmt: skip
    table(("ID", "NAME", "STATUS", "STEPS", "CREATED"), short, flexible=("NAME",))


@workflow.command(cls=Command)
@click.argument("workflow_id", metavar="ID", type=int)
@output_option
@click.pass_context
def get(ctx: click.Context, workflow_id: int, output: str) -> None:
    """Show a workflow, and its steps as a tree: each under the step it depends on, with its task's
    id and status."""
    request = pb.GetWorkflowRequest(id=workflow_id)
    found = call(ctx, lambda c: c.call("GetWorkflow", request, pb.GetWorkflowResponse))
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    key_values(workflow_rows(found.workflow))
    click.echo()
    for line in step_tree(found.steps):
        click.echo(line)


@workflow.command(cls=Command)
@click.argument("workflow_id", metavar="ID", type=int)
@click.pass_context
def cancel(ctx: click.Context, workflow_id: int) -> None:
    """Cancel every unfinished step of a workflow (a running one is stopped)."""
    request = pb.CancelWorkflowRequest(id=workflow_id)
    answer = call(ctx, lambda c: c.call("CancelWorkflow", request, pb.CancelWorkflowResponse))
    click.echo(f"Workflow {workflow_id}: {_plural(answer.cancelled, 'step')} cancelled.")


@workflow.command(cls=Command)
@click.argument("workflow_id", metavar="ID", type=int)
@click.pass_context
def retry(ctx: click.Context, workflow_id: int) -> None:
    """Run a finished workflow's failed and cancelled steps again, keeping those that succeeded."""
    request = pb.RetryWorkflowRequest(id=workflow_id)
    answer = call(ctx, lambda c: c.call("RetryWorkflow", request, pb.RetryWorkflowResponse))
    click.echo(f"Workflow {workflow_id}: {_plural(answer.retried, 'step')} to run again.")
