"""The queue's plans on a table never analyzed (a new deployment's first burst) and on one that was."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskservice.store import Pool
from taskservice.store.sql import query

DUE = 20_000


async def fill(pool: Pool) -> None:
    """20,000 due tasks and a few running, as the first burst after a deployment leaves them."""
    await pool.execute(
        "INSERT INTO tasks (name, type, status, timeout_seconds, priority)"
        " SELECT 'burst ' || g, 'sleep', CASE WHEN g % 1000 = 0 THEN 1 ELSE 0 END, 60, g % 3"
        " FROM generate_series(1, $1) g",
        DUE,
    )


@contextlib.asynccontextmanager
async def explaining(conn: Any, plans: list[str]) -> AsyncIterator[None]:
    """Within the block, the plan of every statement `conn` runs, nested ones (in PL/pgSQL) included,
    is appended to `plans` (auto_explain, as notices)."""

    def listener(_conn: object, message: object) -> None:
        plans.append(str(getattr(message, "message", "")))

    conn.add_log_listener(listener)
    for setting in (
        "LOAD 'auto_explain'",
        "SET auto_explain.log_min_duration = 0",
        "SET auto_explain.log_nested_statements = on",
        "SET auto_explain.log_level = notice",
        "SET client_min_messages = notice",
    ):
        await conn.execute(setting)
    try:
        yield
    finally:
        conn.remove_log_listener(listener)
        await conn.execute("RESET ALL")


async def plans(pool: Pool, name: str, *args: object) -> tuple[str, str]:
    """The statement's plan for these values (custom) and its generic plan (what a prepared
    statement uses after five runs), as our pool's sessions make them."""
    async with pool.acquire() as conn:
        custom = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (COSTS OFF) {query(name)}", *args))
        types = {
            "claim_tasks": "text[], integer, text[], float8, text[]",
            "expired_leases": "integer",
            "list_tasks_of_status": "smallint, text, integer, integer",
        }[name]
        async with conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE generic ({types}) AS {query(name)}")
            try:
                literals = ", ".join(
                    "NULL" if a is None else f"'{a}'" if not isinstance(a, list) else f"'{{{','.join(a)}}}'"
                    for a in args
                )
                generic = "\n".join(
                    r[0] for r in await conn.fetch(f"EXPLAIN (COSTS OFF) EXECUTE generic ({literals})")
                )
            finally:
                await conn.execute("DEALLOCATE generic")
    return custom, generic


@pytest.mark.parametrize("pauses", [False, True], ids=["nothing paused", "pauses"])
@pytest.mark.parametrize("queues", [[], ["default", "mail"]], ids=["every queue", "some queues"])
@pytest.mark.parametrize("types", [[], ["sleep", "send_email"]], ids=["every type", "a worker's types"])
@pytest.mark.parametrize("analyzed", [False, True], ids=["never analyzed", "analyzed"])
async def test_a_claim_reads_the_queue_index_in_order(
    pool: Pool, analyzed: bool, types: list[str], queues: list[str], pauses: bool
) -> None:
    """Pauses or none (task_pauses then has no page: the planner guesses ten), every queue or some."""
    await fill(pool)
    if pauses:
        await pool.execute(
            "INSERT INTO task_pauses (kind, name) VALUES ('queue', 'reports'), ('type', 'run_query')"
        )
    if analyzed:
        await pool.execute("ANALYZE tasks")
    else:
        never = await pool.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'tasks'")
        assert never == -1  # no statistics: the planner has to guess
    # A worker or agent always names its types (worker/runtime.py); the dispatcher's claim too.
    for plan in await plans(pool, "claim_tasks", ["w"] * 100, 100, types, 30.0, queues):
        assert "Index Scan using idx_tasks_claimable on tasks" in plan, plan
        # No sort of the whole queue below the LIMIT (the sort at the top orders the 100 claimed).
        picked = plan.split("CTE picked")[1].split("CTE executions")[0]
        assert "Sort" not in picked, plan
        assert "Bitmap" not in picked, plan


async def test_the_reaper_and_status_pages_use_the_status_index(pool: Pool) -> None:
    await fill(pool)
    for plan in await plans(pool, "expired_leases", 1000):
        assert "idx_tasks_status_id" in plan, plan
        assert "Seq Scan on tasks" not in plan, plan
    for plan in await plans(pool, "list_tasks_of_status", 1, None, 30, 0):
        assert "idx_tasks_status_id" in plan, plan
        assert "Seq Scan on tasks" not in plan, plan


async def test_the_tasks_without_a_worker_metric_never_reads_the_tasks(pool: Pool) -> None:
    """Scraped every few seconds however many tasks wait: it reads the kept counts and the workers."""
    await fill(pool)
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"EXPLAIN (COSTS OFF) {query('waiting_without_live_worker')}", 30.0)
    plan = "\n".join(r[0] for r in rows)
    assert "on task_counts" in plan, plan
    assert "on tasks " not in plan, plan
    assert not plan.rstrip().endswith(" tasks"), plan


@pytest.mark.parametrize("analyzed", [False, True], ids=["never analyzed", "analyzed"])
async def test_a_limited_claim_walks_the_limited_index_key_by_key(pool: Pool, analyzed: bool) -> None:
    """20,000 unlimited tasks and 20,000 under a limit over 1,000 keys: the statements claim_limited
    runs (seen by auto_explain, nested in the claim) read the limited tasks' indexes, never the whole
    table and never a sort of a key's backlog; and the unlimited part still walks the claim index."""
    await fill(pool)
    await pool.execute(
        "INSERT INTO task_limits (kind, name, concurrency, key) VALUES ('type', 'limited', 2, 'customer')"
    )
    await pool.execute(
        "INSERT INTO tasks (name, type, timeout_seconds, limit_scope, limit_key)"
        " SELECT 'limited ' || g, 'limited', 60, 'type:limited', (g % 1000)::text"
        " FROM generate_series(1, $1) g",
        DUE,
    )
    if analyzed:
        await pool.execute("ANALYZE tasks")
    plans: list[str] = []
    async with pool.acquire() as conn, explaining(conn, plans):
        # A claim the unlimited tasks fill does not call claim_limited at all.
        claimed = await conn.fetch(query("claim_tasks"), ["w"] * 50, 50, ["sleep", "limited"], 30.0, [])
        assert {r["type"] for r in claimed} == {"sleep"}
        assert plans
        assert not [p for p in plans if "limit_key" in p], plans
        # More than five runs: PL/pgSQL's statements may switch to their generic plans by then.
        for _ in range(8):
            claimed = await conn.fetch(query("claim_tasks"), ["w"] * 50, 50, ["limited"], 30.0, [])
            assert len(claimed) == 50
            assert max(Counter(r["limit_key"] for r in claimed).values()) == 1  # keys in turn
    on_tasks = [p for p in plans if " on tasks" in p]
    for plan in on_tasks:
        assert "Seq Scan on tasks" not in plan, plan
        assert "Bitmap" not in plan, plan
    walks = [p for p in on_tasks if "ORDER BY t.limit_key" in p]
    assert walks
    assert all("idx_tasks_limited on tasks" in p and "Sort" not in p for p in walks), walks
    counts = [p for p in on_tasks if "GROUP BY t.limit_key" in p]
    assert counts
    assert all("idx_tasks_limited_running" in p for p in counts), counts
    fetches = [p for p in on_tasks if "LIMIT c.free" in p]
    assert fetches
    assert all("Index Scan using idx_tasks_limited on tasks" in p for p in fetches), fetches


@pytest.mark.parametrize("analyzed", [False, True], ids=["never analyzed", "analyzed"])
async def test_releasing_workflow_steps_reads_the_edges_by_index(pool: Pool, analyzed: bool) -> None:
    """20,000 tasks and five fan-out/fan-in workflows of 1,000 steps: finishing a batch of middle
    steps calls release_children once, whose statements (seen by auto_explain, nested) read the
    edges and the waiting steps by index, never a whole table; a batch without a step never calls it."""
    from taskservice import model
    from taskservice.rules.workflows import checked_graph
    from taskservice.store import Store

    await fill(pool)
    store = Store(pool)

    def step(name: str, *after: str) -> model.StepSpec:
        return model.StepSpec(name, model.NewTask(name, "fan"), after)

    middle = [f"m{i}" for i in range(998)]
    graph = checked_graph([step("root"), *(step(m, "root") for m in middle), step("sink", *middle)])
    for i in range(5):
        await store.create_workflow(f"fan {i}", graph)
    await pool.execute("UPDATE tasks SET status = 3 WHERE step = 'root'")  # as if the roots had run
    await pool.execute("UPDATE tasks SET status = 0, waiting_on = 0 WHERE step LIKE 'm%'")
    if analyzed:
        await pool.execute("ANALYZE")
    plans: list[str] = []
    async with pool.acquire() as conn, explaining(conn, plans):
        for _ in range(8):  # past PL/pgSQL's switch to generic plans
            claimed = await conn.fetch(query("claim_tasks"), ["w"] * 50, 50, ["fan"], 30.0, [])
            assert len(claimed) == 50
            outcomes = [
                (r["id"], r["execution_id"], 3, 0, 0, 0.0, "done", "succeeded", None, None, None)
                for r in claimed
            ]
            assert len(await conn.fetch(query("finish_attempts"), outcomes, "unused", None, None)) == 50
        unrelated = await conn.fetch(query("claim_tasks"), ["w"] * 50, 50, ["sleep"], 30.0, [])
        calls = len([p for p in plans if "unnest(parents)" in p])
        outcomes = [
            (r["id"], r["execution_id"], 3, 0, 0, 0.0, "done", "succeeded", None, None, None)
            for r in unrelated
        ]
        await conn.fetch(query("finish_attempts"), outcomes, "unused", None, None)
    releases = [p for p in plans if "unnest(parents)" in p]
    assert len(releases) == calls == 8  # once per batch, and not for the batch without a step
    for plan in releases:
        assert "Seq Scan" not in plan, plan
        assert "Bitmap" not in plan, plan
    sinks = await pool.fetch("SELECT waiting_on FROM tasks WHERE step = 'sink' ORDER BY id")
    assert sum(r["waiting_on"] for r in sinks) == 5 * 998 - 8 * 50
