"""Tracing: the processing scenario's drain with tracing off and with it on, rounds interleaved, in the
same run (issue 24: tracing off costs nothing measurable; tracing on is reported against off).

Both drain the same no-op `sleep` tasks with as many worker processes, at the same concurrency, as
scenario b's largest level. Tracing is on or off in a process from its start, so every drain has
fleets of its own: started, warmed up (one unmeasured drain on each worker's connections), measured,
stopped. The rounds alternate which goes first.
- off: the workers get no OTEL_* variable at all (those of the benchmark's own environment removed);
- on: OTEL_EXPORTER_OTLP_ENDPOINT names an OTLP/HTTP receiver the benchmark runs itself (bench/
  otlp_sink.py), and OTEL_SERVICE_NAME a name of ours; the OpenTelemetry SDK's other settings are its
  defaults (OTEL_BSP_*: batches of up to 512 spans, every 5 s or as soon as 512 are waiting).
Each shows its rate, and its CPU per task (the workers' and their PostgreSQL backends', bench/cpu.py),
on beside off. The spans of a batch not sent yet when a drain ends go after its CPU was read (at
most 512 a process, sent as it stops): not counted in it.

What the receiver got while each drain's fleets ran, their stop included (when a process sends what is
left), is shown too: requests, bytes and spans per task. The targets: at least one request from the
drains with tracing on, none from those with it off; a miss is no speed but tracing that silently did
not happen (or did where it should not), and fails the scenario, its figures shown.
Without `taskservice[otel]`, the drains with tracing on are skipped, their figures `-`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib.util import find_spec

from taskservice.bench.context import Context
from taskservice.bench.cpu import CpuPerTask, Drains
from taskservice.bench.otlp_sink import Received, SpanSink
from taskservice.bench.results import Figure, ScenarioResult, Target
from taskservice.bench.scenarios.processing import drain_once
from taskservice.bench.sizes import Sizes
from taskservice.bench.stats import best

NAME = "tracing"
TITLE = "m. Tracing (the same drain with tracing off and on, spans sent over OTLP/HTTP to the bench)"

SERVICE_NAME = "taskservice-bench-worker"
OTEL = "OTEL_"
# What the OTLP/HTTP exporter needs; opentelemetry-proto comes with it (the sink parses with it).
OTEL_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


def tracing_installed() -> bool:
    """Whether `taskservice[otel]` is installed (else the workers could not trace)."""
    try:
        return all(find_spec(module) is not None for module in OTEL_MODULES)
    except ImportError:  # a parent package missing
        return False


@dataclass
class Mode:
    """The drains with tracing off or on: their rates and CPU, what the sink received while their
    fleets ran, and how many tasks those fleets drained (warm-ups too)."""

    drains: Drains
    env: dict[str, str]
    received: Received = field(default_factory=Received)
    tasks: int = 0

    async def round(self, ctx: Context, result: ScenarioResult, sink: SpanSink | None) -> None:
        sizes = ctx.sizes
        processes = max(sizes.worker_processes)
        before = sink.received() if sink else Received()
        async with ctx.workers(processes, unset_prefix=OTEL, **self.env) as workers:
            # Not measured: a first drain on each worker's connections (and its exporter's).
            warm_up = processes * sizes.worker_concurrency
            _, incomplete = await drain_once(ctx, warm_up)
            result.tasks += warm_up
            result.lost += incomplete
            cpu_before = await ctx.cpu_times(workers)
            rate, incomplete = await drain_once(ctx, sizes.drain_tasks)
            self.drains.cpu.append(
                CpuPerTask.between(cpu_before, await ctx.cpu_times(workers), sizes.drain_tasks)
            )
            self.drains.rates.append(rate)
            result.tasks += sizes.drain_tasks
            result.lost += incomplete
            self.tasks += warm_up + sizes.drain_tasks
        # The workers are gone: their last spans were sent as they stopped.
        if sink:
            self.received += sink.received() - before


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    installed = tracing_installed()
    off = Mode(Drains(NAME, "off", "off"), {})
    on = Mode(Drains(NAME, "on", "off"), {})
    await ctx.reset()
    if not installed:
        ctx.console.print("[yellow]  taskservice[otel] not installed: the drains with tracing on are skipped")
        result.details["skipped"] = "tracing on: taskservice[otel] is not installed"
        for _ in range(sizes.rounds):
            await off.round(ctx, result, None)
    else:
        with SpanSink() as sink:
            on.env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_SERVICE_NAME": SERVICE_NAME}
            for i in range(sizes.rounds):
                for mode in (off, on) if i % 2 == 0 else (on, off):
                    await mode.round(ctx, result, sink)
            result.details["services"] = sorted(sink.services)
    result.figures += figures(sizes, off, on if installed else None)
    # Not a speed: tracing that silently did not happen (or happened where it should not) is a bug,
    # and fails the scenario, its figures shown.
    if installed and not on.received.requests:
        raise RuntimeError("the workers with tracing on sent the receiver no span")
    if off.received.requests:
        raise RuntimeError(f"the workers with tracing off sent the receiver {off.received.requests} requests")


def figures(sizes: Sizes, off: Mode, on: Mode | None) -> list[Figure]:
    """The scenario's figures; `on` None: skipped (`taskservice[otel]` not installed), shown as `-`."""
    processes = max(sizes.worker_processes)
    drained = f"{sizes.drain_tasks:,} tasks, {processes} worker processes x {sizes.worker_concurrency}"
    on_drains = on.drains if on else Drains(NAME, "on", "off")
    shares = [round(n / f, 3) for n, f in zip(on_drains.rates, off.drains.rates, strict=False)]
    spans = on.received.spans / on.tasks if on and on.tasks else math.nan
    return [
        Figure(
            f"{NAME}.off", f"tracing off: {drained}", best(off.drains.rates), "tasks/s",
            raw_key=f"processing.workers_{processes}", compared_with="scenario b",
            details={"rounds": [round(r) for r in off.drains.rates]},
        ),
        *off.drains.cpu_figures("tracing off"),
        Figure(
            f"{NAME}.on", f"tracing on, OTLP/HTTP to the bench: {drained}", best(on_drains.rates), "tasks/s",
            raw_key=f"{NAME}.off", compared_with="tracing off",
            details={"rounds": [round(r) for r in on_drains.rates], "share_each_round": shares},
        ),
        *on_drains.cpu_figures("tracing on"),
        Figure(
            f"{NAME}.off_requests", "export requests received from the workers with tracing off",
            float(off.received.requests), "requests", target=Target("<=", 0),
        ),
        Figure(
            f"{NAME}.on_requests", "export requests received from the workers with tracing on",
            float(on.received.requests) if on else math.nan, "requests",
            target=Target(">=", 1) if on else None,
            details={"bytes": on.received.bytes, "bad": on.received.bad, "tasks": on.tasks} if on else {},
        ),
        Figure(
            f"{NAME}.on_spans", "spans received per task drained with tracing on (warm-ups too)",
            spans, "spans", details={"spans": on.received.spans} if on else {},
        ),
    ]  # fmt: skip
