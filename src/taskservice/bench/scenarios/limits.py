"""Limits: the processing scenario's drain under a concurrency limit per key and under a rate limit,
each beside the same drain without a limit, their rounds interleaved (issue 21).

The three drains run the same no-op `sleep` tasks, whose parameter `customer` takes `limit_keys`
values, with the same worker processes; only the limit set on the `sleep` type differs:
- none (no limit row at all);
- at most `limit_concurrency` attempts at once per customer: 2,000 slots over 1,000 keys, more than
  the workers' 400, so that what the figure shows is what the claim's walk over the keys costs;
- at most `rate_limit` starts per second for the whole type (no key): the bottleneck by design. Its
  start rate is the starts over the time from the first to the last plus one period: a limit of n per
  period allows at most n in every period that time touches, so this is never above the limit while
  the limit holds. The most starts in any one period, read from the attempts' own started_at, is
  shown against the limit too: both are targets, met or not, never an assertion that fails a run.
Each drain's CPU is that of the worker processes and of the PostgreSQL backends serving them, per
task (bench/cpu.py). A limit is removed, its rows gone, once its drain is done.
"""

from __future__ import annotations

from taskservice.bench.context import Context, sql
from taskservice.bench.cpu import CpuPerTask, Drains
from taskservice.bench.processes import Child
from taskservice.bench.results import Figure, ScenarioResult, Target
from taskservice.bench.scenarios.processing import drain_once
from taskservice.bench.stats import best
from taskservice.model import Rate
from taskservice.store import limits

NAME = "limits"
TITLE = "k. Limits (no-op tasks under a limit on their type, beside the same drain without one)"

TASK_TYPE = "sleep"
KEY = "customer"
PERIOD = 1.0  # seconds: the rate limit is `rate_limit`/s
SET_BY = "task-cli bench"


async def _drain(
    ctx: Context, result: ScenarioResult, workers: list[Child], drains: Drains, count: int
) -> None:
    before = await ctx.cpu_times(workers)
    rate, incomplete = await drain_once(ctx, count, ctx.sizes.limit_keys)
    drains.cpu.append(CpuPerTask.between(before, await ctx.cpu_times(workers), count))
    drains.rates.append(rate)
    result.tasks += count
    result.lost += incomplete


async def _limit(ctx: Context, concurrency: int | None, rate: Rate | None, key: str | None) -> None:
    """The limit on the drains' type, set at run time as `task-cli` would set it."""
    changes = {"concurrency": concurrency, "rate": rate, "key": key}
    await limits.set_limit(ctx.pool, "type", TASK_TYPE, changes, SET_BY)


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    processes = max(sizes.worker_processes)
    rate = Rate(sizes.rate_limit, PERIOD)
    unlimited, per_key, rate_limited = (
        Drains(NAME, name, "unlimited") for name in ("unlimited", "per_key", "rate")
    )
    start_rates: list[float] = []
    most_in_a_period: list[int] = []
    await ctx.reset()
    try:
        async with ctx.workers(processes) as workers:
            # Not measured: a first claim with and without a limit on each worker's connections.
            warm_up = processes * sizes.worker_concurrency
            await _limit(ctx, sizes.limit_concurrency, None, KEY)
            await _drain(ctx, result, workers, Drains(NAME, "warm_up", "unlimited"), warm_up)
            await ctx.clear_limits()
            await _drain(ctx, result, workers, Drains(NAME, "warm_up", "unlimited"), warm_up)
            for _ in range(sizes.rounds):
                await _drain(ctx, result, workers, unlimited, sizes.drain_tasks)

                await _limit(ctx, sizes.limit_concurrency, None, KEY)
                await _drain(ctx, result, workers, per_key, sizes.drain_tasks)
                await ctx.clear_limits()

                await _limit(ctx, None, rate, None)
                await _drain(ctx, result, workers, rate_limited, sizes.rate_limited_tasks)
                await ctx.clear_limits()
                starts = await ctx.pool.fetchrow(sql("starts"))
                assert starts is not None
                start_rates.append(starts["starts"] / (starts["seconds"] + PERIOD))
                most_in_a_period.append(await ctx.value("most_starts_in_a_period", PERIOD))
    finally:
        await ctx.clear_limits()

    drained = f"{sizes.drain_tasks:,} tasks, {processes} worker processes x {sizes.worker_concurrency}"
    per_key_label = f"{sizes.limit_concurrency} per key, {sizes.limit_keys:,} keys"
    result.figures += [
        Figure(
            "limits.unlimited", f"no limit: {drained}", best(unlimited.rates), "tasks/s",
            details={"rounds": [round(r) for r in unlimited.rates]},
        ),
        *unlimited.cpu_figures("no limit"),
        Figure(
            "limits.per_key", f"{per_key_label}: {drained}", best(per_key.rates), "tasks/s",
            raw_key="limits.unlimited", compared_with="unlimited",
            details={"rounds": [round(r) for r in per_key.rates]},
        ),
        *per_key.cpu_figures(per_key_label),
        Figure("limits.rate", f"rate limit {rate} on the type, no key", float(rate.count), "tasks/s"),
        Figure(
            "limits.rate_starts",
            f"{rate}: starts / (first to last start + {PERIOD:g} s), {sizes.rate_limited_tasks:,} tasks",
            max(start_rates), "tasks/s", target=Target("<=", rate.count),
            raw_key="limits.rate", compared_with="the limit",
            details={"rounds": [round(r, 1) for r in start_rates]},
        ),
        Figure(
            "limits.rate_most", f"{rate}: most starts in any {PERIOD:g} s", float(max(most_in_a_period)),
            "starts", target=Target("<=", rate.count), details={"rounds": most_in_a_period},
        ),
        *rate_limited.cpu_figures(str(rate)),
    ]  # fmt: skip
