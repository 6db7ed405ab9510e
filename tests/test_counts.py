"""The kept task counts, the list statements per filter, their plans on seeded data, and the waker."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import pytest

from conftest import create_database, drop_database, eventually
from taskservice import model
from taskservice.db import migrate
from taskservice.db.connect import connect, create_pool
from taskservice.model import NewTask, RetryPolicy, Status
from taskservice.store import NOTIFY_CHANNEL, Pool, Store
from taskservice.store.sql import query


async def counted(pool: Pool) -> dict[tuple[str, str, int], int]:
    """(queue, type, status) -> count, from the kept counts (zeros left out)."""
    rows = await pool.fetch(
        "SELECT queue, type, status, sum(count)::int AS n FROM task_counts"
        " GROUP BY queue, type, status HAVING sum(count) <> 0"
    )
    return {(r["queue"], r["type"], r["status"]): r["n"] for r in rows}


async def actual(pool: Pool) -> dict[tuple[str, str, int], int]:
    rows = await pool.fetch(
        "SELECT queue, type, status, count(*)::int AS n FROM tasks GROUP BY queue, type, status"
    )
    return {(r["queue"], r["type"], r["status"]): r["n"] for r in rows}


async def assert_counts_right(store: Store) -> None:
    assert await counted(store.pool) == await actual(store.pool)
    expected = dict.fromkeys(model.TASK_STATUSES, 0)
    for (_, _, status), n in (await actual(store.pool)).items():
        expected[Status(status)] += n
    assert await store.status_counts() == expected


async def test_counts_follow_every_transition(store: Store) -> None:
    await store.create_tasks([NewTask(f"a{i}", "alpha") for i in range(5)] + [NewTask("b", "beta")])
    await assert_counts_right(store)
    claims = await store.claim("w1", 4)
    await assert_counts_right(store)
    ok, retry, fail, _kept = claims
    await store.finish(
        [
            model.succeeded(ok.task, ok.execution_id, None),
            model.attempt_failed(retry.task, retry.execution_id, "Task failed", "x", RetryPolicy(60, 60)),
            model.attempt_failed(
                fail.task, fail.execution_id, "Task failed", "x", RetryPolicy(), retryable=False
            ),
        ],
    )
    await assert_counts_right(store)
    await store.set_status(ok.task.id, Status.QUEUED, "again")
    [queued] = await store.list_tasks(status=Status.QUEUED, task_type="beta")
    await store.set_status(queued.id, Status.CANCELLED)
    await assert_counts_right(store)
    await store.claim("dead", 10, lease_seconds=0.01)
    await eventually(lambda: store.reap_expired_leases(RetryPolicy()))
    await assert_counts_right(store)
    assert await store.count_tasks(status=Status.FAILED) == 1
    assert await store.count_tasks(task_type="alpha") == 5
    assert await store.count_tasks(status=Status.CANCELLED, task_type="beta") == 1
    assert await store.count_tasks(task_type="alpha", name_contains="A1") == 1


async def test_counts_follow_any_sql(store: Store, pool: Pool) -> None:
    """The triggers keep the counts whoever writes: a bulk load, a hand-made UPDATE, DELETE, TRUNCATE."""
    await pool.execute(
        "INSERT INTO tasks (name, type, status, timeout_seconds)"
        " SELECT 'bulk', CASE WHEN g % 3 = 0 THEN 'x' ELSE 'y' END, 3, 60 FROM generate_series(1, 300) g"
    )
    await assert_counts_right(store)
    await pool.execute("UPDATE tasks SET status = 2 WHERE id % 7 = 0")
    await pool.execute("UPDATE tasks SET type = 'z' WHERE id % 5 = 0")
    await pool.execute("UPDATE tasks SET description = 'no status change' WHERE id % 2 = 0")
    await assert_counts_right(store)
    await pool.execute("DELETE FROM tasks WHERE id % 4 = 0")
    await assert_counts_right(store)
    await pool.execute("TRUNCATE tasks CASCADE")
    await assert_counts_right(store)
    assert await counted(pool) == {}


async def test_counts_stay_right_under_concurrent_writers(store: Store) -> None:
    await store.create_tasks([NewTask(f"t{i}", "t") for i in range(400)])

    async def work(worker: str) -> None:
        while claims := await store.claim(worker, 7):
            await store.finish([model.succeeded(c.task, c.execution_id, None) for c in claims])

    await asyncio.gather(*(work(f"w{i}") for i in range(6)), store.create_tasks([NewTask("late", "t")] * 50))
    await assert_counts_right(store)


async def test_migration_counts_the_tasks_already_there(pg_server_url: str) -> None:
    url = create_database(pg_server_url)
    try:
        migrate.upgrade(url, "0001")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO tasks (name, type, status, timeout_seconds, idempotency_key)"
                " SELECT 'old', 'sleep', g % 2 * 3, 60, CASE WHEN g < 3 THEN 'k' || g END"
                " FROM generate_series(1, 10) g"
            )
        finally:
            await conn.close()
        migrate.upgrade(url)
        pool = await create_pool(url, max_size=2)
        try:
            store = Store(pool)
            assert await counted(pool) == {("default", "sleep", 0): 5, ("default", "sleep", 3): 5}
            # The idempotency keys are still unique, through their new (partial) index.
            again, created = await store.create_task(NewTask("new", "sleep", idempotency_key="k1"))
            assert (again, created) == (1, False)
        finally:
            await pool.close()
    finally:
        drop_database(pg_server_url, url)


async def test_every_filter_combination_lists_newest_first(store: Store) -> None:
    ids = [i for i, _ in await store.create_tasks([NewTask(f"n{i}", "ab"[i % 2]) for i in range(24)])]
    for task_id in ids[::3]:
        await store.set_status(task_id, Status.CANCELLED)
    everything = await store.list_tasks(limit=100)
    for status, kind, name in itertools.product(
        (None, Status.ALL, Status.CANCELLED, Status.QUEUED, Status.RUNNING), (None, "a", "b"), (None, "1")
    ):
        expected = [
            t.id
            for t in everything
            if status in (None, Status.ALL, t.status) and kind in (None, t.type) and (name or "") in t.name
        ]
        filters: dict[str, Any] = {"status": status, "task_type": kind, "name_contains": name}
        pages = [
            t.id
            for offset in (0, 5, 10, 15, 20)
            for t in await store.list_tasks(**filters, limit=5, offset=offset)
        ]
        assert pages == expected, filters
        assert await store.count_tasks(**filters) == len(expected), filters


# -- plans on seeded data ----------------------------------------------------------------------------


@pytest.fixture
async def seeded(pool: Pool) -> Pool:
    """20,000 tasks, mostly finished, some due; analyzed as autovacuum would."""
    await pool.execute(
        "INSERT INTO tasks (name, type, status, timeout_seconds)"
        " SELECT 'seed ' || g, CASE WHEN g % 10 = 0 THEN 'rare' ELSE 'common' END,"
        "        CASE WHEN g > 19900 THEN 0 WHEN g % 50 = 0 THEN 2 ELSE 3 END, 60"
        " FROM generate_series(1, 20000) g"
    )
    await pool.execute("VACUUM ANALYZE tasks")
    return pool


async def plan(pool: Pool, name: str, *args: Any) -> str:
    rows = await pool.fetch(f"EXPLAIN (COSTS OFF) {query(name)}", *args)
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize(
    ("name", "args", "index"),
    [
        ("list_tasks", (None, 30, 0), "tasks_pkey"),
        ("list_tasks_of_status", (1, None, 30, 0), "idx_tasks_status_id"),
        ("list_tasks_of_type", ("rare", None, 30, 0), "idx_tasks_type_id"),
    ],
)
async def test_list_pages_read_an_index_in_order(
    seeded: Pool, name: str, args: tuple[Any, ...], index: str
) -> None:
    text = await plan(seeded, name, *args)
    assert index in text
    assert "Seq Scan" not in text


async def test_counts_and_claims_do_not_scan_the_tasks(seeded: Pool) -> None:
    assert " on tasks" not in await plan(seeded, "status_counts")
    assert " on tasks" not in await plan(seeded, "count_tasks", None, "rare")
    claim = await plan(seeded, "claim_tasks", ["w"] * 10, 10, [], 30.0, [])
    assert "idx_tasks_claimable" in claim
    assert "Seq Scan on tasks" not in claim


# -- the waker ----------------------------------------------------------------------------------------


async def test_every_create_wakes_the_workers_and_concurrent_ones_share_a_notify(
    store: Store, database_url: str
) -> None:
    heard: list[str] = []
    listener = await connect(database_url)
    # A listener is called with (connection, pid, channel, payload).
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[3]))
    try:
        await store.create_task(NewTask("one", "t"))
        await eventually(lambda: asyncio.sleep(0, len(heard) == 1))
        await asyncio.gather(*(store.create_task(NewTask(f"t{i}", "t")) for i in range(50)))
        # Notifications arrive in commit order: once this marker is heard, every wake-up before it was.
        await store.pool.execute("SELECT pg_notify($1, 'end')", NOTIFY_CHANNEL)
        await eventually(lambda: asyncio.sleep(0, "end" in heard))
        assert 2 <= len(heard) - 1 < 51
    finally:
        await listener.close()
