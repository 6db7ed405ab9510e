"""The raw ceiling: minimal SQL loops doing the same writes per task, with the same concurrency and batches.

Measured in the same run as our figures, which are printed as a share of it: what PostgreSQL on this
machine does for the same work when no API, no worker runtime and no Python per task stand in between.
"""

from __future__ import annotations

import asyncio
import time

from taskservice.bench.context import Context, sql
from taskservice.bench.results import Figure, ScenarioResult
from taskservice.bench.stats import LATENCY_PERCENTILES, best, percentile
from taskservice.db.connect import connect
from taskservice.store import NOTIFY_CHANNEL

NAME = "ceiling"
TITLE = "d. Raw ceiling (minimal SQL loops, asyncpg)"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count > 1 else ''}"


async def _insert_for(ctx: Context, connections: int, seconds: float, batch: int) -> float:
    """Tasks/s inserted (with their history rows) by `connections` loops, `batch` per statement."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        async with ctx.pool.acquire() as conn:
            while time.perf_counter() < deadline:
                if batch == 1:
                    await conn.execute(sql("raw_insert"))
                else:
                    await conn.execute(sql("raw_insert_batch"), batch)
                done += batch

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(loop() for _ in range(connections))), ctx.sizes.step_timeout)
    return done / (time.perf_counter() - started)


async def _drain(ctx: Context, connections: int) -> tuple[float, int]:
    """Tasks/s claimed, run (nothing) and completed by `connections` loops; and the tasks left over."""
    count, batch = ctx.sizes.drain_tasks, ctx.sizes.worker_concurrency
    await ctx.clear_tasks()
    await ctx.queue_no_ops(count, "raw-drain")

    async def loop() -> None:
        async with ctx.pool.acquire() as conn:
            while claimed := await conn.fetch(sql("raw_claim"), batch):
                await conn.execute(
                    sql("raw_complete"), [r["task_id"] for r in claimed], [r["id"] for r in claimed]
                )

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(loop() for _ in range(connections))), ctx.sizes.step_timeout)
    seconds = time.perf_counter() - started
    return count / seconds, count - await ctx.value("succeeded")


async def _latency(ctx: Context) -> tuple[list[float], list[float]]:
    """Seconds from enqueue to start and to finished, every task, of the minimal loop: insert + NOTIFY
    in one statement at the latency scenario's rate; a LISTEN connection; claim and complete at once."""
    sizes = ctx.sizes
    count = round(sizes.latency_rate * sizes.latency_seconds)
    await ctx.clear_tasks()
    sent_at: dict[int, float] = {}
    woken = asyncio.Event()
    listener = await connect(ctx.database_url)
    await listener.add_listener(NOTIFY_CHANNEL, lambda *_: woken.set())

    async def claimer() -> None:
        done = 0
        async with ctx.pool.acquire() as conn:
            while done < count:
                await woken.wait()
                woken.clear()
                while claimed := await conn.fetch(sql("raw_claim"), sizes.worker_concurrency):
                    await conn.execute(
                        sql("raw_complete"), [r["task_id"] for r in claimed], [r["id"] for r in claimed]
                    )
                    done += len(claimed)

    async def sender() -> None:
        async with ctx.pool.acquire() as conn:
            begin = time.perf_counter()
            for i in range(count):
                delay = begin + i / sizes.latency_rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                at = time.time()
                sent_at[await conn.fetchval(sql("raw_enqueue"), NOTIFY_CHANNEL)] = at

    try:
        await asyncio.wait_for(
            asyncio.gather(claimer(), sender()), sizes.latency_seconds + sizes.step_timeout
        )
    finally:
        await listener.close()
    rows = await ctx.pool.fetch(sql("task_times"))
    return (
        [r["started"] - sent_at[r["id"]] for r in rows],
        [r["finished"] - sent_at[r["id"]] for r in rows],
    )


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    await ctx.reset()
    for connections in sizes.create_clients:
        rates = [await _insert_for(ctx, connections, sizes.create_seconds, 1) for _ in range(sizes.rounds)]
        result.figures.append(
            Figure(
                f"ceiling.insert_{connections}",
                f"insert task + history, {_plural(connections, 'connection')}",
                best(rates),
                "tasks/s",
                details={"rounds": [round(r) for r in rates]},
            )
        )
    rates = [
        await _insert_for(ctx, sizes.batch_clients, sizes.batch_seconds, sizes.batch_size)
        for _ in range(sizes.rounds)
    ]
    result.figures.append(
        Figure(
            "ceiling.batch",
            f"insert {sizes.batch_size}/statement, {_plural(sizes.batch_clients, 'connection')}",
            best(rates),
            "tasks/s",
            details={"rounds": [round(r) for r in rates]},
        )
    )
    to_start, to_finish = await _latency(ctx)
    result.tasks += len(to_start)
    result.lost += round(sizes.latency_rate * sizes.latency_seconds) - len(to_start)
    for kind, samples in (("start", to_start), ("finished", to_finish)):
        for fraction in LATENCY_PERCENTILES:
            p = round(fraction * 100)
            result.figures.append(
                Figure(
                    f"ceiling.latency_{kind}_p{p}",
                    f"insert+NOTIFY, LISTEN, claim: to-{kind} p{p}",
                    percentile(samples, fraction) * 1000,
                    "ms",
                )
            )
    # A worker process has a claim and a report in flight at once: up to twice as many connections.
    drains = []
    for connections in sorted({*sizes.worker_processes, 2 * max(sizes.worker_processes)}):
        rates = []
        for _ in range(sizes.rounds):
            rate, left = await _drain(ctx, connections)
            rates.append(rate)
            result.tasks += sizes.drain_tasks
            result.lost += left
        drains.append(best(rates))
        result.figures.append(
            Figure(
                f"ceiling.drain_{connections}",
                f"claim {sizes.worker_concurrency} + complete, {_plural(connections, 'connection')}",
                drains[-1],
                "tasks/s",
                details={"rounds": [round(r) for r in rates]},
            )
        )
    result.figures.append(
        Figure("ceiling.drain", "claim + complete: the best of the above", max(drains), "tasks/s")
    )
