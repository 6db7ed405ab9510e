"""Agents: the processing scenario's no-op tasks drained by agent processes (`task-cli serve
--address`) through the API server's dispatch stream, beside the same number of direct workers.

Beside each rate, the CPU each drain cost per 1,000 tasks: the agents', the run's API server's and its
PostgreSQL backends' (the agents have no connection of their own), beside the direct workers' and
their backends' (bench/cpu.py).
"""

from __future__ import annotations

from taskservice.bench.context import Context
from taskservice.bench.cpu import SERVER_APPLICATION, Part, split_figures
from taskservice.bench.processes import Child
from taskservice.bench.results import Figure, ScenarioResult
from taskservice.bench.scenarios.processing import drain_rates
from taskservice.bench.stats import best

NAME = "agents"
TITLE = "i. Agents (no-op tasks through the API server, beside direct workers)"

RATIO_TARGET = 0.9  # of the direct workers' drain rate (processing.workers_N)


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes

    def parts(agents: list[Child]) -> list[Part]:
        return [Part("agents", agents), Part("server", [ctx.server], SERVER_APPLICATION)]

    for processes in sizes.worker_processes:
        rates, cpu = await drain_rates(ctx, result, ctx.agents(processes), parts)
        label = f"{processes} agent process{'es' if processes > 1 else ''} x {sizes.worker_concurrency}"
        result.figures.append(
            Figure(
                f"agents.agents_{processes}",
                label,
                best(rates),
                "tasks/s",
                raw_key=f"processing.workers_{processes}",
                ratio_target=RATIO_TARGET,
                compared_with="direct workers",
                details={"tasks": sizes.drain_tasks, "rounds": [round(r) for r in rates]},
            )
        )
        result.figures += split_figures(
            f"agents.agents_{processes}_cpu",
            label,
            cpu,
            {},
            total="with the API server and its PostgreSQL backends",
            beside=f"processing.workers_{processes}_cpu",
            compared_with="direct workers",
        )
