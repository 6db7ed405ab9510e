"""Memory: the peak resident size of the worker processes (concurrency 100) and of the API server."""

from __future__ import annotations

from taskservice.bench.context import Context
from taskservice.bench.results import Figure, ScenarioResult, Target

NAME = "memory"
TITLE = "f. Memory (peak RSS)"

MB = 1024 * 1024
WORKER_TARGET = Target("<=", 150)


async def run(ctx: Context, result: ScenarioResult) -> None:
    """Reads what the earlier scenarios' processes reached: this one runs last and adds no load."""
    if not ctx.worker_peak_rss:
        raise RuntimeError("no worker ran: the processing scenario must run first")
    result.figures.append(
        Figure(
            "memory.worker",
            f"worker, concurrency {ctx.sizes.worker_concurrency} (max of {len(ctx.worker_peak_rss)})",
            max(ctx.worker_peak_rss) / MB,
            "MB",
            target=WORKER_TARGET,
            details={"each_mb": [round(p / MB, 1) for p in ctx.worker_peak_rss]},
        )
    )
    result.figures.append(
        Figure("memory.server", "API server, through every scenario", ctx.server_peak_rss() / MB, "MB")
    )
