"""Scale: API reads and claims with a big table (1,000,000 tasks and their history by default)."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable

from taskservice.bench.context import Context, sql
from taskservice.bench.results import Figure, ScenarioResult, Target
from taskservice.bench.stats import percentile, summary_ms
from taskservice.gen.cloud.v1 import task_pb2 as pb

NAME = "scale"
TITLE = "e. Scale"

FILL_CHUNK = 100_000
P99_TARGET = Target("<=", 20)
TARGETED = {"get_status", "list_first", "history"}


async def fill(ctx: Context) -> float:
    """Put `scale_tasks` tasks (with history and attempts) in the tables; returns the seconds it took."""
    total, queued = ctx.sizes.scale_tasks, ctx.sizes.scale_queued
    started = time.perf_counter()
    await ctx.reset()
    for first in range(1, total + 1, FILL_CHUNK):
        last = min(first + FILL_CHUNK - 1, total)
        async with ctx.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql("fill_tasks"), first, last, total, queued)
            await conn.execute(sql("fill_history"), first, last)
            await conn.execute(sql("fill_executions"), first, last)
    await ctx.pool.execute(sql("analyze"))
    return time.perf_counter() - started


async def _timed(samples: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - started)
    return durations


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    total, samples = sizes.scale_tasks, sizes.scale_samples
    seconds = await fill(ctx)
    sizes_now = await ctx.pool.fetchrow(sql("table_sizes"))
    assert sizes_now is not None
    result.tasks = total
    result.lost = total - sizes_now["tasks"]
    result.details = {"tasks": sizes_now["tasks"], "history_rows": sizes_now["history"]}
    result.figures.append(
        Figure("scale.fill", f"fill {total:,} tasks (+ history, attempts; analyze)", seconds, "s")
    )
    finished = total - sizes.scale_queued
    rng = random.Random(7)
    async with ctx.api() as api:
        await api.call("GetStatus", pb.GetStatusRequest(), pb.GetStatusResponse)  # a first call connects
        reads: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
            (
                "get_status",
                "GetStatus",
                lambda: api.call("GetStatus", pb.GetStatusRequest(), pb.GetStatusResponse),
            ),
            (
                "list_first",
                "ListTasks, first page",
                lambda: api.call("ListTasks", pb.TaskListRequest(limit=30), pb.TaskList),
            ),
            (
                "list_filtered",
                "ListTasks, status=FAILED",
                lambda: api.call("ListTasks", pb.TaskListRequest(limit=30, status=pb.FAILED), pb.TaskList),
            ),
            (
                "list_deep",
                f"ListTasks, offset {total // 2:,}",
                lambda: api.call("ListTasks", pb.TaskListRequest(limit=30, offset=total // 2), pb.TaskList),
            ),
            (
                "history",
                "GetTaskHistory",
                lambda: api.call(
                    "GetTaskHistory",
                    pb.GetTaskHistoryRequest(id=rng.randint(1, finished)),
                    pb.GetTaskHistoryResponse,
                ),
            ),
        ]
        for key, label, call in reads:
            result.figures.extend(_percentiles(key, label, await _timed(samples, call)))
    durations = await _timed(samples, lambda: ctx.store.claim("bench-claimer", sizes.claim_batch))
    result.figures.extend(_percentiles("claim", f"claim {sizes.claim_batch} (store)", durations))


def _percentiles(key: str, label: str, durations: list[float]) -> list[Figure]:
    p50 = percentile(durations, 0.5) * 1000
    p99 = percentile(durations, 0.99) * 1000
    return [
        Figure(f"scale.{key}_p50", f"{label} p50", p50, "ms", details={"ms": summary_ms(durations)}),
        Figure(f"scale.{key}_p99", f"{label} p99", p99, "ms", target=P99_TARGET if key in TARGETED else None),
    ]
