"""The store against a real PostgreSQL: creation, queries, transitions, the queue and leases."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from conftest import eventually
from taskservice import model
from taskservice.db.connect import create_pool
from taskservice.model import IllegalTransition, NewTask, Outcome, RetryPolicy, Status
from taskservice.store import Pool, Store, TaskNotFound
from taskservice.store.sql import queries, query
from taskservice.store.store import Claim, _claims, _task


async def history_of(store: Store, task_id: int) -> list[tuple[Status, str]]:
    return [(h.status, h.details) for h in await store.history(task_id)]


async def test_create_writes_the_task_and_its_first_history_row(store: Store) -> None:
    task_id, created = await store.create_task(
        NewTask("Send Newsletter", "send_email", {"recipient": "a@b.c"}, description="weekly", priority=2)
    )
    assert created
    task = await store.get_task(task_id)
    assert (task.name, task.type, task.status, task.priority, task.description) == (
        "Send Newsletter", "send_email", Status.QUEUED, 2, "weekly",
    )  # fmt: skip
    assert task.parameters == {"recipient": "a@b.c"}
    assert task.payload == {"parameters": {"recipient": "a@b.c"}}
    assert (task.retries, task.attempts, task.max_retries) == (0, 0, 3)
    assert await history_of(store, task_id) == [(Status.QUEUED, "Task is scheduled")]


async def test_a_rejected_insert_leaves_nothing_behind(store: Store, pool: Pool) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await store.create_tasks([NewTask("ok", "sleep"), NewTask("bad", "sleep", priority=-1)])
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
    assert await pool.fetchval("SELECT count(*) FROM task_history") == 0


async def test_batch_create_returns_ids_in_input_order(store: Store) -> None:
    news = [NewTask(f"task {i}", "sleep", {"i": str(i)}) for i in range(50)]
    ids = [task_id for task_id, _ in await store.create_tasks(news)]
    assert len(set(ids)) == 50
    for i, task_id in enumerate(ids):
        assert (await store.get_task(task_id)).parameters == {"i": str(i)}


async def test_an_idempotency_key_returns_the_existing_task(store: Store) -> None:
    first, created = await store.create_task(NewTask("a", "sleep", idempotency_key="order-17"))
    again, created_again = await store.create_task(NewTask("b", "sleep", idempotency_key="order-17"))
    assert created
    assert not created_again
    assert first == again
    mixed = await store.create_tasks(
        [NewTask("c", "sleep"), NewTask("d", "sleep", idempotency_key="order-17"), NewTask("e", "sleep")]
    )
    assert [created for _, created in mixed] == [True, False, True]
    assert mixed[1][0] == first
    assert await store.count_tasks() == 3
    assert len(await store.history(first)) == 1


async def test_get_and_history_of_an_unknown_task(store: Store) -> None:
    with pytest.raises(TaskNotFound, match="task 999 not found"):
        await store.get_task(999)
    with pytest.raises(TaskNotFound):
        await store.history(999)
    with pytest.raises(TaskNotFound):
        await store.executions(999)


async def test_list_is_newest_first_with_filters_and_stable_pages(store: Store) -> None:
    ids = [
        i for i, _ in await store.create_tasks([NewTask(f"n{i}", "a" if i % 2 else "b") for i in range(10)])
    ]
    listed = [t.id for t in await store.list_tasks(limit=100)]
    assert listed == sorted(ids, reverse=True)
    pages = [t.id for offset in (0, 4, 8) for t in await store.list_tasks(limit=4, offset=offset)]
    assert pages == listed
    assert {t.type for t in await store.list_tasks(task_type="a")} == {"a"}
    assert await store.count_tasks(task_type="a") == 5
    await store.set_status(ids[0], Status.CANCELLED)
    assert [t.id for t in await store.list_tasks(status=Status.CANCELLED)] == [ids[0]]
    assert len(await store.list_tasks(status=Status.ALL)) == 10
    assert [t.name for t in await store.list_tasks(name_contains="N3")] == ["n3"]


async def test_a_filter_of_several_statuses_lists_and_counts_any_of_them(store: Store) -> None:
    """What an old client's FAILED filter asks for (FAILED and CANCELLED): every filter combined."""
    ids = [
        i for i, _ in await store.create_tasks([NewTask(f"n{i}", "a" if i % 2 else "b") for i in range(6)])
    ]
    for task_id in ids[:4]:
        await store.set_status(task_id, Status.CANCELLED)
    either = frozenset({Status.FAILED, Status.CANCELLED})
    assert [t.id for t in await store.list_tasks(status=either)] == sorted(ids[:4], reverse=True)
    assert await store.count_tasks(status=either) == 4
    assert [t.id for t in await store.list_tasks(status=either, task_type="a")] == [ids[3], ids[1]]
    assert await store.count_tasks(status=either, task_type="a") == 2
    assert [t.id for t in await store.list_tasks(status=either, name_contains="n2")] == [ids[2]]
    assert await store.count_tasks(status=either, name_contains="n2") == 1
    assert [t.id for t in await store.list_tasks(status=either, limit=2, offset=1)] == [ids[2], ids[1]]
    queued = frozenset({Status.QUEUED, Status.RETRYING})
    assert await store.count_tasks(status=queued) == 2
    assert await store.count_tasks(status=frozenset({Status.QUEUED})) == 2  # one status: as ever
    assert len(await store.list_tasks(status=frozenset({Status.ALL}))) == 6


async def test_status_counts_include_every_status(store: Store) -> None:
    await store.create_tasks([NewTask("x", "sleep"), NewTask("y", "sleep")])
    counts = await store.status_counts()
    assert counts == {
        Status.QUEUED: 2, Status.RUNNING: 0, Status.FAILED: 0, Status.SUCCEEDED: 0,
        Status.RETRYING: 0, Status.CANCELLED: 0, Status.WAITING: 0,
    }  # fmt: skip


async def test_claim_takes_by_priority_then_age_and_starts_an_attempt(store: Store) -> None:
    low, high, later = [
        i for i, _ in await store.create_tasks(
            [NewTask("low", "t"), NewTask("high", "t", priority=5), NewTask("later", "t", delay_seconds=60)]
        )
    ]  # fmt: skip
    claims = await store.claim("w1", 10)
    assert [c.task.id for c in claims] == [high, low]  # the delayed one is not due
    claim = claims[0]
    assert claim.task.status == Status.RUNNING
    assert claim.task.attempts == 1
    assert claim.task.lease_owner == "w1"
    assert await history_of(store, high) == [
        (Status.QUEUED, model.SCHEDULED),
        (Status.RUNNING, model.started(1)),
    ]
    [execution] = await store.executions(high)
    assert (execution.id, execution.attempt, execution.worker_id, execution.outcome) == (
        claim.execution_id, 1, "w1", Outcome.RUNNING,
    )  # fmt: skip
    assert await store.claim("w2", 10) == []
    assert (await store.get_task(later)).status == Status.QUEUED


async def test_a_claim_is_what_its_rows_make_through_the_dataclasses_init(store: Store, pool: Pool) -> None:
    # _claims builds the claimed tasks without the frozen dataclasses' __init__ (a worker's hot path).
    await store.create_tasks([
        NewTask("a", "t", parameters={"n": "1"}, priority=2, idempotency_key="k-a"),
        NewTask("b", "t", description="second", max_retries=0, queue="q"),
    ])  # fmt: skip
    rows = await pool.fetch(query("claim_tasks"), ["w1", "w1"], 2, [], 30.0, [])
    made = _claims(rows)
    assert len(made) == 2
    assert made == [Claim(_task(row), row["execution_id"]) for row in rows]
    assert [vars(c.task) for c in made] == [vars(_task(row)) for row in rows]  # no extra attribute
    assert made[0].parents is not made[1].parents  # each its own
    assert _claims([]) == []


async def test_claim_honours_the_type_filter(store: Store) -> None:
    await store.create_tasks([NewTask("a", "alpha"), NewTask("b", "beta")])
    assert [c.task.type for c in await store.claim("w", 10, ["beta"])] == ["beta"]
    assert [c.task.type for c in await store.claim("w", 10, ["beta"])] == []
    assert [c.task.type for c in await store.claim("w", 10)] == ["alpha"]


async def test_concurrent_claims_never_share_a_task(store: Store) -> None:
    await store.create_tasks([NewTask(f"t{i}", "t") for i in range(300)])
    results = await asyncio.gather(*(store.claim(f"w{i}", 25) for i in range(8)))
    claimed = [c.task.id for claims in results for c in claims]
    assert len(claimed) == len(set(claimed)) == 200


async def test_finish_moves_only_tasks_still_held(store: Store) -> None:
    ids = [i for i, _ in await store.create_tasks([NewTask("a", "t"), NewTask("b", "t")])]
    claims = {c.task.id: c for c in await store.claim("w1", 2)}
    await store.set_status(ids[1], Status.CANCELLED, "not needed")
    transitions = [model.succeeded(claims[i].task, claims[i].execution_id, {"n": i}) for i in ids]
    counted = await store.finish(transitions)
    assert counted == {claims[ids[0]].execution_id}  # the cancelled one's outcome was refused
    assert (await store.get_task(ids[0])).status == Status.SUCCEEDED
    assert (await store.get_task(ids[1])).status == Status.CANCELLED
    assert (await store.executions(ids[0]))[0].result == {"n": ids[0]}
    # The cancel closed the attempt; the late report does not rewrite it.
    assert (await store.executions(ids[1]))[0].outcome == Outcome.CANCELLED
    assert (await history_of(store, ids[1]))[-1] == (Status.CANCELLED, "Task cancelled: not needed")


async def test_a_retry_is_not_due_before_its_backoff(store: Store) -> None:
    task_id, _ = await store.create_task(NewTask("a", "t"))
    [claim] = await store.claim("w1", 1)
    transition = model.attempt_failed(
        claim.task, claim.execution_id, "Task failed", "boom", RetryPolicy(60, 60)
    )
    await store.finish([transition])
    task = await store.get_task(task_id)
    assert (task.status, task.retries) == (Status.RETRYING, 1)
    assert await store.claim("w1", 1) == []


async def test_operator_transitions(store: Store) -> None:
    task_id, _ = await store.create_task(NewTask("a", "t"))
    with pytest.raises(TaskNotFound):
        await store.set_status(12345, Status.CANCELLED)
    with pytest.raises(IllegalTransition, match="can move to SUCCEEDED only from RUNNING"):
        await store.set_status(task_id, Status.SUCCEEDED)
    with pytest.raises(IllegalTransition):
        await store.set_status(task_id, Status.RUNNING)  # workers own RUNNING
    [claim] = await store.claim("w1", 1)
    await store.finish(
        [
            model.attempt_failed(
                claim.task, claim.execution_id, "Task failed", "x", RetryPolicy(), retryable=False
            )
        ]
    )
    assert (await store.get_task(task_id)).status == Status.FAILED
    with pytest.raises(IllegalTransition):
        await store.set_status(task_id, Status.CANCELLED)
    again = await store.set_status(task_id, Status.QUEUED, "after the fix")
    assert (again.status, again.retries) == (Status.QUEUED, 0)
    assert (await history_of(store, task_id))[-1] == (Status.QUEUED, "Task queued again: after the fix")
    [claim] = await store.claim("w2", 1)
    assert claim.task.attempts == 2
    assert (await history_of(store, task_id))[-1] == (Status.RUNNING, "Task started (Attempt 2)")


async def test_expired_leases_are_reaped_with_history(store: Store) -> None:
    keep, lose, last = [
        i for i, _ in await store.create_tasks(
            [NewTask("keep", "t"), NewTask("lose", "t"), NewTask("last", "t", max_retries=0)]
        )
    ]  # fmt: skip
    claims = {c.task.id: c for c in await store.claim("dead-worker", 3, lease_seconds=0.05)}
    kept = claims[keep].execution_id
    assert await store.extend_leases("dead-worker", [kept], 60) == {kept}
    # Both leases were taken in one statement, so they expire at the same instant.
    transitions = await eventually(lambda: store.reap_expired_leases(RetryPolicy()))
    assert {t.task_id for t in transitions} == {lose, last}
    lost = await store.get_task(lose)
    # A lost lease spends no retry, even for a task that has none.
    assert (lost.status, lost.retries, lost.lost_leases, lost.lease_owner) == (Status.RETRYING, 0, 1, None)
    assert (await history_of(store, lose))[-1] == (
        Status.RETRYING,
        "Lease expired (Attempt 1): worker dead-worker stopped responding;"
        " queued again without spending a retry (1 of 3 lost leases)",
    )
    assert (await store.get_task(last)).status == Status.RETRYING
    assert (await store.executions(lose))[0].outcome == Outcome.LOST
    assert (await store.get_task(keep)).status == Status.RUNNING
    # The lost task is due again at once, as attempt 2.
    again = {c.task.id: c for c in await store.claim("w2", 5)}
    assert again[lose].task.attempts == 2
    # The dead worker's late report is refused and changes nothing: the new attempt stands.
    late = model.succeeded(claims[lose].task, claims[lose].execution_id, None)
    assert await store.finish([late]) == set()
    assert [e.outcome for e in await store.executions(lose)] == [Outcome.LOST, Outcome.RUNNING]
    assert (await store.get_task(lose)).execution_id == again[lose].execution_id
    # Nor can it extend the lease of its old attempt.
    assert await store.extend_leases("dead-worker", [claims[lose].execution_id], 60) == set()


async def test_a_task_that_keeps_losing_its_lease_is_stopped(store: Store) -> None:
    task_id, _ = await store.create_task(NewTask("killer", "t", max_retries=5))
    policy = RetryPolicy(max_lost_leases=3)
    for lost in range(1, 4):
        [claim] = await store.claim(f"victim-{lost}", 1, lease_seconds=0.01)
        [transition] = await eventually(lambda: store.reap_expired_leases(policy))
        assert transition.execution_id == claim.execution_id
    task = await store.get_task(task_id)
    assert (task.status, task.retries, task.lost_leases) == (Status.FAILED, 0, 3)
    assert (await history_of(store, task_id))[-1] == (
        Status.FAILED,
        "Lease expired (Attempt 3): worker victim-3 stopped responding;"
        " lost 3 leases (MAX_LOST_LEASES=3): giving up",
    )
    # Queued again by hand, it starts over.
    assert (await store.set_status(task_id, Status.QUEUED)).lost_leases == 0


async def test_heartbeat_reports_what_was_taken_away(store: Store) -> None:
    a, b = [i for i, _ in await store.create_tasks([NewTask("a", "t"), NewTask("b", "t")])]
    claims = {c.task.id: c.execution_id for c in await store.claim("w1", 2)}
    await store.set_status(b, Status.CANCELLED)
    assert await store.extend_leases("w1", [claims[a], claims[b]], 30) == {claims[a]}
    assert await store.extend_leases("w2", [claims[a]], 30) == set()  # not w2's attempt


async def test_workers_are_registered_and_listed(store: Store) -> None:
    await store.register_worker("w-1", "host-a", 123, 8, ["sleep"])
    await store.create_task(NewTask("a", "sleep"))
    await store.claim("w-1", 1)
    [info] = await store.list_workers()
    assert (info.id, info.host, info.pid, info.concurrency, info.task_types, info.running) == (
        "w-1", "host-a", 123, 8, ["sleep"], 1,
    )  # fmt: skip
    assert info.stopped_at is None
    await store.stop_worker("w-1")
    assert (await store.list_workers())[0].stopped_at is not None


async def test_every_named_query_plans(pool: Pool) -> None:
    """Each statement of queries.sql is valid SQL against the migrated schema."""
    async with pool.acquire() as conn:
        for name, text in queries().items():
            if name in ("create_database", "vacuum_table"):  # templates (a name cannot be a parameter)
                continue
            try:
                await conn.prepare(text)
            except asyncpg.PostgresError as error:  # pragma: no cover - the message is the point
                pytest.fail(f"query {name} does not prepare: {error}")


async def test_closing_an_attempt_is_a_hot_update_on_every_postgresql(database_url: str) -> None:
    """The finish rewrites no index entry of the attempt it closes (issue 26): on 16 and later the BRIN
    index on finished_at allows a HOT update; before 16 there is no index on it (migration 0120)."""
    async with await create_pool(database_url, max_size=1) as own:  # one session: its own statistics
        store = Store(own)
        await store.create_tasks([NewTask(f"t{i}", "sleep") for i in range(100)])
        claims = await store.claim("w1", 100)
        counted = await store.finish([model.succeeded(c.task, c.execution_id, None) for c in claims])
        assert len(counted) == 100
        await own.execute("SELECT pg_stat_force_next_flush()")  # flushed as the session goes idle
        row = await own.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'task_executions'"
        )
    assert row is not None
    updated, hot = row
    # A page fills as its rows close (each grows by its end), so a few of a page's last closes can find
    # no room left on it (6 of 100 here on 15 and 18); without HOT, none of them would be.
    assert updated == 100
    assert hot >= 90, hot
