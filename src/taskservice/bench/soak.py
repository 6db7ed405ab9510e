"""The soak (`task-cli bench --soak MINUTES`): enqueue and drain at half the measured maximum for long.

It shows whether a long run stays flat: each minute, the throughput, the p99 from enqueue to start,
the size of every task table and its indexes, their dead tuples, and how often they were vacuumed by
the maintenance job and by autovacuum (the job vacuums only what autovacuum leaves). With retention
deleting what finished two minutes ago, the tables and the latency must not grow.

It ends on time whatever the backlog: the enqueuer stops at MINUTES (a call still waiting then is
given up), and the last tasks get drain_seconds() to finish; what is left then is reported (`left`,
and the soak fails: the drain fell behind), rather than waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table

from taskservice.bench.client import Client
from taskservice.bench.context import Context, sql
from taskservice.bench.processes import BenchTimeout, ServerProcess, stop_all, wait_until
from taskservice.bench.scenarios.enqueue import new_task
from taskservice.bench.sizes import FULL, Sizes
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.store import Pool

WORKERS = 4
CALLS_PER_SECOND = 10  # the enqueuer sends a CreateTasks call every 100 ms
MB = 1024 * 1024
CALL_GRACE = 5.0  # a CreateTasks call still waiting this long past the enqueuer's end is given up
# Retention as short as a soak can check: what finished two minutes ago is deleted, every 10 s.
RETENTION = {"RETENTION_SUCCEEDED": "2m", "RETENTION_FAILED": "2m", "RETENTION_INTERVAL": "10s"}


@dataclass
class Minute:
    """One line of the soak's curve."""

    minute: float  # since the soak began, at the end of this sample
    tasks_per_s: float
    to_start_p99_ms: float
    waiting: int
    mb: dict[str, float] = field(default_factory=dict)  # heap and index megabytes, by table
    dead: dict[str, int] = field(default_factory=dict)
    live: dict[str, int] = field(default_factory=dict)
    # Vacuums of the task tables since the soak's database was made, all three together: by the
    # maintenance job (which vacuums only what autovacuum does not: worker/maintenance.py) and by
    # autovacuum.
    vacuums: int = 0
    autovacuums: int = 0


@dataclass
class Soak:
    minutes: float
    max_rate: float = 0.0
    rate: float = 0.0
    enqueued: int = 0
    curve: list[Minute] = field(default_factory=list)
    left: int = 0  # tasks still waiting or running when the soak's drain time was up
    ok: bool = False
    error: str = ""


async def measure_max(ctx: Context, api: Client, count: int) -> float:
    """Tasks/s of the soak's workers draining `count` tasks enqueued at once through the API."""
    await ctx.clear_tasks()
    started = time.perf_counter()
    for start in range(0, count, 1000):
        request = pb.CreateTasksRequest(tasks=[new_task("soak-max")] * min(1000, count - start))
        await api.call("CreateTasks", request, pb.CreateTasksResponse)

    async def drained() -> bool:
        return bool(await ctx.value("succeeded_kept") >= count)

    await wait_until(drained, ctx.sizes.step_timeout, f"{count} tasks to succeed", interval=0.05)
    return count / (time.perf_counter() - started)


def drain_seconds(minutes: float) -> float:
    """How long the last tasks get to finish once the enqueuer stopped: at half the measured maximum
    a flat soak has next to nothing waiting; 5% of the soak, 10 s at least and a minute at most."""
    return min(60.0, max(10.0, minutes * 60 * 0.05))


async def enqueue_at(api: Client, rate: float, seconds: float) -> int:
    """Send CreateTasks calls holding `rate` tasks/s for `seconds` (open loop); the tasks sent. It stops
    at `seconds` however slow the calls became (a slow server does not stretch the soak); a call still
    unanswered CALL_GRACE seconds after that is given up (its tasks, if created, are not counted)."""
    sent, owed = 0, 0.0
    begin = time.perf_counter()
    end = begin + seconds
    for tick in range(round(seconds * CALLS_PER_SECOND)):
        delay = begin + tick / CALLS_PER_SECOND - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.perf_counter() >= end:
            break  # the calls fell behind their ticks: the time is up all the same
        owed += rate / CALLS_PER_SECOND
        size = min(int(owed), 1000)
        if size:
            request = pb.CreateTasksRequest(tasks=[new_task("soak")] * size)
            answered = api.call("CreateTasks", request, pb.CreateTasksResponse)
            try:
                await asyncio.wait_for(answered, end + CALL_GRACE - time.perf_counter())
            except TimeoutError:
                break
            sent, owed = sent + size, owed - size
    return sent


async def drain(pool: Pool, seconds: float) -> int:
    """Wait up to `seconds` for every task to finish; the tasks still waiting or running then."""

    async def finished() -> bool:
        return bool(await pool.fetchval(sql("unfinished")) == 0)

    with contextlib.suppress(BenchTimeout):
        await wait_until(finished, seconds, "every soak task to finish", interval=0.2)
    return int(await pool.fetchval(sql("unfinished")))


async def sample(ctx: Context, began: datetime, since: datetime, until: datetime) -> Minute:
    row = await ctx.pool.fetchrow(sql("soak_minute"), since, until)
    assert row is not None
    seconds = (until - since).total_seconds()
    p99 = row["to_start_p99"]
    elapsed = (until - began).total_seconds() / 60
    minute = Minute(round(elapsed, 2), row["finished"] / seconds, (p99 or 0.0) * 1000, int(row["waiting"]))
    for table in await ctx.pool.fetch(sql("soak_sizes")):
        name = str(table["name"])
        minute.mb[name] = round(table["heap"] / MB, 1)
        minute.mb[f"{name} indexes"] = round(table["indexes"] / MB, 1)
        minute.dead[name] = int(table["dead"])
        minute.live[name] = int(table["live"])
        minute.vacuums += int(table["vacuums"])
        minute.autovacuums += int(table["autovacuums"])
    return minute


def render(soak: Soak) -> Table:
    table = Table(
        title=f"taskservice bench --soak {soak.minutes:g}: {soak.rate:,.0f} tasks/s "
        f"(half of the {soak.max_rate:,.0f}/s measured), retention 2 min",
        title_justify="left",
    )
    for name in ("min", "tasks/s", "to-start p99 ms", "waiting"):
        table.add_column(name, justify="right")
    names = [*soak.curve[0].mb] if soak.curve else []
    for name in names:
        table.add_column(f"{name} MB", justify="right")
    table.add_column("dead tuples", justify="right")
    table.add_column("vacuums: job / auto", justify="right")
    for m in soak.curve:
        table.add_row(
            f"{m.minute:g}", f"{m.tasks_per_s:,.0f}", f"{m.to_start_p99_ms:.1f}", f"{m.waiting:,}",
            *(f"{m.mb[n]:.1f}" for n in names), f"{sum(m.dead.values()):,}",
            f"{m.vacuums:,} / {m.autovacuums:,}",
        )  # fmt: skip
    return table


async def follow(ctx: Context, soak: Soak, sender: asyncio.Task[int], sample_seconds: float) -> None:
    """One line of the curve every `sample_seconds` while the enqueuer runs."""
    began = last = datetime.now(UTC)
    while not sender.done():
        await asyncio.wait({sender}, timeout=sample_seconds)
        now = datetime.now(UTC)
        soak.curve.append(await sample(ctx, began, last, now))
        minute = soak.curve[-1]
        ctx.console.print(
            f"  minute {minute.minute:g}: {minute.tasks_per_s:,.0f} tasks/s, to-start p99 "
            f"{minute.to_start_p99_ms:.1f} ms, {minute.waiting:,} waiting, "
            f"{sum(minute.mb.values()):.1f} MB, {sum(minute.dead.values()):,} dead tuples, "
            f"vacuums: {minute.vacuums:,} by the maintenance job, {minute.autovacuums:,} by autovacuum"
        )
        last = now


async def run_soak_in(ctx: Context, soak: Soak, sample_seconds: float) -> None:
    server = ServerProcess(ctx.database_url, ctx.log_dir, **RETENTION)
    try:
        await server.wait_ready(ctx.sizes.step_timeout)
        async with ctx.workers(WORKERS, **RETENTION), Client(server.address) as api:
            soak.max_rate = max([await measure_max(ctx, api, ctx.sizes.drain_tasks) for _ in range(2)])
            soak.rate = soak.max_rate / 2
            await ctx.clear_tasks()
            total = soak.minutes * 60
            sender = asyncio.create_task(enqueue_at(api, soak.rate, total))
            try:
                await follow(ctx, soak, sender, sample_seconds)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            soak.enqueued = sender.result()
            grace = drain_seconds(soak.minutes)
            soak.left = await drain(ctx.pool, grace)
            not_succeeded = await ctx.value("not_succeeded")
            if soak.left:
                raise RuntimeError(
                    f"{soak.left:,} soak task(s) still waiting or running {grace:g}s after the enqueuing "
                    "stopped: the drain fell behind (the soak ends on time and does not wait for them)"
                )
            if not_succeeded:
                raise RuntimeError(f"{not_succeeded} soak task(s) did not succeed")
    finally:
        stop_all([server])


async def run_soak(ctx: Context, minutes: float, json_path: str | None) -> bool:
    """Run the soak on the benchmark's database; True when every task enqueued succeeded."""
    soak = Soak(minutes)
    sample_seconds = min(60.0, minutes * 60 / 3)  # per minute; a short trial run still gets three
    try:
        await run_soak_in(ctx, soak, sample_seconds)
        soak.ok = True
    except Exception as error:  # reported in the output, and the exit code
        soak.error = f"{type(error).__name__}: {error}"
        ctx.console.print(f"[red]soak failed: {soak.error}[/red]")
    ctx.console.print(render(soak))
    if soak.left:
        ctx.console.print(f"{soak.left:,} tasks were left waiting or running when the soak ended")
    if json_path:
        text = json.dumps(asdict(soak), indent=2) + "\n"
        await asyncio.to_thread(Path(json_path).write_text, text)
    if soak.ok:
        ctx.console.print(f"every one of the {soak.enqueued:,} tasks enqueued succeeded")
    return soak.ok


def soak_sizes(minutes: float) -> Sizes:
    """The full sizes; the maximum is measured on 20,000 tasks (2,000 for a trial under a minute)."""
    return FULL if minutes >= 1 else Sizes(drain_tasks=2_000, rounds=1, step_timeout=120.0)
