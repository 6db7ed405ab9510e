"""`task-cli workers`: the workers and agents, live ones first, and the tasks each one runs."""

from __future__ import annotations

from collections import defaultdict

import click

from taskservice.cli.client import Api, call
from taskservice.cli.group import Command
from taskservice.cli.output import age, as_data, emit_data, is_machine, output_option, table
from taskservice.gen.cloud.v1 import task_pb2 as pb

PAGE = 100
RUNNING_PAGES = 10  # at most this many pages of running tasks are read to say who runs what
TASKS_SHOWN = 5


def running_by_worker(client: Api) -> dict[str, list[int]]:
    """The ids of the running tasks of each worker (from the tasks' own worker field)."""
    held: dict[str, list[int]] = defaultdict(list)
    for page in range(RUNNING_PAGES):
        request = pb.TaskListRequest(limit=PAGE, offset=page * PAGE, status=pb.RUNNING)
        found = client.call("ListTasks", request, pb.TaskList)
        for t in found.tasks:
            held[t.worker_id].append(t.id64)
        if len(found.tasks) < PAGE:
            break
    return held


def _tasks_cell(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in sorted(ids)[:TASKS_SHOWN])
    return f"{shown} +{len(ids) - TASKS_SHOWN}" if len(ids) > TASKS_SHOWN else shown


@click.command(cls=Command)
@output_option
@click.pass_context
def workers(ctx: click.Context, output: str) -> None:
    """List workers, live ones first, with their tasks."""

    def fetch(client: Api) -> tuple[pb.ListWorkersResponse, dict[str, list[int]]]:
        found = client.call("ListWorkers", pb.ListWorkersRequest(), pb.ListWorkersResponse)
        return found, ({} if is_machine(output) else running_by_worker(client))

    found, held = call(ctx, fetch)
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    wide = output == "wide"
    rows = []
    for w in found.workers:
        state = "alive" if w.alive else "gone"
        seen = w.last_heartbeat_at if wide else age(w.last_heartbeat_at)
        tasks = _tasks_cell(held.get(w.id, []))
        kind = w.kind or "worker"  # a server from before agents says nothing: a worker
        rows.append((w.id, w.host, w.pid, f"{w.running}/{w.concurrency}", state, kind, seen, tasks))
    columns = ("ID", "HOST", "PID", "RUNNING", "STATE", "KIND", "LAST HEARTBEAT" if wide else "SEEN", "TASKS")
    table(columns, rows, wrap=("TASKS",))
