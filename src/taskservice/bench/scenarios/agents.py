"""Agents: the processing scenario's no-op tasks drained by agent processes (`task-cli serve
--address`) through the API server's dispatch stream, beside the same number of direct workers."""

from __future__ import annotations

from taskservice.bench.context import Context
from taskservice.bench.results import Figure, ScenarioResult
from taskservice.bench.scenarios.processing import drain_rates
from taskservice.bench.stats import best

NAME = "agents"
TITLE = "i. Agents (no-op tasks through the API server, beside direct workers)"

RATIO_TARGET = 0.7  # of the direct workers' drain rate (processing.workers_N)


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    for processes in sizes.worker_processes:
        rates = await drain_rates(ctx, result, ctx.agents(processes))
        result.figures.append(
            Figure(
                f"agents.agents_{processes}",
                f"{processes} agent process{'es' if processes > 1 else ''} x {sizes.worker_concurrency}",
                best(rates),
                "tasks/s",
                raw_key=f"processing.workers_{processes}",
                ratio_target=RATIO_TARGET,
                compared_with="direct workers",
                details={"tasks": sizes.drain_tasks, "rounds": [round(r) for r in rates]},
            )
        )
