"""CLI start: the wall time of `task-cli --help` and of `task-cli task list` against the API server."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from taskservice.bench.context import Context
from taskservice.bench.results import Figure, ScenarioResult, Target

NAME = "cli_start"
TITLE = "h. CLI start (median wall time of a whole command)"

TARGET = Target("<=", 200)  # ms


def task_cli() -> list[str]:
    """The command a user runs: the installed `task-cli` script beside this Python, else the module."""
    script = Path(sys.executable).parent / "task-cli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "taskservice.cli"]


def _median_ms(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def run(ctx: Context, result: ScenarioResult) -> None:
    runs = ctx.sizes.cli_runs
    command = task_cli()
    for key, label, args in (
        ("cli.help", "task-cli --help", [*command, "--help"]),
        ("cli.list", "task-cli task list (local server)", [*command, "--address", ctx.server.address,
                                                           "task", "list"]),
    ):  # fmt: skip
        median = await asyncio.to_thread(_median_ms, args, runs)
        result.figures.append(Figure(key, f"{label}, median of {runs}", median, "ms", target=TARGET))
