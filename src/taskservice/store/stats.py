"""What the operator's dashboard reads (issue 24): per-type figures over a time window, the attempts
finished per bucket of it, and one worker with its latest attempts. Each read through an index."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from taskservice.store.sql import query

if TYPE_CHECKING:
    from taskservice.store.store import Connection, Pool, Record

ATTEMPTS_SHOWN = 50  # a worker's latest attempts
FAILURES_AMONG = 1000  # a worker's failures are looked for among its latest this many attempts
FAILURES_SHOWN = 20


class WorkerNotFound(LookupError):
    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} not found")
        self.worker_id = worker_id


@dataclass(frozen=True)
class TypeStats:
    type: str
    finished: int
    succeeded: int
    failed: int  # failed, timed out or lost
    p50_seconds: float
    p95_seconds: float
    p95_wait_seconds: float | None  # None: no attempt whose due time is known


@dataclass(frozen=True)
class Bucket:
    start: datetime
    succeeded: int
    failed: int


@dataclass(frozen=True)
class Throughput:
    buckets: list[Bucket]  # oldest first
    until: datetime  # the window's end: the database's now


@dataclass(frozen=True)
class WorkerAttempt:
    id: int
    task_id: int
    task_name: str
    task_type: str
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    duration_seconds: float
    error: str | None


@contextlib.asynccontextmanager
async def planned_for_the_dashboard(pool: Pool) -> AsyncIterator[Connection]:
    """A connection in a read-only transaction whose statements may be planned with bitmap scans, the
    only way PostgreSQL reads a BRIN index (the pool's sessions plan without them: db/connect.py;
    the window's statements would read every attempt ever kept), and are planned for each call's
    values (queries.sql, plan_for_the_dashboard). The settings end with the transaction."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(query("plan_for_the_dashboard"))
        yield conn


async def window(pool: Pool, range_seconds: float, buckets: int) -> tuple[list[TypeStats], Throughput]:
    """Per type, and per bucket, the attempts finished within the last `range_seconds`, both as of
    the same instant (one transaction: one now())."""
    async with planned_for_the_dashboard(pool) as conn:
        types = await conn.fetch(query("type_stats"), range_seconds)
        counted = await conn.fetch(query("throughput_buckets"), range_seconds, buckets)
    chart = Throughput(
        [Bucket(r["start"], r["succeeded"], r["failed"]) for r in counted], counted[-1]["until"]
    )
    return [TypeStats(**dict(row)) for row in types], chart


async def window_index_missing(pool: Pool) -> bool:
    """Whether the windows above read every attempt on a server that could read them through an index
    (queries.sql, window_index_missing; put back by `query("create_window_index")`)."""
    return bool(await pool.fetchval(query("window_index_missing")))


def _attempt(row: Record) -> WorkerAttempt:
    return WorkerAttempt(**dict(row))


async def worker_attempts(pool: Pool, worker_id: str) -> tuple[list[WorkerAttempt], list[WorkerAttempt]]:
    """A worker's latest attempts, and its latest failures among a bounded number of its attempts."""
    async with planned_for_the_dashboard(pool) as conn:
        attempts = await conn.fetch(query("worker_attempts"), worker_id, ATTEMPTS_SHOWN)
        failures = await conn.fetch(query("worker_failures"), worker_id, FAILURES_AMONG, FAILURES_SHOWN)
    return [_attempt(r) for r in attempts], [_attempt(r) for r in failures]
