"""Retention: finished tasks past their age go with their history and attempts; one process at a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from conftest import ServerProcess
from taskservice import model
from taskservice.config import ConfigError, load_settings
from taskservice.model import NewTask, RetryPolicy, Status
from taskservice.store import Pool, RetentionPolicy, Store
from taskservice.store.retention import LOCK_KEY
from taskservice.worker.retention import RetentionJob
from test_counts import assert_counts_right

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

DAY = 86_400.0


async def one_of_each(store: Store) -> dict[Status, int]:
    """A task in every finished status, one queued and one running: their ids by status."""
    ids = [i for i, _ in await store.create_tasks([NewTask(f"t{i}", "t") for i in range(5)])]
    claims = {c.task.id: c for c in await store.claim("w", 4)}
    done, failed, _cancelled, running = (claims[i] for i in ids[:4])
    await store.finish(
        [
            model.succeeded(done.task, done.execution_id, {"ok": True}),
            model.attempt_failed(
                failed.task, failed.execution_id, "Task failed", "x", RetryPolicy(), retryable=False
            ),
        ]
    )
    await store.set_status(ids[2], Status.CANCELLED, "not needed")
    return {
        Status.SUCCEEDED: ids[0], Status.FAILED: ids[1], Status.CANCELLED: ids[2],
        Status.RUNNING: running.task.id, Status.QUEUED: ids[4],
    }  # fmt: skip


async def rows_of(pool: Pool, task_id: int) -> tuple[int, int, int]:
    """(tasks, history rows, attempts) left of a task."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM tasks WHERE id = $1),"
        " (SELECT count(*) FROM task_history WHERE task_id = $1),"
        " (SELECT count(*) FROM task_executions WHERE task_id = $1)",
        task_id,
    )
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]))


def job(store: Store, policy: RetentionPolicy, at: datetime, batch: int = 1000) -> RetentionJob:
    return RetentionJob(store, policy, interval=60, batch=batch, clock=lambda: at)


async def test_each_finished_status_is_kept_for_its_age_then_deleted_whole(store: Store, pool: Pool) -> None:
    ids = await one_of_each(store)
    policy = RetentionPolicy(succeeded=7 * DAY, failed=30 * DAY, cancelled=7 * DAY)
    now = datetime.now(UTC)
    assert await job(store, policy, now + timedelta(days=6)).run_once() == {
        Status.SUCCEEDED: 0, Status.FAILED: 0, Status.CANCELLED: 0,
    }  # fmt: skip
    deleted = await job(store, policy, now + timedelta(days=8)).run_once()
    assert deleted == {Status.SUCCEEDED: 1, Status.FAILED: 0, Status.CANCELLED: 1}
    for status in (Status.SUCCEEDED, Status.CANCELLED):
        assert await rows_of(pool, ids[status]) == (0, 0, 0)
    assert await rows_of(pool, ids[Status.FAILED]) == (1, 3, 1)
    await assert_counts_right(store)
    assert (await job(store, policy, now + timedelta(days=31)).run_once())[Status.FAILED] == 1
    # Work that is not finished is never deleted, however old.
    assert (await store.get_task(ids[Status.QUEUED])).status == Status.QUEUED
    assert (await store.get_task(ids[Status.RUNNING])).status == Status.RUNNING
    assert await job(store, policy, now + timedelta(days=3650)).run_once() == {
        Status.SUCCEEDED: 0, Status.FAILED: 0, Status.CANCELLED: 0,
    }  # fmt: skip
    await assert_counts_right(store)
    assert await store.count_tasks() == 2


async def test_an_age_of_zero_keeps_forever(store: Store) -> None:
    await one_of_each(store)
    forever = RetentionPolicy(succeeded=0, failed=0, cancelled=DAY)
    deleted = await job(store, forever, datetime.now(UTC) + timedelta(days=3650)).run_once()
    assert deleted == {Status.CANCELLED: 1}
    assert await store.count_tasks(status=Status.SUCCEEDED) == 1


async def test_a_backlog_goes_in_bounded_batches(store: Store, pool: Pool) -> None:
    await store.create_tasks([NewTask(f"old{i}", "t") for i in range(7)])
    for task in await store.list_tasks(limit=100):
        await store.set_status(task.id, Status.CANCELLED)
    seen: list[int] = []
    original = store.delete_finished

    async def counting(status: Status, before: datetime, limit: int) -> int | None:
        count = await original(status, before, limit)
        seen.append(count or 0)
        return count

    store.delete_finished = counting  # type: ignore[method-assign]
    deleted = await job(
        store, RetentionPolicy(cancelled=DAY), datetime.now(UTC) + timedelta(days=2), 3
    ).run_once()
    assert deleted[Status.CANCELLED] == 7
    assert seen[-3:] == [3, 3, 1]
    await assert_counts_right(store)


async def test_one_process_at_a_time(store: Store, database_url: str) -> None:
    await one_of_each(store)
    later = datetime.now(UTC) + timedelta(days=365)
    other = await asyncpg.connect(database_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)  # another process is deleting
        assert await job(store, RetentionPolicy(), later).run_once() == {}
        assert await store.count_tasks() == 5
        await other.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        # Two jobs at once (two servers): the lock lets each batch run alone; together they delete
        # each task once.
        results = await asyncio.gather(*(job(store, RetentionPolicy(), later).run_once() for _ in range(2)))
        assert sum(sum(r.values()) for r in results) == 3
    finally:
        await other.close()
    await assert_counts_right(store)


def test_retention_settings_take_durations() -> None:
    settings = load_settings(retention_succeeded="12h", retention_failed="0", retention_cancelled="90")
    assert (settings.retention_succeeded, settings.retention_failed, settings.retention_cancelled) == (
        43_200, 0, 90,
    )  # fmt: skip
    assert load_settings().retention_failed == 30 * DAY
    with pytest.raises(ConfigError, match="RETENTION_FAILED='a week': must be a duration such as 7d"):
        load_settings(retention_failed="a week")
    assert RetentionPolicy(succeeded=7 * DAY, failed=0, cancelled=90).describe() == (
        "Finished tasks are kept, with their history and attempts, for SUCCEEDED 7d, FAILED forever,"
        " CANCELLED 90s after they finish; then they are deleted. Queued and running tasks are always kept."
        " A workflow is kept whole until its last step's change is that old (by the workflow's status)."
    )


async def test_the_dashboard_says_what_is_kept(api_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=api_server.url) as http:
        response = await http.get("/retention")
    assert response.status_code == 200
    assert response.json()["note"] == RetentionPolicy().describe()  # the defaults: 7d, 30d, 7d


async def test_the_kept_starts_of_idle_limit_keys_go_after_a_day(store: Store, pool: Pool) -> None:
    """A rate's period is a day at most: keys that started nothing for longer need no kept starts."""
    await pool.execute(
        "INSERT INTO task_limits (kind, name, rate, per_seconds, key) VALUES ('type', 'sleep', 5, 1, 'c')"
    )
    await store.create_tasks([NewTask("t", "sleep", {"c": k}) for k in ("busy", "idle")])
    assert len(await store.claim("w", 10)) == 2
    await pool.execute(
        "UPDATE task_limit_keys SET starts = array[now() - interval '2 days'] WHERE limit_key = 'idle'"
    )
    now = await pool.fetchval("SELECT now()")
    await job(store, RetentionPolicy(), now).run_once()
    assert [r["limit_key"] for r in await pool.fetch("SELECT limit_key FROM task_limit_keys")] == ["busy"]
