"""A worker process (`--worker`, PostgreSQL at DATABASE_URL) or an agent (`ADDRESS [TOKEN]`) for the
workflow tests, with task types that read their parents' results and spawn children:

- `wf_value`: returns {"value": <value>, "by": <pid>}.
- `wf_sum`: returns {"sum": the sum of its parents' "value"s (spawned children's too), "seen": their
  step names}.
- `wf_fail`: fails for good, until the test leaves `fixed` in GATE_DIR; then as `wf_value`.
- `wf_fan_out`: spawns `n` `wf_value` children (value i) and succeeds; the steps after it wait for them.
- `wf_continue`: spawns `n` children and waits for them; run again, returns the sum of their values.
- `wf_spawn_then_hang`: spawns `n` children, then on its first attempt leaves `hung-<pid>` in
  GATE_DIR and hangs (the test kills the process); on a later attempt it returns.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from taskservice import logs
from taskservice.config import get_settings
from taskservice.plugins import PermanentFailure, Registry
from taskservice.plugins.context import TaskContext
from taskservice.worker.serve import serve, serve_agent


def wf_value(parameters: dict[str, str]) -> dict[str, Any]:
    return {"value": int(parameters.get("value", "0")), "by": os.getpid()}


def wf_sum(parameters: dict[str, str], ctx: TaskContext) -> dict[str, Any]:
    values = [r["value"] for r in ctx.parents.values() if isinstance(r, dict) and "value" in r]
    return {"sum": sum(values), "seen": sorted(ctx.parents), "left_out": list(ctx.parents_left_out)}


def wf_fail(parameters: dict[str, str]) -> dict[str, Any]:
    """Fails for good until the test leaves `fixed` in GATE_DIR."""
    if not (Path(os.environ["GATE_DIR"]) / "fixed").exists():
        raise PermanentFailure("this step fails on purpose")
    return {"value": int(parameters.get("value", "0")), "fixed": True}


def wf_fan_out(parameters: dict[str, str], ctx: TaskContext) -> dict[str, int]:
    for i in range(int(parameters["n"])):
        ctx.spawn("wf_value", {"value": str(i)})
    return {"spawned": int(parameters["n"])}


def wf_continue(parameters: dict[str, str], ctx: TaskContext) -> Any:
    if ctx.children:  # run again after them
        return {"sum": sum(r["value"] for r in ctx.children.values()), "children": len(ctx.children)}
    for i in range(int(parameters["n"])):
        ctx.spawn("wf_value", {"value": str(i)}, name=f"part-{i}")
    return ctx.wait_for_children()


async def wf_spawn_then_hang(parameters: dict[str, str], ctx: TaskContext) -> dict[str, int]:
    for i in range(int(parameters["n"])):
        ctx.spawn("wf_value", {"value": str(i)})
    if ctx.attempt == 1:
        (Path(os.environ["GATE_DIR"]) / f"hung-{os.getpid()}").touch()
        await asyncio.Event().wait()  # until the test kills this process
    return {"attempt": ctx.attempt}


def main() -> None:
    logs.configure("info")
    registry = Registry()
    for plugin in (wf_value, wf_sum, wf_fail, wf_fan_out, wf_continue, wf_spawn_then_hang):
        registry.register(plugin.__name__, plugin)
    settings = get_settings()
    if sys.argv[1] == "--worker":
        asyncio.run(serve(settings, concurrency=8, registry=registry))
        return
    address, token = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    asyncio.run(serve_agent(settings, address, token, concurrency=8, registry=registry))


if __name__ == "__main__":
    main()
