"""Processing: no-op tasks drained end to end (claimed, history written, succeeded) by worker processes."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from taskservice.bench.context import Context
from taskservice.bench.processes import wait_until
from taskservice.bench.results import Figure, ScenarioResult, Target
from taskservice.bench.stats import best

NAME = "processing"
TITLE = "b. Processing (no-op tasks, end to end)"

TARGETS = {4: Target(">=", 10_000)}
RATIO_TARGETS = {4: 0.75}


async def drain_once(ctx: Context, count: int | None = None, keys: int = 0) -> tuple[float, int]:
    """Queue the tasks (`drain_tasks` unless `count`; `keys`: see Context.queue_no_ops) for the running
    workers; (tasks/s until the last one finished, incomplete ones)."""
    count = count or ctx.sizes.drain_tasks
    await ctx.clear_tasks()
    await ctx.queue_no_ops(count, "bench-drain", keys)
    queued_at = time.time()  # committed: the workers were told and start now

    async def drained() -> bool:
        return bool(await ctx.value("succeeded_kept") >= count)

    await wait_until(drained, ctx.sizes.step_timeout, f"{count} tasks to succeed", interval=0.1)
    finished_at: float = await ctx.value("last_finish")
    incomplete: int = await ctx.value("incomplete_lifecycles")
    return count / (finished_at - queued_at), incomplete


async def drain_rates(
    ctx: Context, result: ScenarioResult, fleet: AbstractAsyncContextManager[Any]
) -> list[float]:
    """The drain rate of each round, on a fresh database, while `fleet` (the processes that drain) runs."""
    await ctx.reset()
    rates = []
    async with fleet:
        for _ in range(ctx.sizes.rounds):
            rate, incomplete = await drain_once(ctx)
            rates.append(rate)
            result.tasks += ctx.sizes.drain_tasks
            result.lost += incomplete
    return rates


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    for processes in sizes.worker_processes:
        rates = await drain_rates(ctx, result, ctx.workers(processes))
        result.figures.append(
            Figure(
                f"processing.workers_{processes}",
                f"{processes} worker process{'es' if processes > 1 else ''} x {sizes.worker_concurrency}",
                best(rates),
                "tasks/s",
                target=TARGETS.get(processes),
                raw_key="ceiling.drain",
                ratio_target=RATIO_TARGETS.get(processes),
                details={"tasks": sizes.drain_tasks, "rounds": [round(r) for r in rates]},
            )
        )
