"""`task-cli end2end`: create a batch of real tasks, follow them live, summarise, fail unless all succeed."""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from taskservice.cli.client import Api, api
from taskservice.cli.group import Command
from taskservice.cli.output import emit_data, is_machine, output_option, table
from taskservice.gen.cloud.v1 import task_pb2 as pb

BATCH = 500
POLL_SECONDS = 0.5


def workload(run: str, count: int) -> list[pb.CreateTaskRequest]:
    """A mix of run_query and send_email tasks that succeed on the default local setup."""
    tasks = []
    for i in range(1, count + 1):
        name = f"Task {i} [{run}]"
        if i % 2:
            parameters = {"query": f"SELECT {i} AS n, now() AS at, count(*) FROM generate_series(1, 100)"}
            tasks.append(
                pb.CreateTaskRequest(name=name, type="run_query", payload=pb.Payload(parameters=parameters))
            )
        else:
            parameters = {
                "recipient": f"user{i}@example.com",
                "subject": f"end2end {run} #{i}",
                "body": "Sent by task-cli end2end.",
            }
            tasks.append(
                pb.CreateTaskRequest(name=name, type="send_email", payload=pb.Payload(parameters=parameters))
            )
    return tasks


@dataclass
class Tally:
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled


def count(client: Api, run: str, status: int) -> int:
    request = pb.TaskListRequest(limit=1, name_contains=f"[{run}]", status=status)  # type: ignore[arg-type]
    return int(client.call("ListTasks", request, pb.TaskList).total)


def tally(client: Api, run: str) -> Tally:
    return Tally(
        succeeded=count(client, run, pb.SUCCEEDED),
        failed=count(client, run, pb.FAILED),
        cancelled=count(client, run, pb.CANCELLED),
    )


def _words(key: str) -> str:
    """`queueToStartP50Ms` as `queue to start p50 ms`."""
    return "".join(f" {c.lower()}" if c.isupper() else c for c in key)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


@click.command(cls=Command)
@click.option("--num-tasks", "-n", "--count", "num_tasks", type=click.IntRange(1, 100_000), default=100,
              show_default=True, help="How many tasks to create.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=1), default=180.0, show_default=True,
              help="Seconds to wait for every task to finish.")  # fmt: skip
@output_option
@click.pass_context
def end2end(ctx: click.Context, num_tasks: int, timeout: float, output: str) -> None:
    """Create N tasks (run_query and send_email), watch them finish, and report.

    Exits non-zero unless every task finished and none failed within the timeout.
    """
    run = uuid.uuid4().hex[:8]
    console = Console(stderr=True)
    with api(ctx) as client:
        started = time.monotonic()
        ids: list[int] = []
        requests = workload(run, num_tasks)
        for first in range(0, num_tasks, BATCH):
            chunk = requests[first : first + BATCH]
            request = pb.CreateTasksRequest(tasks=chunk)
            ids.extend(client.call("CreateTasks", request, pb.CreateTasksResponse).ids64)
        created = time.monotonic()
        # The count and the time come first: at 80 columns the bar shrinks, they stay whole.
        columns = (TextColumn("[bold]{task.description}"), MofNCompleteColumn(), TimeElapsedColumn(),
                   BarColumn(bar_width=20), TextColumn("{task.fields[detail]}"))  # fmt: skip
        with Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task(f"end2end {run}", total=num_tasks, detail="")
            now = tally(client, run)
            while now.finished < num_tasks and time.monotonic() - created < timeout:
                time.sleep(POLL_SECONDS)
                now = tally(client, run)
                progress.update(
                    bar, completed=now.finished,
                    detail=f"ok {now.succeeded} failed {now.failed} cancelled {now.cancelled}",
                )  # fmt: skip
        elapsed = time.monotonic() - created
        waits: list[float] = []
        runs: list[float] = []
        for task_id in ids[: min(len(ids), 1000)]:  # a sample is enough for percentiles
            asked = pb.ListTaskExecutionsRequest(id64=task_id)
            executions = client.call("ListTaskExecutions", asked, pb.ListTaskExecutionsResponse).executions
            if executions:
                waits.append(executions[0].started_after_seconds)
                runs.extend(e.duration_seconds for e in executions if e.finished_at)
    # The keys follow the API's JSON convention (lowerCamelCase), in this order.
    summary = {
        "run": run,
        "tasks": num_tasks,
        "succeeded": now.succeeded,
        "failed": now.failed,
        "cancelled": now.cancelled,
        "unfinished": num_tasks - now.finished,
        "createSeconds": round(created - started, 3),
        "elapsedSeconds": round(elapsed, 3),
        "throughputPerSecond": round(now.finished / elapsed, 1) if elapsed else 0.0,
        "queueToStartP50Ms": round(percentile(waits, 50) * 1000, 1),
        "queueToStartP95Ms": round(percentile(waits, 95) * 1000, 1),
        "runP50Ms": round(percentile(runs, 50) * 1000, 1),
        "runP95Ms": round(percentile(runs, 95) * 1000, 1),
    }
    if is_machine(output):
        emit_data(summary, output)
    else:
        table(("RESULT", "VALUE"), [(_words(k), v) for k, v in summary.items()])
    if now.finished < num_tasks:
        raise click.ClickException(
            f"{num_tasks - now.finished} of {num_tasks} tasks did not finish within {timeout:g}s"
        )
    if now.failed or now.cancelled:
        raise click.ClickException(f"{now.failed} failed and {now.cancelled} cancelled of {num_tasks} tasks")
