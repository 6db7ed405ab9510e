"""Bulk actions (issue 21): cancel, retry and delete many tasks in one call, by ids or by a filter, in
batches of short transactions; each task with its history row, counts kept right, attempts fenced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from api_helpers import Api, unique
from taskservice import model
from taskservice.model import CANCELLABLE, FINISHED, IdSpan, NewTask, Outcome, Status, TaskSelection
from taskservice.store import Store
from taskservice.store.sql import query
from test_counts import assert_counts_right


async def statuses_of(store: Store, ids: list[int]) -> dict[int, Status]:
    rows = await store.pool.fetch("SELECT id, status FROM tasks WHERE id = ANY($1::bigint[])", ids)
    return {row["id"]: Status(row["status"]) for row in rows}


async def make(store: Store, count: int, kind: str = "send_email", name: str = "task") -> list[int]:
    created = await store.create_tasks([NewTask(f"{name} {i}", kind) for i in range(count)])
    return [task_id for task_id, _ in created]


async def finish(store: Store, ids: list[int], status: Status) -> None:
    """Move tasks `ids` to a finished status (the test's own shortcut: the kept counts follow)."""
    await store.pool.execute("UPDATE tasks SET status = $1 WHERE id = ANY($2::bigint[])", int(status), ids)


# -- the store ---------------------------------------------------------------------------------


async def test_a_bulk_cancel_of_10000_queued_tasks_in_one_call(store: Store) -> None:
    doomed = await make(store, 10_000)
    kept = await make(store, 3, kind="run_query") + await make(store, 2)
    await finish(store, kept[3:], Status.SUCCEEDED)  # of the type, but finished: not cancellable

    selection = TaskSelection(statuses=frozenset({Status.QUEUED}), type="send_email")
    assert await store.count_selected(selection, CANCELLABLE) == 10_000  # the dry run
    count, left = await store.cancel_tasks(selection, model.cancelled_details("too many e-mails"))

    assert (count, left) == (10_000, None)
    statuses = await statuses_of(store, doomed + kept)
    assert {statuses[i] for i in doomed} == {Status.CANCELLED}
    assert [statuses[i] for i in kept] == [Status.QUEUED] * 3 + [Status.SUCCEEDED] * 2
    rows = await store.pool.fetch(
        "SELECT task_id, count(*) AS n, min(details) AS details FROM task_history"
        " WHERE task_id = ANY($1::bigint[]) AND status = 7 GROUP BY task_id",
        doomed,
    )
    assert len(rows) == 10_000
    assert {(r["n"], r["details"]) for r in rows} == {(1, "Task cancelled: too many e-mails")}
    await assert_counts_right(store)
    assert await store.cancel_tasks(selection, "again") == (0, None)  # nothing left to cancel


async def test_the_filter_conditions_each_narrow_the_selection(store: Store) -> None:
    a, b, c = await make(store, 3, kind="alpha", name="Weekly Report")
    d, e = await make(store, 2, kind="beta", name="daily 100%_done")
    old, middle, new = (datetime(2026, month, 1, tzinfo=UTC) for month in (1, 3, 6))
    for when, ids in ((old, [a, d]), (middle, [c]), (new, [b, e])):
        await store.pool.execute("UPDATE tasks SET created_at = $1 WHERE id = ANY($2::bigint[])", when, ids)
    await finish(store, [c], Status.FAILED)

    async def selected(**conditions: Any) -> set[int]:
        """The tasks of any status a batch would pick (read, not changed), and the dry run agrees."""
        selection = TaskSelection(**conditions)
        every = frozenset(model.TASK_STATUSES)
        statuses = sorted(int(s) for s in selection.statuses_within(every))
        rows = await store.pool.fetch(
            query("pick_tasks"), 0, e, statuses, 100, *store._conditions(selection)
        )  # fmt: skip
        picked = {row["id"] for row in rows}
        assert await store.count_selected(selection, every) == len(picked)
        return picked

    assert await selected(type="alpha") == {a, b, c}
    assert await selected(statuses=frozenset({Status.FAILED})) == {c}
    assert await selected(statuses=frozenset({Status.QUEUED}), type="alpha") == {a, b}
    assert await selected(name_contains="weekly") == {a, b, c}  # any case
    assert await selected(name_contains="100%_") == {d, e}  # LIKE's wildcards match themselves
    assert await selected(name_contains="1000") == set()
    assert await selected(created_after=new) == {b, e}  # at or after
    assert await selected(created_before=new) == {a, c, d}  # before
    assert await selected(created_after=middle, created_before=new) == {c}
    assert await selected(ids=(b, c, e), type="beta") == {e}
    assert await selected(ids=(b,)) == {b}
    await store.pool.execute("UPDATE tasks SET queue = 'nightly' WHERE id = ANY($1::bigint[])", [b, d])
    assert await selected(queue="nightly") == {b, d}
    assert await selected(queue="nightly", type="beta") == {d}
    assert await selected(queue="default") == {a, c, e}


async def test_cancel_acts_only_on_what_may_be_cancelled_and_by_ids(store: Store) -> None:
    queued, running, done, other = await make(store, 4)
    await finish(store, [done], Status.SUCCEEDED)
    [claim] = await store.claim("w1", 1)
    assert claim.task.id == queued  # the oldest first
    queued, running = running, queued

    count = await store.cancel_tasks(TaskSelection(ids=(queued, running, done)), "Task cancelled")
    assert count == (2, None)
    statuses = await statuses_of(store, [queued, running, done, other])
    assert statuses == {
        queued: Status.CANCELLED,
        running: Status.CANCELLED,
        done: Status.SUCCEEDED,
        other: Status.QUEUED,
    }
    # The running task's attempt is fenced, as a single cancel does: closed, its heartbeat and report
    # refused.
    [execution] = await store.executions(running)
    assert (execution.outcome, execution.finished_at is not None) == (Outcome.CANCELLED, True)
    assert await store.extend_leases("w1", [claim.execution_id], 30.0) == set()
    assert await store.finish([model.succeeded(claim.task, claim.execution_id, None)]) == set()
    assert (await store.get_task(running)).status == Status.CANCELLED
    await assert_counts_right(store)


async def test_retry_queues_finished_tasks_again_with_a_fresh_budget(store: Store) -> None:
    failed, cancelled, queued = await make(store, 3, kind="alpha")
    await finish(store, [failed], Status.FAILED)
    await finish(store, [cancelled], Status.CANCELLED)
    await store.pool.execute("UPDATE tasks SET retries = 2 WHERE id = $1", failed)

    details = model.requeued_details("once more")
    assert await store.retry_tasks(TaskSelection(type="alpha"), details) == (2, None)
    assert await statuses_of(store, [failed, cancelled, queued]) == dict.fromkeys(
        [failed, cancelled, queued], Status.QUEUED
    )
    assert (await store.get_task(failed)).retries == 0
    for task_id in (failed, cancelled):
        assert (await store.history(task_id))[-1].details == "Task queued again: once more"
    assert len(await store.history(queued)) == 1  # it was not finished: untouched
    await assert_counts_right(store)


async def test_delete_takes_finished_tasks_with_their_history_never_a_running_one(store: Store) -> None:
    running, done, failed, queued = await make(store, 4)
    [claim] = await store.claim("w1", 1)
    assert claim.task.id == running
    await finish(store, [done], Status.SUCCEEDED)
    await finish(store, [failed], Status.FAILED)

    everything = TaskSelection()  # the API asks for `all` to send this
    assert await store.count_selected(everything, model.DELETABLE) == 2
    assert await store.delete_tasks(everything) == (2, None)
    assert set(await statuses_of(store, [running, done, failed, queued])) == {running, queued}
    left = await store.pool.fetchval(
        "SELECT count(*) FROM task_history WHERE task_id = ANY($1::bigint[])", [done, failed]
    )
    assert left == 0
    assert (await store.get_task(running)).status == Status.RUNNING
    await assert_counts_right(store)


async def test_small_batches_still_take_every_task_and_the_call_ends(store: Store) -> None:
    ids = await make(store, 53)
    count = await store.cancel_tasks(TaskSelection(statuses=frozenset({Status.QUEUED})), "x", batch=10)
    assert count == (53, None)
    assert set((await statuses_of(store, ids)).values()) == {Status.CANCELLED}
    assert await store.retry_tasks(TaskSelection(ids=tuple(ids)), "y", batch=7) == (53, None)
    await finish(store, ids, Status.FAILED)
    assert await store.delete_tasks(TaskSelection(ids=tuple(ids)), batch=1) == (53, None)
    await assert_counts_right(store)


async def test_a_call_out_of_time_stops_between_batches_and_resumes_where_it_stopped(store: Store) -> None:
    ids = await make(store, 25)
    queued = TaskSelection(statuses=frozenset({Status.QUEUED}))
    # Out of time from the start: one batch is done all the same (every call makes progress).
    count, left = await store.cancel_tasks(queued, "x", until=0.0, batch=10)
    assert (count, left) == (10, IdSpan(ids[9], ids[-1]))
    later = await make(store, 3)  # created after the action began: never taken by it
    count, left = await store.cancel_tasks(queued, "x", span=left, until=0.0, batch=10)
    assert (count, left) == (10, IdSpan(ids[19], ids[-1]))
    assert await store.cancel_tasks(queued, "x", span=left, until=0.0, batch=10) == (5, None)
    assert set((await statuses_of(store, ids)).values()) == {Status.CANCELLED}
    assert set((await statuses_of(store, later)).values()) == {Status.QUEUED}
    assert IdSpan(ids[19], ids[-1]).token() == f"{ids[19]}-{ids[-1]}"  # the API's resume_token


async def test_a_task_another_transaction_holds_is_skipped_not_waited_for(
    store: Store, database_url: str
) -> None:
    first, held, last = await make(store, 3)
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", held)
            count = await store.cancel_tasks(TaskSelection(ids=(first, held, last)), "x", batch=1)
        assert count == (2, None)
    finally:
        await other.close()
    statuses = await statuses_of(store, [first, held, last])
    assert statuses == {first: Status.CANCELLED, held: Status.QUEUED, last: Status.CANCELLED}
    assert await store.cancel_tasks(TaskSelection(ids=(held,)), "x") == (1, None)  # called again: taken


def test_the_actions_apply_to_what_the_single_calls_do() -> None:
    assert frozenset({Status.QUEUED, Status.RETRYING, Status.RUNNING, Status.WAITING}) == model.CANCELLABLE
    assert model.RETRYABLE == model.DELETABLE == FINISHED
    asked = TaskSelection(statuses=frozenset({Status.QUEUED, Status.SUCCEEDED}))
    assert asked.statuses_within(CANCELLABLE) == {Status.QUEUED}
    assert TaskSelection().statuses_within(FINISHED) == FINISHED


# -- the API -----------------------------------------------------------------------------------


async def test_cancel_tasks_through_the_api(idle_api: Api) -> None:
    prefix = unique("bulk")
    ids = [await idle_api.create(f"{prefix} {i}") for i in range(5)]
    other = await idle_api.create(unique("elsewhere"))
    request = {"filter": {"statuses": ["QUEUED"], "nameContains": prefix}, "reason": "not needed"}

    dry = await idle_api.ok("CancelTasks", {**request, "dryRun": True})
    assert dry == {"count": "5", "resumeToken": ""}  # int64: a string
    assert {(await idle_api.get(i))["status"] for i in ids} == {"QUEUED"}  # a dry run changes nothing

    assert await idle_api.ok("CancelTasks", request) == {"count": "5", "resumeToken": ""}
    assert {(await idle_api.get(i))["status"] for i in ids} == {"CANCELLED"}
    assert (await idle_api.history(ids[0]))[-1]["details"] == "Task cancelled: not needed"
    assert (await idle_api.get(other))["status"] == "QUEUED"

    assert await idle_api.ok("RetryTasks", {"ids": ids[:2]}) == {"count": "2", "resumeToken": ""}
    assert (await idle_api.history(ids[0]))[-1]["details"] == "Task queued again: retried"
    assert await idle_api.ok("DeleteTasks", {"ids": ids}) == {
        "count": "3",
        "resumeToken": "",
    }  # the 3 still cancelled
    await idle_api.fails("GetTask", {"id": ids[4]}, 404, "not_found")
    assert (await idle_api.get(ids[0]))["status"] == "QUEUED"  # not finished: kept


async def test_10000_queued_tasks_cancelled_in_one_api_call(idle_api: Api) -> None:
    prefix = unique("ten thousand")
    for chunk in range(10):  # CreateTasks takes 1000 at a time
        tasks = [{"name": f"{prefix} {chunk}.{i}", "type": "sleep", "payload": {}} for i in range(1000)]
        await idle_api.ok("CreateTasks", {"tasks": tasks})
    before = await idle_api.ok("GetStatus")
    request = {"filter": {"statuses": ["QUEUED"], "type": "sleep", "nameContains": prefix}, "reason": "bulk"}
    assert await idle_api.ok("CancelTasks", request) == {"count": "10000", "resumeToken": ""}
    after = await idle_api.ok("GetStatus")
    cancelled = int(after["statusCounts"]["7"]) - int(before["statusCounts"]["7"])
    queued = int(before["statusCounts"]["0"]) - int(after["statusCounts"]["0"])
    assert (cancelled, queued) == (10_000, 10_000)
    assert await idle_api.listed(nameContains=prefix, status="QUEUED") == ([], 0)


async def test_a_resume_token_goes_on_after_the_ids_it_names(idle_api: Api) -> None:
    ids = [await idle_api.create(unique("resumed")) for _ in range(4)]
    token = IdSpan(ids[1], ids[3]).token()  # as an answer stopped after ids[1] would give it
    answer = await idle_api.ok("CancelTasks", {"ids": ids, "resumeToken": token})
    assert answer == {"count": "2", "resumeToken": ""}
    assert [(await idle_api.get(i))["status"] for i in ids] == ["QUEUED", "QUEUED", "CANCELLED", "CANCELLED"]


async def test_bulk_requests_are_checked(idle_api: Api) -> None:
    async def refused(method: str, body: dict[str, object]) -> str:
        return await idle_api.fails(method, body, 400, "invalid_argument")

    for method in ("CancelTasks", "RetryTasks", "DeleteTasks"):
        message = await refused(method, {})
        assert message.startswith("filter: names no task")
        assert "set all" in message
        assert (await refused(method, {"filter": {}})).startswith("filter: names no task")
    counts = await idle_api.counts()  # QUEUED includes RETRYING here
    everything = await idle_api.ok("CancelTasks", {"filter": {"all": True}, "dryRun": True})
    assert int(everything["count"]) == counts["QUEUED"] + counts["RUNNING"]
    assert (await refused("CancelTasks", {"ids": [1], "filter": {"type": "x"}})) == (
        "ids: give ids or a filter, not both"
    )
    message = await refused("CancelTasks", {"ids": list(range(1, 10_002))})
    assert message == "ids: must hold at most 10000 ids (got 10001); select more with a filter"
    assert await refused("CancelTasks", {"ids": [3, 0]}) == "ids[1]: must be >= 1 (got 0)"
    message = await refused("CancelTasks", {"filter": {"createdAfter": "2026-01-01 00:00"}})
    assert message == "filter.created_after: must be a UTC time YYYY-MM-DDTHH:MM:SSZ (got '2026-01-01 00:00')"
    both = {"createdAfter": "2026-02-01T00:00:00Z", "createdBefore": "2026-01-01T00:00:00Z"}
    message = await refused("CancelTasks", {"filter": both})
    assert message == "filter.created_before: must be after created_after (2026-02-01T00:00:00Z)"
    message = await refused("CancelTasks", {"filter": {"queue": "two words"}})
    assert message.startswith("filter.queue: must be 1 to 100 characters of A-Z a-z 0-9 . _ : -")
    message = await refused("DeleteTasks", {"filter": {"statuses": ["ALL"]}})
    assert message == "filter.statuses[0]: ALL is no task's status; leave statuses empty for any status"
    for token in ("abc", "5-3", "1-2-3"):
        message = await refused("RetryTasks", {"filter": {"all": True}, "resumeToken": token})
        assert message == "resume_token: is not a token this server gave: send the previous answer's token"
    message = await refused("CancelTasks", {"filter": {"type": "a"}, "reason": "x" * 2001})
    assert message == "reason: must be at most 2000 characters (got 2001)"
