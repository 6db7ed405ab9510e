"""A worker process (`--worker`, PostgreSQL at DATABASE_URL) or an agent (`ADDRESS [TOKEN]`) for the
traces' tests (tests/test_traces.py), with the OTEL_* settings of its environment:

- `tr_traced` (sync, so in a thread): starts a span of its own under its context's span (`ctx.span`),
  logs a line (which carries the trace and span ids), and returns whether it had a span.
- `tr_flaky` (async): fails its first attempt, succeeds on the next.
- `tr_spawner`: spawns one `tr_traced` child and succeeds.
- `tr_modules`: returns whether any module of opentelemetry is loaded in this process, and whether
  it had a span.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import structlog

from taskservice import logs
from taskservice.config import get_settings
from taskservice.plugins import Registry
from taskservice.plugins.context import TaskContext
from taskservice.worker.serve import serve, serve_agent

log = structlog.get_logger("traced_worker")


def tr_traced(parameters: dict[str, str], ctx: TaskContext) -> dict[str, Any]:
    if ctx.span is not None:
        from opentelemetry import trace

        ctx.span.set_attribute("test.label", parameters.get("label", ""))
        with trace.get_tracer("traced_worker").start_as_current_span("plugin's own work"):
            log.info("traced plugin working", task_id=ctx.task_id)
    return {"had_span": ctx.span is not None}


async def tr_flaky(parameters: dict[str, str], ctx: TaskContext) -> dict[str, int]:
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails on purpose")
    return {"attempt": ctx.attempt}


def tr_spawner(parameters: dict[str, str], ctx: TaskContext) -> dict[str, bool]:
    ctx.spawn("tr_traced", {"label": "child"}, name="child")
    return {"spawned": True}


def tr_modules(parameters: dict[str, str], ctx: TaskContext) -> dict[str, Any]:
    loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
    return {"opentelemetry_modules": loaded, "had_span": ctx.span is not None}


def main() -> None:
    logs.configure("info")
    registry = Registry()
    for plugin in (tr_traced, tr_flaky, tr_spawner, tr_modules):
        registry.register(plugin.__name__, plugin)
    settings = get_settings()
    if sys.argv[1] == "--worker":
        asyncio.run(serve(settings, concurrency=4, registry=registry))
        return
    address, token = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    asyncio.run(serve_agent(settings, address, token, concurrency=4, registry=registry))


if __name__ == "__main__":
    main()
