"""Retention: how long finished tasks are kept, and deleting the older ones in bounded batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from taskservice.model import Status
from taskservice.store.sql import query

if TYPE_CHECKING:
    from taskservice.store.store import Pool

# The advisory lock that lets one process at a time delete ("tskret" in ASCII).
LOCK_KEY = 0x74736B726574
KEPT = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class RetentionPolicy:
    """Seconds a finished task is kept after its last change, by status; 0 keeps it forever."""

    succeeded: float = 7 * 86_400.0
    failed: float = 30 * 86_400.0
    cancelled: float = 7 * 86_400.0

    def ages(self) -> dict[Status, float]:
        return {
            Status.SUCCEEDED: self.succeeded,
            Status.FAILED: self.failed,
            Status.CANCELLED: self.cancelled,
        }

    def cutoffs(self, now: datetime) -> dict[Status, datetime]:
        """Per status that is not kept forever: tasks last changed before this time go."""
        return {status: now - timedelta(seconds=age) for status, age in self.ages().items() if age > 0}

    def describe(self) -> str:
        """What is kept, in one sentence (the dashboard and the README say the same)."""
        parts = [
            f"{status.name} {_age(age) if age > 0 else 'forever'}" for status, age in self.ages().items()
        ]
        return (
            "Finished tasks are kept, with their history and attempts, for "
            + ", ".join(parts)
            + " after they finish; then they are deleted. Queued and running tasks are always kept."
            + " A workflow is kept whole until its last step's change is that old (by the workflow's status)."
        )


async def delete_finished(pool: Pool, status: Status, before: datetime, limit: int) -> int | None:
    """Delete up to `limit` tasks of `status` last changed before `before` (with their history and
    attempts) in one transaction; the count, or None when another process is deleting now."""
    return await _under_lock(pool, "delete_finished_tasks", status, before, limit)


async def delete_finished_workflows(pool: Pool, status: Status, before: datetime, limit: int) -> int | None:
    """Delete up to `limit` finished workflows of `status` (model.workflow_status) whose steps all last
    changed before `before`, whole; the count, or None when another process is deleting now."""
    return await _under_lock(pool, "delete_finished_workflows", status, before, limit)


async def _under_lock(pool: Pool, statement: str, status: Status, before: datetime, limit: int) -> int | None:
    """Run one deleting `statement` ($1 status, $2 before, $3 limit) in a transaction holding the
    retention lock; None when another process holds it."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(query("try_retention_lock"), LOCK_KEY):
            return None
        return int(await conn.fetchval(query(statement), int(status), before, limit))
