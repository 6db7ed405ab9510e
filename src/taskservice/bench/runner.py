"""Running the benchmark: a fresh database and API server, every scenario in turn, one table at the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from taskservice.bench.context import Context
from taskservice.bench.cpu import SERVER_APPLICATION, named_connections
from taskservice.bench.database import BenchDatabase, DatabaseUnavailable
from taskservice.bench.processes import ServerProcess, stop_all
from taskservice.bench.results import Report, ScenarioResult
from taskservice.bench.scenarios import (
    agents,
    ceiling,
    cli_start,
    client,
    enqueue,
    latency,
    limits,
    memory,
    peer,
    processing,
    scale,
    tracing,
    workflows,
)
from taskservice.bench.sizes import FULL, QUICK
from taskservice.bench.soak import run_soak, soak_sizes
from taskservice.bench.table import render
from taskservice.config import Settings
from taskservice.db.connect import create_pool
from taskservice.store import Store

POOL_SIZE = 40  # the raw ceiling's 32 connections and then some


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Context, ScenarioResult], Awaitable[None]]


# The ceiling runs first, so our figures can be shown as a share of it; memory reads the others.
SCENARIOS = tuple(
    Scenario(module.NAME, module.TITLE, module.run)
    for module in (
        ceiling,
        enqueue,
        processing,
        peer,
        latency,
        scale,
        memory,
        cli_start,
        client,
        agents,
        limits,
        workflows,
        tracing,
    )
)


def machine_facts() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def run_scenario(scenario: Scenario, ctx: Context) -> ScenarioResult:
    """Run one scenario; a failure is recorded in its result (and the run goes on)."""
    result = ScenarioResult(scenario.name, scenario.title)
    ctx.console.print(f"[bold]{scenario.title}[/bold]")
    started = time.perf_counter()
    try:
        await scenario.run(ctx, result)
        result.completed = True
    except Exception as error:  # any failure of one scenario is reported, not fatal to the run
        result.error = f"{type(error).__name__}: {error}"
        ctx.console.print(f"[red]  failed: {result.error}[/red]")
    result.seconds = time.perf_counter() - started
    ctx.console.print(f"[dim]  {result.seconds:.0f}s[/dim]")
    if result.lost:
        ctx.console.print(f"[red]  {result.lost} task(s) lost[/red]")
    return result


async def _run_all(
    settings: Settings, report: Report, console: Console, log_dir: Path, soak: Soak | None = None
) -> None:
    sizes = soak_sizes(soak.minutes) if soak else QUICK if report.quick else FULL
    with BenchDatabase(settings) as database:
        report.machine["postgresql"] = database.server_facts()
        console.print(
            f"[dim]database {database.name} ({'embedded' if database.embedded else 'DATABASE_URL'})"
        )
        pool = await create_pool(database.url, max_size=POOL_SIZE)
        # Named, so that the agents scenario counts its backends' CPU with its own (bench/cpu.py).
        server = ServerProcess(named_connections(database.url, SERVER_APPLICATION), log_dir)
        try:
            await server.wait_ready(sizes.step_timeout)
            ctx = Context(
                sizes, database.url, pool, Store(pool), server, log_dir, console, admin_url=database.admin_url
            )
            if soak is not None:
                soak.ok = await run_soak(ctx, soak.minutes, soak.json_path)
                return
            for scenario in SCENARIOS:
                report.scenarios.append(await run_scenario(scenario, ctx))
        finally:
            stop_all([server])
            await pool.close()


@dataclass
class Soak:
    """`--soak MINUTES`: the soak instead of the scenarios (bench/soak.py)."""

    minutes: float
    json_path: str | None
    ok: bool = False


def _console() -> Console:
    console = Console()
    # A CI log or a pipe: one line per row, not a table wrapped at 80 columns.
    return console if console.is_terminal else Console(width=200)


async def run_bench(
    settings: Settings,
    *,
    quick: bool = False,
    json_path: str | None = None,
    console: Console | None = None,
    soak_minutes: float | None = None,
) -> bool:
    """Run every scenario, print the table (and write `json_path`); True when nothing failed or was lost.

    With `soak_minutes`, run the soak instead (its own table and JSON).
    """
    console = console or _console()
    report = Report(quick=quick, machine=machine_facts())
    soak = Soak(soak_minutes, json_path) if soak_minutes else None
    if soak is None:
        console.print(f"[dim]{(QUICK if quick else FULL).describe()}[/dim]")
    log_dir = Path(tempfile.mkdtemp(prefix="taskservice-bench-"))
    started = time.perf_counter()
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    terminated = asyncio.Event()

    def terminate() -> None:
        terminated.set()
        if main is not None:
            main.cancel()

    # SIGTERM ends the run like Ctrl-C: processes stopped, database dropped.
    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        await _run_all(settings, report, console, log_dir, soak)
    except DatabaseUnavailable as error:
        console.print(f"[red]{error}[/red]")
        shutil.rmtree(log_dir, ignore_errors=True)
        return False
    except asyncio.CancelledError:
        if not terminated.is_set():
            raise
        console.print(f"[red]stopped by SIGTERM; process logs kept in {log_dir}[/red]")
        return False
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
    if soak is not None:
        if soak.ok:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            console.print(f"[red]process logs kept in {log_dir}[/red]")
        return soak.ok
    report.seconds = time.perf_counter() - started
    report.link_ceilings()
    console.print(render(report))
    if json_path:
        text = json.dumps(report.to_json(), indent=2) + "\n"
        await asyncio.to_thread(Path(json_path).write_text, text)
    if report.ok:
        shutil.rmtree(log_dir, ignore_errors=True)
        console.print(f"every scenario completed, no task lost ({report.seconds:.0f}s)")
    else:
        console.print(f"[red]a scenario failed or lost tasks; process logs kept in {log_dir}[/red]")
    return report.ok
