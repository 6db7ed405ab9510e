"""What the operator's dashboard reads (issue 24): per-type figures over a time window, the attempts
finished per bucket of it, and one worker with its latest attempts. Each read through an index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from taskservice.store.sql import query

if TYPE_CHECKING:
    from taskservice.store.store import Pool, Record

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


async def type_stats(pool: Pool, range_seconds: float) -> list[TypeStats]:
    rows = await pool.fetch(query("type_stats"), range_seconds)
    return [TypeStats(**dict(row)) for row in rows]


async def throughput(pool: Pool, range_seconds: float, buckets: int) -> Throughput:
    rows = await pool.fetch(query("throughput_buckets"), range_seconds, buckets)
    return Throughput(
        [Bucket(r["start"], r["succeeded"], r["failed"]) for r in rows],
        rows[-1]["until"],
    )


def _attempt(row: Record) -> WorkerAttempt:
    return WorkerAttempt(**dict(row))


async def worker_attempts(pool: Pool, worker_id: str) -> tuple[list[WorkerAttempt], list[WorkerAttempt]]:
    """A worker's latest attempts, and its latest failures among a bounded number of its attempts."""
    attempts = await pool.fetch(query("worker_attempts"), worker_id, ATTEMPTS_SHOWN)
    failures = await pool.fetch(query("worker_failures"), worker_id, FAILURES_AMONG, FAILURES_SHOWN)
    return [_attempt(r) for r in attempts], [_attempt(r) for r in failures]
