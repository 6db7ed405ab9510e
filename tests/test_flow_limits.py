"""Concurrency and rate limits (issue 21): at most N attempts running and at most N starts per period,
per task type or queue and per key, enforced by the claim itself for every worker, agent and server."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

import taskservice
from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually, subprocess_env
from taskservice import model
from taskservice.client.asynchronous import AsyncClient
from taskservice.config import Settings
from taskservice.model import NewTask, Rate, RetryPolicy, Status
from taskservice.plugins.declare import TaskTypeSpec
from taskservice.store import Claim, Store
from taskservice.store import limits as limits_store
from test_counts import assert_counts_right


async def limit(
    store: Store,
    concurrency: int | None = None,
    rate: str | None = None,
    key: str | None = None,
    *,
    kind: str = "type",
    name: str = "sleep",
) -> None:
    parsed = Rate.parse(rate) if rate else None
    changes = {"concurrency": concurrency, "rate": parsed, "key": key}
    await limits_store.set_limit(store.pool, kind, name, changes, "test")


async def create(store: Store, keys: list[str], task_type: str = "sleep", **options: str) -> list[int]:
    made = await store.create_tasks(
        [NewTask(f"{task_type} {i}", task_type, {"customer": k}, **options) for i, k in enumerate(keys)]  # type: ignore[arg-type]
    )
    return [task_id for task_id, _ in made]


def keys_of(claims: list[Claim]) -> list[str]:
    return [c.task.limit_key or "" for c in claims]


async def succeed(store: Store, claims: list[Claim]) -> None:
    assert await store.finish([model.succeeded(c.task, c.execution_id, None) for c in claims])


# -- one claimer ----------------------------------------------------------------------------------------


async def test_at_most_n_run_per_key_and_a_finished_one_frees_its_slot(store: Store) -> None:
    await limit(store, concurrency=2, key="customer")
    await create(store, ["a", "b", "c"] * 4)
    first = await store.claim("w", 20)
    assert sorted(keys_of(first)) == ["a", "a", "b", "b", "c", "c"]
    assert await store.claim("w", 20) == []
    await succeed(store, [c for c in first if c.task.limit_key == "b"][:1])
    assert keys_of(await store.claim("w", 20)) == ["b"]
    await assert_counts_right(store)


async def test_keys_take_turns_so_one_keys_backlog_starves_no_other(store: Store) -> None:
    """Key "big" has 200 tasks, older and of higher priority than the others' two each."""
    await limit(store, concurrency=1000, key="customer")
    await store.create_tasks(
        [NewTask(f"big {i}", "sleep", {"customer": "big"}, priority=5) for i in range(200)]
    )
    await create(store, ["k1", "k2", "k3", "k4"] * 2)
    one_each = await store.claim("w", 5)
    assert sorted(keys_of(one_each)) == ["big", "k1", "k2", "k3", "k4"]
    # Claims of one at a time go round the keys, each from where the last one stopped.
    turns = [keys_of(await store.claim("w", 1)) for _ in range(5)]
    assert turns == [["big"], ["k1"], ["k2"], ["k3"], ["k4"]]
    # Within a key, the claim order holds: priority, then due time, then age.
    oldest_big = await store.pool.fetchval("SELECT min(id) FROM tasks WHERE limit_key = 'big'")
    assert next(c.task.id for c in one_each if c.task.limit_key == "big") == oldest_big


async def test_a_limit_without_a_key_counts_the_type_as_a_whole(store: Store) -> None:
    await limit(store, concurrency=3)
    await create(store, ["a", "b", "c", "d", "e"])
    assert len(await store.claim("w", 10)) == 3
    assert await store.claim("w", 10) == []


async def test_a_task_given_its_own_key_counts_under_it(store: Store) -> None:
    await limit(store, concurrency=1, key="customer")
    await store.create_tasks(
        [NewTask(f"t{i}", "sleep", {"customer": str(i)}, limit_key="shared") for i in range(3)]
    )
    assert keys_of(await store.claim("w", 10)) == ["shared"]


async def test_starts_never_exceed_the_rate_in_any_window(store: Store) -> None:
    """The window is the database's clock: moving the kept starts back a period frees them."""
    await limit(store, rate="3/h", key="customer")
    await create(store, ["a"] * 5 + ["b"] * 5)
    first = await store.claim("w", 10)
    assert sorted(keys_of(first)) == ["a", "a", "a", "b", "b", "b"]
    await succeed(store, first)  # finishing frees no start: the rate counts starts, not runs
    assert await store.claim("w", 10) == []
    waiting = await store.pool.fetch("SELECT id FROM tasks WHERE status = 0 ORDER BY id")
    waits = await limits_store.waits(store.pool, [r["id"] for r in waiting])
    assert {w.out_of_starts for w in waits.values()} == {True}
    assert len(waits) == 4
    await store.pool.execute("UPDATE task_limit_keys SET starts[1] = starts[1] - interval '61 minutes'")
    assert sorted(keys_of(await store.claim("w", 10))) == ["a", "b"]  # one start each left the window


async def test_concurrency_and_rate_together(store: Store) -> None:
    await limit(store, concurrency=1, rate="2/h")
    await create(store, ["a"] * 4)
    [one] = await store.claim("w", 10)
    assert await store.claim("w", 10) == []  # concurrency: one runs
    await succeed(store, [one])
    [two] = await store.claim("w", 10)
    await succeed(store, [two])
    assert await store.claim("w", 10) == []  # the rate: two starts this hour, though none runs


async def test_many_claimers_at_once_never_exceed_the_limit(store: Store) -> None:
    await limit(store, concurrency=2, key="customer")
    await create(store, [f"k{i % 5}" for i in range(100)])
    rounds = await asyncio.gather(*(store.claim(f"w{i}", 7) for i in range(12)))
    counts = Counter(k for claims in rounds for k in keys_of(claims))
    assert counts == {f"k{i}": 2 for i in range(5)}


async def test_a_lost_lease_holds_its_slot_until_reaped(store: Store) -> None:
    await limit(store, concurrency=1, key="customer")
    await create(store, ["a", "a"])
    [held] = await store.claim("w", 10, lease_seconds=30)
    await store.pool.execute("UPDATE task_executions SET lease_expires_at = now() - interval '1 second'")
    assert await store.claim("w2", 10) == []  # its worker may still be running it: it counts
    [reaped] = await store.reap_expired_leases(RetryPolicy())
    assert reaped.task_id == held.task.id
    assert len(await store.claim("w2", 10)) == 1


async def test_paused_and_filtered_limited_tasks_are_not_taken(store: Store) -> None:
    await limit(store, concurrency=5, kind="queue", name="mail")
    await create(store, ["a", "b"], queue="mail")
    await create(store, ["c"], task_type="send_email", queue="mail")
    assert {c.task.type for c in await store.claim("w", 10, task_types=["send_email"])} == {"send_email"}
    assert await store.claim("w", 10, queues=["default"]) == []
    await store.pause("type", "sleep")
    assert await store.claim("w", 10) == []
    await store.resume("type", "sleep")
    await store.pause("queue", "mail")
    assert await store.claim("w", 10) == []
    await store.resume("queue", "mail")
    assert len(await store.claim("w", 10)) == 2


async def test_a_types_limit_comes_before_its_queues(store: Store) -> None:
    await limit(store, concurrency=10, kind="queue", name="mail")
    await limit(store, concurrency=1, key="customer")
    ids = await create(store, ["a", "a"], queue="mail")
    scopes = {(await store.get_task(i)).limit_scope for i in ids}
    assert scopes == {"type:sleep"}
    assert len(await store.claim("w", 10)) == 1


async def test_setting_changing_and_clearing_a_limit_puts_the_waiting_tasks_under_it(store: Store) -> None:
    ids = await create(store, ["a", "a", "b"])
    assert {(await store.get_task(i)).limit_scope for i in ids} == {None}
    await limit(store, concurrency=1, key="customer")
    tasks = [await store.get_task(i) for i in ids]
    assert [(t.limit_scope, t.limit_key) for t in tasks] == [
        ("type:sleep", "a"),
        ("type:sleep", "a"),
        ("type:sleep", "b"),
    ]
    await limit(store, concurrency=1)  # a new key parameter: re-keyed
    assert {(await store.get_task(i)).limit_key for i in ids} == {""}
    assert len(await store.claim("w", 10)) == 1
    await limit(store)  # cleared: back to the claim index, unlimited
    assert {
        (await store.get_task(i)).limit_scope
        for i in ids
        if (await store.get_task(i)).status == Status.QUEUED
    } == {None}
    assert len(await store.claim("w", 10)) == 2
    [cleared] = [x for x in await limits_store.limits(store.pool) if x.name == "sleep"]
    assert (cleared.concurrency, cleared.rate, cleared.active) == (None, None, False)


async def test_a_declared_limit_applies_unless_one_was_set_at_run_time(store: Store) -> None:
    spec = TaskTypeSpec(extra_parameters=True, concurrency=2, concurrency_key="customer", rate_limit="10/min")
    await store.register_task_types({"report": spec.to_json()})
    [declared] = await limits_store.limits(store.pool)
    assert (declared.concurrency, str(declared.rate), declared.key, declared.set_by) == (
        2,
        "10/min",
        "customer",
        None,
    )
    await limits_store.set_limit(
        store.pool, "type", "report", {"concurrency": 7, "rate": None, "key": None}, "alice"
    )
    await store.register_task_types({"report": spec.to_json()})  # a worker restarts: the operator's stays
    [kept] = await limits_store.limits(store.pool)
    assert (kept.concurrency, kept.rate, kept.set_by) == (7, None, "alice")


async def test_enqueue_in_the_callers_transaction_puts_the_task_under_its_limit(
    database_url: str, store: Store
) -> None:
    await limit(store, concurrency=1, key="customer")
    with psycopg.connect(database_url) as conn:
        first = taskservice.enqueue(conn, type="sleep", parameters={"customer": "x"})
        own = taskservice.enqueue(conn, type="sleep", options=taskservice.TaskOptions(limit_key="y"))
        conn.commit()
    assert [((t := await store.get_task(i)).limit_scope, t.limit_key) for i in (first, own)] == [
        ("type:sleep", "x"),
        ("type:sleep", "y"),
    ]


async def test_a_long_key_is_cut_keeping_a_digest(store: Store) -> None:
    await limit(store, concurrency=1, key="customer")
    [a, b] = await create(store, ["k" * 5000 + "1", "k" * 5000 + "2"])
    ka, kb = (await store.get_task(a)).limit_key, (await store.get_task(b)).limit_key
    assert ka
    assert kb
    assert ka != kb
    assert len(ka) < 250


# -- the whole: several worker and agent processes ------------------------------------------------------


def _worker(settings: Settings, log: Path, *options: str) -> AgentProcess:
    args = [sys.executable, "-m", "taskservice.cli", "--log-level", "info", "serve", *options]
    return AgentProcess(args, subprocess_env(settings), log)


async def _attempts(store: Store) -> list[tuple[str, datetime, datetime]]:
    rows = await store.pool.fetch(
        "SELECT t.limit_key, e.started_at, e.finished_at"
        " FROM task_executions e JOIN tasks t ON t.id = e.task_id"
    )
    return [(r["limit_key"], r["started_at"], r["finished_at"]) for r in rows]


def most_at_once(attempts: list[tuple[str, datetime, datetime]]) -> dict[str, int]:
    """By key, the most attempts running at one time, from their own start and end times."""
    by_key: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for key, start, end in attempts:
        by_key[key].append((start, end))
    return {
        key: max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
        for key, spans in by_key.items()
    }


def most_in_a_window(starts: list[datetime], period: timedelta) -> int:
    starts = sorted(starts)
    return max(sum(1 for s in starts[i:] if s < first + period) for i, first in enumerate(starts))


async def test_workers_and_agents_together_never_run_more_than_n_per_key_nor_start_above_the_rate(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Both limits per customer: 2 at once, 10 starts a second (the rate binds: each run is short)."""
    server = workerless_server
    await limit(store, concurrency=2, rate="10/s", key="customer")
    processes = [
        _worker(settings, tmp_path / "w1.log", "-c", "6"),
        _worker(settings, tmp_path / "w2.log", "-c", "6"),
        AgentProcess.cli(server, agent_env(settings), tmp_path / "agent.log", "-c", "6"),
    ]
    try:
        async with AsyncClient(server.url) as client:

            async def live_workers() -> bool:
                return sum(w.alive for w in await client.list_workers()) == 3

            await eventually(live_workers, timeout=60)  # all three compete from the first task on
            made = await client.create_tasks(
                [NewTask(f"s{i}", "sleep", {"seconds": "0.05", "customer": f"c{i % 4}"}) for i in range(80)]
            )
            ids = {h.id for h in made}

            async def finished() -> bool:
                return {(await store.get_task(i)).status for i in ids} == {Status.SUCCEEDED}

            await eventually(finished, timeout=180)
        attempts = await _attempts(store)
        assert len(attempts) == 80
        assert max(most_at_once(attempts).values()) <= 2
        by_key: dict[str, list[datetime]] = defaultdict(list)
        for key, start, _ in attempts:
            by_key[key].append(start)
        assert sorted(by_key) == ["c0", "c1", "c2", "c3"]
        assert max(most_in_a_window(starts, timedelta(seconds=1)) for starts in by_key.values()) <= 10
        # Woken together, each claiming up to 6 of the 8 slots the limit allows: more than one gets some.
        runners = await store.pool.fetch("SELECT DISTINCT worker_id FROM task_executions")
        assert len(runners) >= 2
        await assert_counts_right(store)
    finally:
        codes = [p.stop() for p in processes]
    assert codes == [0, 0, 0], [p.log() for p in processes]


@pytest.mark.parametrize("n", [1, 3])
def test_most_at_once_counts_overlaps(n: int) -> None:
    t0 = datetime(2026, 1, 1)
    spans = [("k", t0 + timedelta(seconds=i), t0 + timedelta(seconds=i + n)) for i in range(10)]
    assert most_at_once(spans) == {"k": n}
    assert most_in_a_window([s for _, s, _ in spans], timedelta(seconds=n)) == n


async def test_the_metrics_show_each_limits_waits_and_runs_without_a_label_per_key(
    workerless_server: ServerProcess, store: Store
) -> None:
    await limit(store, concurrency=1, key="customer")
    await create(store, ["a", "a", "a", "b", "c"])
    await store.claim("w", 10)  # one of each key runs: "a" has two waiting, "b" and "c" none
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{workerless_server.url}/metrics", timeout=10)).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("taskservice_limit_")
        for s in family.samples
    }
    scope = (("scope", "type:sleep"),)
    assert samples == {
        ("taskservice_limit_waiting", scope): 2.0,
        ("taskservice_limit_keys_waiting", scope): 1.0,
        ("taskservice_limit_most_for_a_key", scope): 2.0,
        ("taskservice_limit_running", scope): 3.0,
        ("taskservice_limit_keys_at_limit", scope): 3.0,
    }


async def test_a_task_left_under_a_cleared_limit_is_still_claimed_and_nothing_is_locked(store: Store) -> None:
    """A task created with the old limit while it was being cleared waits under a limit row without
    numbers: claimed at once, without taking the row's lock."""
    await limit(store, concurrency=1)
    await limit(store)  # cleared
    [straggler] = await create(store, ["a"])
    await store.pool.execute(
        "UPDATE tasks SET limit_scope = 'type:sleep', limit_key = '' WHERE id = $1", straggler
    )
    async with store.pool.acquire() as other, other.transaction():
        await other.execute("SELECT 1 FROM task_limits FOR UPDATE")  # another claimer holding the row
        [claimed] = await store.claim("w", 10)  # would wait forever if it took the lock
    assert claimed.task.id == straggler
