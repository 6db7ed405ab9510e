"""What the operator's dashboard reads (issue 24): GetTypeStats, GetWorker, and ListTasks' order and
last-attempt columns, against a real server and database."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from api_helpers import FAILING, FAST, LATER, Api, parse_time, recent, unique
from conftest import Served, eventually


@pytest.fixture
async def db(shared_server: Served) -> AsyncIterator[asyncpg.Connection]:
    """The shared server's own database, to lay attempts of known times down directly."""
    conn = await asyncpg.connect(shared_server.settings.database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def finished_task(
    db: asyncpg.Connection, task_type: str, *, waited: float, ran: float, ended_ago: float, outcome: str
) -> int:
    """A finished task of `task_type` with one attempt: due `waited` s before it started, running `ran`
    s, finished `ended_ago` s ago."""
    task_id: int = await db.fetchval(
        """INSERT INTO tasks (name, type, status, timeout_seconds, created_at, run_at, attempts)
           VALUES ($1, $2, $3, 60, now() - make_interval(secs => $4::float8 + $5::float8 + $6::float8),
                   now() - make_interval(secs => $4::float8 + $5::float8 + $6::float8), 1)
           RETURNING id""",
        unique("stats"), task_type, 3 if outcome == "succeeded" else 2, ended_ago, ran, waited,
    )  # fmt: skip
    await db.execute(
        """WITH e AS (
               INSERT INTO task_executions (task_id, attempt, worker_id, started_at, finished_at,
                                            outcome, error)
               VALUES ($1, 1, 'stats-worker', now() - make_interval(secs => $2::float8 + $3::float8),
                       now() - make_interval(secs => $2::float8), $4::text,
                       CASE WHEN $4::text <> 'succeeded' THEN 'boom' END)
               RETURNING id)
           UPDATE tasks SET execution_id = e.id FROM e WHERE tasks.id = $1""",
        task_id, ended_ago, ran, outcome,
    )  # fmt: skip
    return task_id


async def test_type_stats_of_the_attempts_within_the_range(api: Api, db: asyncpg.Connection) -> None:
    kind = unique("stats_type")
    for ran, outcome in ((1, "succeeded"), (2, "succeeded"), (3, "failed"), (4, "timed_out")):
        await finished_task(db, kind, waited=10, ran=ran, ended_ago=60, outcome=outcome)
    await finished_task(db, kind, waited=100, ran=50, ended_ago=2 * 3600, outcome="succeeded")  # before
    await finished_task(db, kind, waited=0, ran=1, ended_ago=30, outcome="cancelled")

    hour = await api.ok("GetTypeStats", {"rangeSeconds": 3600, "buckets": 60})
    [row] = [t for t in hour["types"] if t["type"] == kind]
    assert (row["finished"], row["succeeded"], row["failed"]) == ("5", "2", "2")  # int64 as strings
    assert row["failureRate"] == pytest.approx(2 / 5)
    assert row["perMinute"] == pytest.approx(5 / 60)
    assert row["p50Seconds"] == pytest.approx(2, abs=0.01)
    assert row["p95Seconds"] == pytest.approx(3.8, abs=0.01)  # of 1, 1, 2, 3, 4
    assert row["p95WaitSeconds"] == pytest.approx(10, abs=0.01)  # the cancelled one waited 0

    day = await api.ok("GetTypeStats", {"rangeSeconds": 86400})
    [row] = [t for t in day["types"] if t["type"] == kind]
    assert row["finished"] == "6"
    assert row["p95WaitSeconds"] == pytest.approx(10 + 0.75 * (100 - 10), abs=0.01)  # of 0, 10 x4, 100

    # The chart: 60 buckets of a minute, oldest first, the last ending now; the finishes in theirs.
    buckets = hour["buckets"]
    assert len(buckets) == 60
    assert hour["bucketSeconds"] == 60
    starts = [parse_time(b["start"]) for b in buckets]
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(starts))
    assert recent(hour["until"])
    assert parse_time(hour["until"]) - starts[-1] == timedelta(minutes=1)
    counted = sum(int(b.get("succeeded", 0)) + int(b.get("failed", 0)) for b in buckets)
    assert counted >= 4  # ours (the cancelled one is neither); other tests' attempts may add
    # One bucket for the whole window when none is asked for.
    assert len(day["buckets"]) == 1
    assert day["bucketSeconds"] == 86400


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"rangeSeconds": 0}, "range_seconds"),
        ({"rangeSeconds": 59}, "range_seconds"),
        ({"rangeSeconds": 7 * 86400 + 1}, "range_seconds"),
        ({"rangeSeconds": 3600, "buckets": 1001}, "buckets"),
        ({"rangeSeconds": 3600, "buckets": -1}, "buckets"),
    ],
)
async def test_type_stats_refuses_a_range_or_buckets_out_of_bounds(
    api: Api, request_: dict[str, int], field: str
) -> None:
    message = await api.fails("GetTypeStats", request_, 400, "invalid_argument")
    assert message.startswith(f"{field}: "), message


async def test_get_worker_shows_its_latest_attempts_and_failures(api: Api) -> None:
    prefix = unique("worker-page")
    ok = await api.create(f"{prefix} ok")
    bad = await api.create(f"{prefix} bad", FAILING, maxRetries=0)
    await api.wait_status(ok, "SUCCEEDED")
    await api.wait_status(bad, "FAILED")
    [attempt] = await api.executions(bad)
    worker_id = attempt["workerId"]

    page = await api.ok("GetWorker", {"id": worker_id})
    assert page["worker"]["id"] == worker_id
    assert page["worker"]["kind"] == "worker"
    assert page["worker"]["alive"] is True
    assert page["worker"]["host"]
    ids = [int(a["id"]) for a in page["attempts"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    mine = {int(a["taskId"]): a for a in page["attempts"] if a["taskName"].startswith(prefix)}
    assert bad in mine
    assert mine[bad]["outcome"] == "failed"
    assert mine[bad]["error"]
    assert mine[bad]["taskType"] == "sleep"
    assert mine[bad]["attempt"] == 1
    assert mine[bad]["finishedAt"]
    failures = [int(a["taskId"]) for a in page["failures"]]
    assert bad in failures
    assert ok not in failures
    assert all(a["outcome"] in ("failed", "timed_out", "lost") for a in page["failures"])


async def test_list_tasks_sorted_by_a_column_when_few_match(api: Api, db: asyncpg.Connection) -> None:
    prefix = unique("sorted")
    ids: dict[str, int] = {}
    for letter, ran, outcome, worker in [
        ("b", 3.0, "failed", "worker-b"),
        ("a", 1.0, "succeeded", "worker-c"),
        ("c", 2.0, "failed", "worker-a"),
    ]:
        ids[letter] = task_id = await finished_task(
            db, "sleep", waited=0, ran=ran, ended_ago=5, outcome=outcome
        )
        await db.execute("UPDATE tasks SET name = $2 WHERE id = $1", task_id, f"{prefix} {letter}")
        await db.execute(
            "UPDATE task_executions SET worker_id = $2, error = CASE WHEN error IS NOT NULL THEN $3 END"
            " WHERE task_id = $1",
            task_id, worker, f"error {letter}",
        )  # fmt: skip
    ids["d"] = await api.create(f"{prefix} d", delaySeconds=LATER)  # no attempt: QUEUED, created last
    a, b, c, d = (ids[letter] for letter in "abcd")

    async def order(by: str, **page: int) -> list[int]:
        listed, total = await api.listed(nameContains=prefix, orderBy=by, **page)
        assert total == 4
        return listed

    assert await order("name_asc") == [a, b, c, d]
    assert await order("name_desc") == [d, c, b, a]
    assert await order("duration_desc") == [b, c, a, d]  # no attempt: last either way
    assert await order("duration_asc") == [a, c, b, d]
    assert await order("worker_asc") == [c, b, a, d]
    assert await order("worker_desc") == [a, b, c, d]
    assert await order("status_asc") == [d, c, b, a]  # QUEUED 0, FAILED 2 (ties newest first), SUCCEEDED 3
    assert await order("status_desc") == [a, c, b, d]
    assert await order("error_asc") == [b, c, d, a]  # no error: last, newest first
    assert await order("type_asc") == [d, c, a, b]  # all `sleep`: newest first (created b, a, c, d)
    assert await order("name_asc", limit=2, offset=1) == [b, c]
    listed = await api.ok("ListTasks", {"nameContains": prefix, "orderBy": "duration_desc"})
    assert [t["lastAttemptSeconds"] for t in listed["tasks"][:3]] == pytest.approx([3.0, 2.0, 1.0], abs=0.01)
    assert (await api.listed(nameContains=prefix, status="FAILED", orderBy="name_desc"))[0] == [c, b]

    message = await api.fails("ListTasks", {"orderBy": "duration"}, 400, "invalid_argument")
    assert message.startswith("order_by: must be a column (created, name, type, status, duration"), message


async def test_list_tasks_sorted_by_a_column_refused_when_too_many_match(
    api: Api, db: asyncpg.Connection
) -> None:
    kind = unique("many").replace(" ", "_")
    await db.execute(
        "INSERT INTO tasks (name, type, timeout_seconds, run_at)"
        " SELECT 'many ' || i, $1, 60, now() + interval '1 day' FROM generate_series(1, 10001) i",
        kind,
    )
    try:
        message = await api.fails(
            "ListTasks", {"type": kind, "orderBy": "duration_desc"}, 400, "invalid_argument"
        )
        assert message == (
            "order_by: sorting by duration takes at most 10,000 matching tasks (10,001 match): "
            "filter by status, type or name first, or sort by created"
        )
        listed, total = await api.listed(type=kind, orderBy="created_asc", limit=2)
        assert total == 10_001
        assert len(listed) == 2
        await db.execute("DELETE FROM tasks WHERE type = $1 AND name = 'many 10001'", kind)
        listed, total = await api.listed(type=kind, orderBy="name_desc", limit=1)
        assert (total, len(listed)) == (10_000, 1)
        assert (await api.get(listed[0]))["name"] == "many 9999"
    finally:
        await db.execute("DELETE FROM tasks WHERE type = $1", kind)


async def test_get_worker_needs_a_known_id(api: Api) -> None:
    assert (await api.fails("GetWorker", {}, 400, "invalid_argument")).startswith("id: ")
    assert (await api.fails("GetWorker", {"id": "x\ny"}, 400, "invalid_argument")).startswith("id: ")
    assert "not found" in await api.fails("GetWorker", {"id": "nobody-here"}, 404, "not_found")


async def test_list_tasks_oldest_first_and_each_ones_last_attempt(api: Api, db: asyncpg.Connection) -> None:
    prefix = unique("order")
    first = await api.create(f"{prefix} first", delaySeconds=LATER)
    done = await api.create(f"{prefix} done", FAST)
    failed = await api.create(f"{prefix} failed", FAILING, maxRetries=0)
    await api.wait_status(done, "SUCCEEDED")
    await api.wait_status(failed, "FAILED")

    assert await api.listed(nameContains=prefix) == ([failed, done, first], 3)
    assert await api.listed(nameContains=prefix, orderBy="created_desc") == ([failed, done, first], 3)
    assert await api.listed(nameContains=prefix, orderBy="created_asc") == ([first, done, failed], 3)
    for status in ("SUCCEEDED", "FAILED"):  # each statement has its oldest-first twin
        older = await api.ok("ListTasks", {"status": status, "orderBy": "created_asc", "limit": 100})
        ids = [t["id"] for t in older["tasks"]]
        assert ids == sorted(ids)
    message = await api.fails("ListTasks", {"orderBy": "priority"}, 400, "invalid_argument")
    assert message.startswith("order_by: "), message

    listed = {t["id"]: t for t in (await api.ok("ListTasks", {"nameContains": prefix}))["tasks"]}
    [attempt] = await api.executions(failed)
    assert listed[failed]["lastWorkerId"] == attempt["workerId"]
    assert listed[failed]["lastError"] == attempt["error"]
    assert listed[failed]["lastAttemptSeconds"] == pytest.approx(attempt["durationSeconds"], abs=0.01)
    assert listed[done]["lastWorkerId"]
    assert listed[done]["lastError"] == ""
    assert (listed[first]["lastWorkerId"], listed[first]["lastAttemptSeconds"]) == ("", 0)
    assert listed[failed]["workerId"] == ""  # the running attempt's worker only

    # A long error is cut in a list, and the task marked; GetTask gives it whole.
    long_error = "E" * 1000
    await db.execute(
        "UPDATE task_executions SET error = $2 FROM tasks t"
        " WHERE t.id = $1 AND task_executions.id = t.execution_id",
        failed, long_error,
    )  # fmt: skip
    cut = (await api.ok("ListTasks", {"nameContains": f"{prefix} failed"}))["tasks"][0]
    assert cut["lastError"] == "E" * 255 + "…"
    assert cut["truncated"] is True
    assert (await api.get(failed))["lastError"] == long_error

    # A running task's duration counts up from its start.
    running = await api.create(f"{prefix} running", {"seconds": "60"})
    await api.wait_status(running, "RUNNING")

    async def counted() -> float | None:
        task = await api.get(running)
        seconds = task.get("lastAttemptSeconds", 0.0)
        return seconds if seconds > 0 and task.get("lastWorkerId") == task.get("workerId") else None

    assert await eventually(counted) > 0
    await api.ok("CancelTask", {"id": running})
