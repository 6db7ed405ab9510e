"""The peer: our drain against pgqueuer's on the same PostgreSQL, the same number of no-op jobs, one run.

Each round makes a fresh database (its tables never analyzed: a new deployment's first burst) and
its own API server. Ours: the tasks are enqueued through the API (CreateTasks), then 4 worker processes
drain them. pgqueuer: the same number of jobs enqueued with its own batch enqueue, drained by 2
processes at batch 100 (its best settings on this machine). In both, the consumers are started and
idle first, then held (SIGSTOP) while the queue fills and released together, so that process start-up
is not measured; the rate runs from the first start to the last completion, on the server's clock.
pgqueuer also writes a log row per status change (queued, picked, successful); we write three history
rows and an attempt row per task.

Beside each rate, the CPU time that drain cost per 1,000 tasks (bench/cpu.py), from the release to the
last completion: ours, the 4 workers', the API server's (idle while workers drain, but running) and
their PostgreSQL backends'; pgqueuer's, its 2 consumers' and their backends'. Each process is found by
the application_name of its connections. Our total is held to at most pgqueuer's (issue 26).

Then batch enqueue in the caller's process, 1,000 jobs per call and per transaction on one asyncpg
connection, in a fresh database of its own: `taskservice.enqueue_many_async` (every task checked as
CreateTask checks it, with its history row) against pgqueuer's `Queries.enqueue`, interleaved. The
enqueue of our drain, CreateTasks of 1,000 from one client through the API server, is held beside
that batch enqueue too (at least 60% of it, issue 26).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from importlib.util import find_spec

import asyncpg
import psycopg
from psycopg import sql as pgsql

from taskservice.bench.context import Context, sql
from taskservice.bench.cpu import (
    SERVER_APPLICATION,
    WORKER_APPLICATION,
    CpuSplit,
    Part,
    named_connections,
    split_figures,
)
from taskservice.bench.processes import Child, ServerProcess, child_env, stop_all, wait_until
from taskservice.bench.results import Figure, ScenarioResult
from taskservice.bench.scenarios.enqueue import new_task
from taskservice.bench.stats import best
from taskservice.db import migrate
from taskservice.db.connect import with_database
from taskservice.gen.cloud.v1 import task_pb2 as pb

NAME = "peer"
TITLE = "g. Peer: pgqueuer on the same PostgreSQL (fresh tables, never analyzed)"

OUR_PROCESSES = 4
PEER_PROCESSES = 2
PEER_BATCH = 100
RATIO_TARGET = 1.5
CALL_SIZE = 1000  # tasks per CreateTasks call
ENQUEUE_RATIO_TARGET = 1.0  # enqueue_many against pgqueuer's batch enqueue (issue 26)
CREATE_TASKS_RATIO_TARGET = 0.6  # CreateTasks through the API server against the same (issue 26)
CPU_RATIO_TARGET = 1.0  # our CPU per task drained, at most pgqueuer's (issue 26)


@contextlib.asynccontextmanager
async def fresh_database(ctx: Context) -> AsyncIterator[str]:
    """A new migrated database on the run's server, dropped afterwards."""
    name = f"taskservice_peer_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = ctx.admin_url or ctx.database_url
    identifier = pgsql.Identifier(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(identifier))
    url = with_database(admin, name)
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))


async def ours(ctx: Context, url: str) -> tuple[float, int, CpuSplit, float]:
    """Tasks/s of 4 worker processes draining tasks enqueued through the API; incomplete ones; the
    CPU the drain cost per task (workers, server, their backends); and the tasks/s of that enqueue
    (CreateTasks, CALL_SIZE a call, one client)."""
    count = ctx.sizes.drain_tasks
    server = ServerProcess(named_connections(url, SERVER_APPLICATION), ctx.log_dir)
    try:
        await server.wait_ready(ctx.sizes.step_timeout)
        conn = await asyncpg.connect(url)
        try:
            async with ctx.workers(OUR_PROCESSES, url) as workers:
                for worker in workers:
                    worker.pause()
                async with ctx.api(server.address) as api:
                    started = time.perf_counter()
                    for start in range(0, count, CALL_SIZE):
                        size = min(CALL_SIZE, count - start)
                        request = pb.CreateTasksRequest(tasks=[new_task("bench-peer")] * size)
                        await api.call("CreateTasks", request, pb.CreateTasksResponse)
                    created = count / (time.perf_counter() - started)
                parts = [
                    Part("workers", workers, WORKER_APPLICATION),
                    Part("server", [server], SERVER_APPLICATION),
                ]
                before = await ctx.part_times(parts, conn)
                for worker in workers:
                    worker.resume()

                async def drained() -> bool:
                    return bool(await conn.fetchval(sql("succeeded_kept")) >= count)

                await wait_until(drained, ctx.sizes.step_timeout, f"{count} tasks to succeed", interval=0.1)
                cpu = CpuSplit.between(before, await ctx.part_times(parts, conn), count)
            seconds = float(await conn.fetchval(sql("drain_window")))
            return count / seconds, int(await conn.fetchval(sql("incomplete_lifecycles"))), cpu, created
        finally:
            await conn.close()
    finally:
        stop_all([server])


async def pgqueuer(ctx: Context, url: str) -> tuple[float, int, CpuSplit]:
    """Jobs/s of pgqueuer's 2 processes at batch 100; the jobs not done; and the CPU the drain cost
    per job (consumers, their backends)."""
    from pgqueuer import AsyncpgDriver, Queries

    from taskservice.bench import peer_worker

    count = ctx.sizes.drain_tasks
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        command = [sys.executable, "-m", "taskservice.bench.peer_worker"]
        consumers = [
            Child(f"pgqueuer-{i}", [url, str(PEER_BATCH)], child_env(url), ctx.log_dir, command=command)
            for i in range(PEER_PROCESSES)
        ]
        try:

            async def listening() -> bool:
                for consumer in consumers:
                    if not consumer.alive():
                        raise RuntimeError(f"{consumer.name} exited early:\n{consumer.tail()}")
                found = await conn.fetchval(sql("peer_consumers"), peer_worker.APPLICATION_NAME)
                return bool(found >= PEER_PROCESSES)

            await wait_until(listening, ctx.sizes.step_timeout, "pgqueuer consumers to start")
            for consumer in consumers:
                consumer.pause()
            await queries.enqueue([peer_worker.ENTRYPOINT] * count, [None] * count, [0] * count)
            parts = [Part("consumers", consumers, peer_worker.APPLICATION_NAME)]
            before = await ctx.part_times(parts, conn)
            for consumer in consumers:
                consumer.resume()

            async def drained() -> bool:
                return bool(await conn.fetchval(sql("peer_done")) >= count)

            await wait_until(drained, ctx.sizes.step_timeout, f"{count} pgqueuer jobs", interval=0.1)
            cpu = CpuSplit.between(before, await ctx.part_times(parts, conn), count)
            seconds = float(await conn.fetchval(sql("peer_window")))
            left = count - int(await conn.fetchval(sql("peer_done")))
        finally:
            stop_all(consumers)
        return count / seconds, left, cpu
    finally:
        await conn.close()


async def batch_enqueue(ctx: Context, url: str) -> tuple[float, float, float, float]:
    """(tasks/s, Python CPU ms per 1,000) of enqueue_many, then of pgqueuer's enqueue, CALL_SIZE per
    call and transaction, as many as a drain's tasks each."""
    from pgqueuer import AsyncpgDriver, Queries

    from taskservice import NewTask, enqueue_many_async

    calls = max(1, ctx.sizes.drain_tasks // CALL_SIZE)
    tasks = [NewTask("bench-enqueue-many", "sleep", {"seconds": "0"}) for _ in range(CALL_SIZE)]
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            async with conn.transaction():
                await enqueue_many_async(conn, tasks)
        ours = (
            calls * CALL_SIZE / (time.perf_counter() - started),
            (time.process_time() - cpu) * 1000 / calls,
        )
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            await queries.enqueue(["bench"] * CALL_SIZE, [None] * CALL_SIZE, [0] * CALL_SIZE)
        peer = (
            calls * CALL_SIZE / (time.perf_counter() - started),
            (time.process_time() - cpu) * 1000 / calls,
        )
    finally:
        await conn.close()
    return (*ours, *peer)


async def run(ctx: Context, result: ScenarioResult) -> None:
    if find_spec("pgqueuer") is None:
        result.details["skipped"] = "pgqueuer is not installed (a dev dependency: pip install -e '.[dev]')"
        ctx.console.print(f"[yellow]  skipped: {result.details['skipped']}[/yellow]")
        return
    our_rates, peer_rates = [], []
    our_cpu: list[CpuSplit] = []
    peer_cpu: list[CpuSplit] = []
    enqueued: list[tuple[float, float, float, float]] = []
    created: list[float] = []
    for _ in range(ctx.sizes.rounds):
        async with fresh_database(ctx) as url:
            rate, incomplete, cpu, created_rate = await ours(ctx, url)
            created.append(created_rate)
            our_rates.append(rate)
            our_cpu.append(cpu)
            result.tasks += ctx.sizes.drain_tasks
            result.lost += incomplete
            rate, left, cpu = await pgqueuer(ctx, url)
            peer_rates.append(rate)
            peer_cpu.append(cpu)
            result.lost += left
        async with fresh_database(ctx) as url:
            enqueued.append(await batch_enqueue(ctx, url))
    result.figures.append(
        Figure(
            "peer.pgqueuer",
            f"pgqueuer 1.6, {PEER_PROCESSES} processes, batch {PEER_BATCH}",
            best(peer_rates),
            "tasks/s",
            details={"jobs": ctx.sizes.drain_tasks, "rounds": [round(r) for r in peer_rates]},
        )
    )
    result.figures.append(
        Figure(
            "peer.ours",
            f"ours, {OUR_PROCESSES} worker processes x {ctx.sizes.worker_concurrency}, enqueued via the API",
            best(our_rates),
            "tasks/s",
            raw_key="peer.pgqueuer",
            ratio_target=RATIO_TARGET,
            compared_with="pgqueuer",
            details={"tasks": ctx.sizes.drain_tasks, "rounds": [round(r) for r in our_rates]},
        )
    )
    result.figures += split_figures(
        "peer.pgqueuer_cpu",
        "pgqueuer",
        peer_cpu,
        {"consumers": f"its {PEER_PROCESSES} consumer processes", "postgresql": "their PostgreSQL backends"},
    )
    result.figures += split_figures(
        "peer.ours_cpu",
        "ours",
        our_cpu,
        {
            "workers": f"{OUR_PROCESSES} worker processes",
            "server": "the API server",
            "postgresql": "their PostgreSQL backends",
        },
        beside="peer.pgqueuer_cpu",
        parts_beside={"workers": "consumers", "postgresql": "postgresql"},
        compared_with="pgqueuer",
        ratio_target=CPU_RATIO_TARGET,
    )
    ratios = [o.total / p.total for o, p in zip(our_cpu, peer_cpu, strict=True) if p.total]
    result.figures[-1].details["ratio_rounds"] = [round(r, 2) for r in ratios]
    result.figures.append(
        Figure(
            "peer.enqueue_pgqueuer",
            f"pgqueuer's batch enqueue, {CALL_SIZE}/call, in-process",
            best([e[2] for e in enqueued]),
            "tasks/s",
            details={
                "rounds": [round(e[2]) for e in enqueued],
                "cpu_ms_per_1000": [round(e[3], 1) for e in enqueued],
            },
        )
    )
    result.figures.append(
        Figure(
            "peer.enqueue_many",
            f"enqueue_many, {CALL_SIZE}/call, in-process (checked, with history)",
            best([e[0] for e in enqueued]),
            "tasks/s",
            raw_key="peer.enqueue_pgqueuer",
            ratio_target=ENQUEUE_RATIO_TARGET,
            compared_with="pgqueuer",
            details={
                "rounds": [round(e[0]) for e in enqueued],
                "cpu_ms_per_1000": [round(e[1], 1) for e in enqueued],
            },
        )
    )
    result.figures.append(
        Figure(
            "peer.create_tasks",
            f"CreateTasks, {CALL_SIZE}/call, 1 client, through the API server",
            best(created),
            "tasks/s",
            raw_key="peer.enqueue_pgqueuer",
            ratio_target=CREATE_TASKS_RATIO_TARGET,
            compared_with="pgqueuer",
            details={"rounds": [round(r) for r in created]},
        )
    )
