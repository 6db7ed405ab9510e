"""Latency: tasks enqueued through the API at a fixed rate; enqueue-to-start and enqueue-to-finished."""

from __future__ import annotations

import asyncio
import contextlib
import time

from taskservice.bench.client import Client
from taskservice.bench.context import Context, sql
from taskservice.bench.processes import wait_until
from taskservice.bench.results import Figure, ScenarioResult, Target
from taskservice.bench.scenarios.enqueue import new_task
from taskservice.bench.stats import LATENCY_PERCENTILES, percentile, summary_ms
from taskservice.gen.cloud.v1 import task_pb2 as pb

NAME = "latency"
TITLE = "c. Latency at a fixed rate"

CONNECTIONS = 16
TARGETS = {("start", 0.5): Target("<=", 5), ("start", 0.99): Target("<=", 25)}


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    count = round(sizes.latency_rate * sizes.latency_seconds)
    await ctx.reset()
    sent_at: dict[int, float] = {}
    request = new_task("bench-latency")
    async with ctx.workers(1), contextlib.AsyncExitStack() as stack:
        # Enough connections that a call never waits for one (HTTP/1.1: one call at a time each).
        idle: asyncio.Queue[Client] = asyncio.Queue()
        for _ in range(CONNECTIONS):
            idle.put_nowait(await stack.enter_async_context(ctx.api()))

        async def send() -> None:
            at = time.time()  # the moment it is due, even if it had to wait for a connection
            api = await idle.get()
            try:
                response = await api.call("CreateTask", request, pb.CreateTaskResponse)
            finally:
                idle.put_nowait(api)
            sent_at[response.id] = at

        await send()  # a warm-up: the server's and the worker's first statements are prepared
        await wait_until(lambda: _all_done(ctx, 1), sizes.step_timeout, "the warm-up task")
        await ctx.clear_tasks()
        sent_at.clear()
        # Open loop: each call leaves on its own schedule, however long the others take.
        begin = time.perf_counter()
        calls = []
        for i in range(count):
            delay = begin + i / sizes.latency_rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            calls.append(asyncio.create_task(send()))
        await asyncio.wait_for(asyncio.gather(*calls), sizes.step_timeout)
        await wait_until(lambda: _all_done(ctx, count), sizes.step_timeout, f"{count} tasks to succeed")
    rows = await ctx.pool.fetch(sql("task_times"))
    to_start = [r["started"] - sent_at[r["id"]] for r in rows if r["id"] in sent_at]
    to_finish = [r["finished"] - sent_at[r["id"]] for r in rows if r["id"] in sent_at]
    in_database = [r["started"] - r["created"] for r in rows]
    first = min(sent_at.values(), default=0.0)
    slowest = sorted(
        ((r["started"] - sent_at[r["id"]], sent_at[r["id"]] - first) for r in rows if r["id"] in sent_at),
        reverse=True,
    )[:10]
    result.tasks = count
    result.lost = count - len(to_start) + await ctx.value("incomplete_lifecycles")
    rate = f"{sizes.latency_rate:g}/s"
    for kind, samples in (("start", to_start), ("finished", to_finish)):
        for fraction in LATENCY_PERCENTILES:
            p = round(fraction * 100)
            result.figures.append(
                Figure(
                    f"latency.{kind}_p{p}",
                    f"enqueue-to-{kind} p{p} at {rate}",
                    percentile(samples, fraction) * 1000,
                    "ms",
                    target=TARGETS.get((kind, fraction)),
                    raw_key=f"ceiling.latency_{kind}_p{p}",
                )
            )
    result.details = {
        "enqueue_to_start_ms": summary_ms(to_start),
        "enqueue_to_finished_ms": summary_ms(to_finish),
        "created_to_started_ms": summary_ms(in_database),
        "slowest_starts": [{"ms": round(ms * 1000, 2), "at_s": round(at, 2)} for ms, at in slowest],
        "note": "enqueue = the client sends CreateTask; start/finished = the attempt's timestamps",
    }


async def _all_done(ctx: Context, count: int) -> bool:
    return bool(await ctx.value("succeeded_kept") >= count)
