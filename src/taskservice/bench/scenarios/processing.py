"""Processing: no-op tasks drained end to end (claimed, history written, succeeded) by worker processes.

Beside each rate, the CPU time each drain cost per 1,000 tasks: the workers' and their PostgreSQL
backends' (bench/cpu.py), what the agents scenario shows its own beside.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from taskservice.bench.context import Context, Processes
from taskservice.bench.cpu import WORKER_APPLICATION, CpuSplit, Part, split_figures
from taskservice.bench.processes import Child, wait_until
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
    ctx: Context, result: ScenarioResult, fleet: Processes, parts: Callable[[list[Child]], list[Part]]
) -> tuple[list[float], list[CpuSplit]]:
    """The drain rate of each round, on a fresh database, while `fleet` (the processes that drain)
    runs; and the CPU each round cost per task, of the `parts` that the fleet's processes make."""
    await ctx.reset()
    rates, cpu = [], []
    async with fleet as processes:
        watched = parts(processes)
        for _ in range(ctx.sizes.rounds):
            before = await ctx.part_times(watched)
            rate, incomplete = await drain_once(ctx)
            cpu.append(CpuSplit.between(before, await ctx.part_times(watched), ctx.sizes.drain_tasks))
            rates.append(rate)
            result.tasks += ctx.sizes.drain_tasks
            result.lost += incomplete
    return rates, cpu


def workers(processes: list[Child]) -> list[Part]:
    return [Part("workers", processes, WORKER_APPLICATION)]


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    for processes in sizes.worker_processes:
        rates, cpu = await drain_rates(ctx, result, ctx.workers(processes), workers)
        label = f"{processes} worker process{'es' if processes > 1 else ''} x {sizes.worker_concurrency}"
        result.figures.append(
            Figure(
                f"processing.workers_{processes}",
                label,
                best(rates),
                "tasks/s",
                target=TARGETS.get(processes),
                raw_key="ceiling.drain",
                ratio_target=RATIO_TARGETS.get(processes),
                details={"tasks": sizes.drain_tasks, "rounds": [round(r) for r in rates]},
            )
        )
        key, total = f"processing.workers_{processes}_cpu", "with their PostgreSQL backends"
        result.figures += split_figures(key, label, cpu, {}, total=total)
