"""Workflows in the store: steps released by the statement that finishes their last parent, failures
cancelling what waits below, spawned children, retry and cancel (migration 0070), on real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from taskservice import model
from taskservice.db.connect import create_pool
from taskservice.model import NewTask, SpawnedTask, Status, StepSpec, Transition
from taskservice.rules.workflows import BadStep, checked_graph
from taskservice.store import Claim, Pool, Store

pytestmark = pytest.mark.database


def step(name: str, *after: str, kind: str = "sleep") -> StepSpec:
    return StepSpec(name, NewTask(name=name, type=kind, parameters={"seconds": "0"}), tuple(after))


DIAMOND = [step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")]


async def statuses(store: Store, workflow_id: int) -> dict[str, Status]:
    workflow = await store.get_workflow(workflow_id)
    return {s.name: s.status for s in workflow.steps}


async def run_all(store: Store, *, fail: frozenset[str] = frozenset(), result: Any = None) -> list[str]:
    """Claim what is due and finish it (FAILED for good when its step is in `fail`); the steps run."""
    ran: list[str] = []
    for claim in await store.claim("w1", 1000, lease_seconds=30):
        task = claim.task
        assert task.step is not None
        ran.append(task.step)
        if task.step in fail:
            t = Transition(
                task.id, claim.execution_id, Status.FAILED, 0, 0.0, "Task failed", "failed", "boom"
            )
        else:
            t = model.succeeded(
                task, claim.execution_id, result if result is not None else {"step": task.step}
            )
        assert await store.finish([t]) == {claim.execution_id}
    return sorted(ran)


async def test_a_diamond_runs_in_order_and_d_reads_b_and_c(store: Store) -> None:
    workflow_id, created = await store.create_workflow("diamond", checked_graph(DIAMOND))
    assert created
    assert await statuses(store, workflow_id) == {
        "a": Status.QUEUED, "b": Status.WAITING, "c": Status.WAITING, "d": Status.WAITING,
    }  # fmt: skip
    assert await run_all(store) == ["a"]
    assert await run_all(store) == ["b", "c"]
    claims = await store.claim("w1", 10, lease_seconds=30)
    assert [c.task.step for c in claims] == ["d"]
    assert dict(claims[0].parents) == {"b": {"step": "b"}, "c": {"step": "c"}}
    d = await store.get_task(claims[0].task.id)
    assert len(d.dependencies) == 2
    assert d.workflow_id == workflow_id
    await store.finish([model.succeeded(claims[0].task, claims[0].execution_id, 1)])
    workflow = await store.get_workflow(workflow_id)
    assert workflow.status == Status.SUCCEEDED
    assert workflow.step_counts == {Status.SUCCEEDED: 4}
    history = [h.details for h in await store.history(d.id)]
    assert history[0].startswith("Task is scheduled; waiting for b, c")
    assert "the steps it waits for succeeded" in history[1]


async def test_a_failure_cancels_downstream_and_retry_reruns_only_what_failed(store: Store) -> None:
    workflow_id, _ = await store.create_workflow("diamond", checked_graph(DIAMOND))
    assert await run_all(store) == ["a"]
    assert await run_all(store, fail=frozenset({"b"})) == ["b", "c"]
    assert await statuses(store, workflow_id) == {
        "a": Status.SUCCEEDED, "b": Status.FAILED, "c": Status.SUCCEEDED, "d": Status.CANCELLED,
    }  # fmt: skip
    workflow = await store.get_workflow(workflow_id)
    assert workflow.status == Status.FAILED
    d = next(s for s in workflow.steps if s.name == "d")
    assert (await store.history(d.task_id))[-1].details == "upstream step b failed"
    assert await store.retry_workflow(workflow_id) == 2
    assert await statuses(store, workflow_id) == {
        "a": Status.SUCCEEDED, "b": Status.QUEUED, "c": Status.SUCCEEDED, "d": Status.WAITING,
    }  # fmt: skip
    assert await run_all(store) == ["b"]
    assert await run_all(store) == ["d"]
    assert (await store.get_workflow(workflow_id)).status == Status.SUCCEEDED


async def test_cancel_cancels_every_unfinished_step(store: Store) -> None:
    workflow_id, _ = await store.create_workflow("diamond", checked_graph(DIAMOND))
    assert await store.cancel_workflow(workflow_id) == 4
    workflow = await store.get_workflow(workflow_id)
    assert workflow.status == Status.CANCELLED
    assert set((await statuses(store, workflow_id)).values()) == {Status.CANCELLED}


async def test_spawned_children_hold_the_step_after_their_parent(store: Store) -> None:
    workflow_id, _ = await store.create_workflow("fan", checked_graph([step("fan"), step("sum", "fan")]))
    [claim] = await store.claim("w1", 10, lease_seconds=30)
    children = tuple(
        SpawnedTask(str(i), NewTask(name=f"child {i}", type="sleep", parameters={"i": str(i)}))
        for i in range(100)
    )
    await store.finish([model.succeeded(claim.task, claim.execution_id, None, children)])
    assert (await statuses(store, workflow_id))["sum"] == Status.WAITING
    claims = await store.claim("w1", 1000, lease_seconds=30)
    assert len(claims) == 100
    assert all(c.task.spawned_by == claim.task.id for c in claims)
    for c in claims:
        assert await store.finish([model.succeeded(c.task, c.execution_id, int(c.task.parameters["i"]))])
    [last] = await store.claim("w1", 10, lease_seconds=30)
    assert last.task.step == "sum"
    assert sum(v for k, v in last.parents.items() if k.startswith("fan/")) == sum(range(100))


async def test_a_continuation_runs_again_after_its_children(store: Store) -> None:
    task_id, _ = await store.create_task(NewTask(name="parent", type="sleep"))
    [claim] = await store.claim("w1", 10, lease_seconds=30)
    kids = (
        SpawnedTask("x", NewTask(name="x", type="sleep")),
        SpawnedTask("y", NewTask(name="y", type="sleep")),
    )
    await store.finish([model.waiting_for_children(claim.task, claim.execution_id, None, kids)])
    parent = await store.get_task(task_id)
    assert parent.status == Status.WAITING
    assert parent.workflow_id is not None
    for c in await store.claim("w1", 10, lease_seconds=30):
        await store.finish([model.succeeded(c.task, c.execution_id, c.task.step)])
    [again] = await store.claim("w1", 10, lease_seconds=30)
    assert again.task.id == task_id
    assert dict(again.parents) == {
        f"task-{task_id}/x": f"task-{task_id}/x",
        f"task-{task_id}/y": f"task-{task_id}/y",
    }
    # Spawning the same names again (the re-run) creates nothing.
    await store.finish([model.succeeded(again.task, again.execution_id, "done", kids)])
    assert (await store.get_workflow(parent.workflow_id)).step_total == 3


async def test_a_stale_attempt_spawns_nothing(store: Store) -> None:
    task_id, _ = await store.create_task(NewTask(name="parent", type="sleep"))
    [claim] = await store.claim("w1", 10, lease_seconds=30)
    await store.set_status(task_id, Status.CANCELLED)
    kids = (SpawnedTask("x", NewTask(name="x", type="sleep")),)
    assert await store.finish([model.succeeded(claim.task, claim.execution_id, None, kids)]) == set()
    assert (await store.get_task(task_id)).workflow_id is None
    assert await store.claim("w1", 10, lease_seconds=30) == []


RELEASE_CALLS = (
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'release_children'"
)
TRACK_FUNCTIONS = """
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET track_functions = %L', current_database(), 'pl');
END $$
"""


async def test_each_statement_that_finishes_steps_calls_release_children_once(
    pool: Pool, database_url: str
) -> None:
    """However many steps a batch finishes and children they release: one call per finishing
    statement, none for a batch of tasks that are no steps. PostgreSQL counts the calls of one session
    (track_functions, a superuser's setting, taken by the sessions started after it is set), reported
    when that session is told to."""
    if not await pool.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        pytest.skip("track_functions is a superuser's setting")
    await pool.execute(TRACK_FUNCTIONS)
    tracked = await create_pool(database_url, max_size=1)
    store = Store(tracked)

    async def calls() -> int:
        await tracked.execute("SELECT pg_stat_force_next_flush()")  # done as the session goes idle
        return int(await tracked.fetchval(RELEASE_CALLS))

    async def finish_in_one_call(claims: list[Claim]) -> None:
        outcomes = [model.succeeded(c.task, c.execution_id, None) for c in claims]
        assert await store.finish(outcomes) == {c.execution_id for c in claims}

    try:
        assert await tracked.fetchval("SHOW track_functions") == "pl"
        await store.create_tasks([NewTask(name=f"plain {i}", type="sleep") for i in range(50)])
        await finish_in_one_call(await store.claim("w1", 50, lease_seconds=30))
        assert await calls() == 0

        middle = [f"m{i:02}" for i in range(50)]
        graph = checked_graph([step("root"), *(step(m, "root") for m in middle), step("last", *middle)])
        workflow_id, _ = await store.create_workflow("fan-out, fan-in", graph)
        [root] = await store.claim("w1", 10, lease_seconds=30)
        await finish_in_one_call([root])  # 50 children released
        assert await calls() == 1

        first = await store.claim("w1", 25, lease_seconds=30)
        assert sorted(c.task.step or "" for c in first) == middle[:25]
        await finish_in_one_call(first)  # 25 of the last step's 50 parents
        assert await calls() == 2
        assert (await statuses(store, workflow_id))["last"] == Status.WAITING

        second = await store.claim("w1", 100, lease_seconds=30)
        assert sorted(c.task.step or "" for c in second) == middle[25:]
        await finish_in_one_call(second)  # the other 25: the last step is queued
        assert await calls() == 3
        assert (await statuses(store, workflow_id))["last"] == Status.QUEUED

        [last] = await store.claim("w1", 10, lease_seconds=30)
        await finish_in_one_call([last])  # a step with no children: still its statement's one call
        assert await calls() == 4
        assert (await store.get_workflow(workflow_id)).status == Status.SUCCEEDED
    finally:
        await tracked.close()


def test_the_graph_is_checked() -> None:
    with pytest.raises(BadStep, match=r"steps\['b'\].depends_on: names no step of this workflow: 'x'"):
        checked_graph([step("a"), step("b", "x")])
    with pytest.raises(BadStep, match=r"makes a cycle: a -> c -> b -> a"):
        checked_graph([step("a", "c"), step("b", "a"), step("c", "b"), step("d")])
    with pytest.raises(BadStep, match="names two steps"):
        checked_graph([step("a"), step("a")])
    with pytest.raises(BadStep, match="must hold 1 to 1000 steps"):
        checked_graph([step(f"s{i}") for i in range(1001)])
    graph = checked_graph([step("d", "b", "c"), step("b", "a"), step("c", "a"), step("a")])
    assert [s.name for s in graph.steps] == ["a", "b", "c", "d"]


async def test_a_step_whose_release_was_missed_is_queued_by_the_reaper(store: Store) -> None:
    """A worker of the release before workflows finishes a step with its own statement, which releases
    nothing: the lease reaper of any newer worker or server finds the step and queues it."""
    from taskservice.worker.reaper import LeaseReaper
    from test_migrations import FINISH_BEFORE_0031

    workflow_id, _ = await store.create_workflow("old worker", checked_graph([step("a"), step("b", "a")]))
    [claim] = await store.claim("w-old", 10, lease_seconds=30)
    row = (
        claim.task.id,
        claim.execution_id,
        int(Status.SUCCEEDED),
        0,
        0,
        0.0,
        "done",
        "succeeded",
        None,
        None,
    )
    async with store.pool.acquire() as conn:
        await conn.fetch(FINISH_BEFORE_0031, [row])
    assert (await statuses(store, workflow_id))["b"] == Status.WAITING
    await LeaseReaper(store, model.RetryPolicy(), 1.0).tick()
    assert (await statuses(store, workflow_id))["b"] == Status.QUEUED
    assert await store.release_stranded_steps() == 0  # found once


async def test_retention_deletes_finished_workflows_whole(store: Store) -> None:
    from datetime import timedelta

    from taskservice.store import RetentionPolicy
    from taskservice.worker.retention import RetentionJob

    done, _ = await store.create_workflow("done", checked_graph([step("a"), step("b", "a")]))
    running, _ = await store.create_workflow("running", checked_graph([step("a"), step("b", "a")]))
    [first, other] = await store.claim("w", 2, lease_seconds=30)
    assert first.task.workflow_id == done
    await store.finish([model.succeeded(first.task, first.execution_id, None)])
    [b] = [c for c in await store.claim("w", 10, lease_seconds=30) if c.task.workflow_id == done]
    await store.finish([model.succeeded(b.task, b.execution_id, None)])
    await store.finish([model.succeeded(other.task, other.execution_id, None)])  # "running" waits on b
    later = (await store.get_workflow(done)).updated_at + timedelta(days=8)
    job = RetentionJob(store, RetentionPolicy(), 60, 100, clock=lambda: later)
    await job.run_once()
    assert [w.id for w in await store.list_workflows()] == [running]
    assert (await store.get_workflow(running)).step_total == 2
    assert await store.count_tasks() == 2


async def test_a_bulk_cancel_of_a_step_cancels_what_waits_below_it_and_bulk_retry_or_delete_skip_steps(
    store: Store,
) -> None:
    from taskservice.model import TaskSelection

    workflow_id, _ = await store.create_workflow("diamond", checked_graph(DIAMOND))
    a = next(s for s in (await store.get_workflow(workflow_id)).steps if s.name == "a")
    cancelled, _ = await store.cancel_tasks(TaskSelection(ids=(a.task_id,)), "Task cancelled: bulk")
    assert cancelled == 1
    assert set((await statuses(store, workflow_id)).values()) == {Status.CANCELLED}
    everything = TaskSelection(statuses=model.FINISHED)
    assert (await store.retry_tasks(everything, "again"))[0] == 0
    assert (await store.delete_tasks(everything))[0] == 0
    assert (await store.get_workflow(workflow_id)).step_total == 4


def test_a_declared_types_typed_spawn_records_a_checked_child() -> None:
    from taskservice import TaskContext, task
    from taskservice.config import load_settings
    from taskservice.plugins import context

    @task("wf_typed_square")
    def square(x: int) -> int:
        return x * x

    ctx = TaskContext(task_id=7, task_type="fan", attempt=1, timeout_seconds=10, settings=load_settings(),
                      idempotency_key="k")  # fmt: skip
    token = context._CURRENT.set(ctx)
    try:
        assert square.spawn(x=3) == "0"
        assert square.spawn_named("four", x=4) == "four"
        with pytest.raises(ValueError, match="spawned already"):
            square.spawn_named("four", x=5)
    finally:
        context._CURRENT.reset(token)
    assert [(c.name, c.task.type, c.task.parameters) for c in ctx.spawned] == [
        ("0", "wf_typed_square", {"x": "3"}), ("four", "wf_typed_square", {"x": "4"}),
    ]  # fmt: skip
    assert ctx.wait_for_children().__class__.__name__ == "WaitForChildren"
