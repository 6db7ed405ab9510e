"""Workflows in PostgreSQL (migration 0070): created whole, read with their steps, cancelled, retried,
and grown at run time by the children an attempt spawns, in the transaction of its outcome.

The rules that make steps run in order are the database's: release_children (called by the
statements that finish tasks) queues a step when its last parent succeeds, and the trigger
workflow_cancel_downstream cancels what waits below a step that failed or was cancelled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskservice import model
from taskservice.model import Status, StepSpec, Transition, Workflow, WorkflowGraph, WorkflowStep
from taskservice.store.sql import query

if TYPE_CHECKING:
    from asyncpg import Record

    from taskservice.store.store import Connection, Pool, TaskDefaults


class WorkflowNotFound(LookupError):
    def __init__(self, workflow_id: int) -> None:
        super().__init__(f"no workflow {workflow_id}")
        self.workflow_id = workflow_id


class WorkflowUnfinished(ValueError):
    """RetryWorkflow of a workflow some step of which is still unfinished."""

    def __init__(self, workflow_id: int, unfinished: int) -> None:
        super().__init__(
            f"workflow {workflow_id} is still running ({unfinished} unfinished steps): wait for it to end,"
            " or cancel it first"
        )


class StepOfWorkflow(ValueError):
    """A workflow step queued again by hand (RetryTask, UpdateTaskStatus QUEUED): it would not wait
    for its parents. RetryWorkflow does it right."""

    def __init__(self, task_id: int, step: str, workflow_id: int) -> None:
        super().__init__(
            f"task {task_id} is step {step!r} of workflow {workflow_id}: retry the workflow"
            f" (RetryWorkflow, task-cli workflow retry {workflow_id}), which runs its failed and"
            " cancelled steps again in order"
        )


CANCEL_DETAILS = "Task cancelled: its workflow was cancelled"
RETRY_DETAILS = "Task is scheduled again: its workflow was retried"
SPAWNED_DETAILS = "Task is scheduled (spawned by its parent)"


def first_line(waits_for: Sequence[str]) -> str:
    """A step's first history line."""
    if not waits_for:
        return model.SCHEDULED
    shown = ", ".join(waits_for[:5]) + (f" and {len(waits_for) - 5} more" if len(waits_for) > 5 else "")
    return f"{model.SCHEDULED}; waiting for {shown}"


async def create(
    pool: Pool,
    name: str,
    graph: WorkflowGraph,
    task_rows: Sequence[tuple[Any, ...]],
    *,
    idempotency_key: str | None,
    by: str,
    trace_parent: str | None = None,
) -> tuple[int, bool]:
    """Create the workflow and its steps (`task_rows`: their `new_task_v4` rows, in `graph`'s order) in
    one statement, each step keeping `trace_parent`; (its id, created). An existing idempotency key
    returns that workflow's id, nothing created."""
    steps: Sequence[StepSpec] = graph.steps
    rows = [
        (task_row, s.name, list(s.depends_on), first_line(s.depends_on))
        for task_row, s in zip(task_rows, steps, strict=True)
    ]
    workflow_id = await pool.fetchval(query("create_workflow"), name, idempotency_key, by, rows, trace_parent)
    if workflow_id is not None:
        return int(workflow_id), True
    existing = await pool.fetchval(query("workflow_by_idempotency_key"), idempotency_key)
    if existing is None:  # deleted between the two statements: as if it had never been
        return await create(
            pool, name, graph, task_rows, idempotency_key=idempotency_key, by=by, trace_parent=trace_parent
        )
    return int(existing), False


def _workflow(row: Record, steps: tuple[WorkflowStep, ...] = ()) -> Workflow:
    counts_json = row["counts"]
    counts = json.loads(counts_json) if isinstance(counts_json, str) else (counts_json or {})
    step_counts = {Status(int(status)): int(n) for status, n in counts.items()}
    status = model.workflow_status(step_counts)
    updated_at = row["updated_at"] or row["created_at"]
    return Workflow(
        id=row["id"],
        name=row["name"],
        status=status,
        created_at=row["created_at"],
        updated_at=updated_at,
        finished_at=updated_at if status.finished else None,
        step_counts=step_counts,
        created_by=row["created_by"],
        idempotency_key=row["idempotency_key"],
        steps=steps,
    )


async def get(pool: Pool, workflow_id: int) -> Workflow:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(query("get_workflow"), workflow_id)
        if row is None:
            raise WorkflowNotFound(workflow_id)
        rows = await conn.fetch(query("workflow_steps"), workflow_id)
    steps = tuple(
        WorkflowStep(
            name=r["step"],
            task_id=r["id"],
            type=r["type"],
            status=Status(r["status"]),
            depends_on=tuple(r["depends_on"]),
            spawned_by=r["spawned_by_step"],
            attempts=r["attempts"],
            updated_at=r["updated_at"],
        )
        for r in rows
    )
    return _workflow(row, steps)


async def list_(pool: Pool, status: Status | None, limit: int, offset: int) -> list[Workflow]:
    rows = await pool.fetch(query("list_workflows"), limit, offset, None if status is None else int(status))
    return [_workflow(row) for row in rows]


async def cancel(pool: Pool, workflow_id: int) -> int:
    """Cancel every unfinished step (running ones' attempts closed, which fences them); how many."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetch(query("lock_workflow_steps"), workflow_id):
            await _must_exist(conn, workflow_id)
            return 0
        ids = [r["id"] for r in await conn.fetch(query("workflow_cancellable_steps"), workflow_id)]
        if not ids:
            return 0
        return int(await conn.fetchval(query("cancel_picked"), ids, CANCEL_DETAILS, model.Outcome.CANCELLED))


async def retry(pool: Pool, workflow_id: int) -> int:
    """Run a finished workflow's FAILED and CANCELLED steps again; how many. WorkflowUnfinished while a
    step is unfinished: a step retried under a running parent could miss its release."""
    async with pool.acquire() as conn, conn.transaction():
        steps = await conn.fetch(query("lock_workflow_steps"), workflow_id)
        if not steps:
            await _must_exist(conn, workflow_id)
            return 0
        unfinished = sum(1 for r in steps if not Status(r["status"]).finished)
        if unfinished:
            raise WorkflowUnfinished(workflow_id, unfinished)
        return int(await conn.fetchval(query("retry_workflow_steps"), workflow_id, RETRY_DETAILS))


async def _must_exist(conn: Connection, workflow_id: int) -> None:
    if await conn.fetchrow(query("get_workflow"), workflow_id) is None:
        raise WorkflowNotFound(workflow_id)


def _spawned_row(child: model.SpawnedTask, defaults: TaskDefaults) -> tuple[Any, ...]:
    """A `spawned_task_v1` row (migration 0070), in the type's field order."""
    task = child.task
    return (
        child.name,
        task.name,
        task.type,
        {"parameters": dict(task.parameters)},
        task.description,
        task.priority,
        defaults.max_retries if task.max_retries is None else task.max_retries,
        defaults.timeout_seconds if task.timeout_seconds is None else task.timeout_seconds,
        task.queue or model.DEFAULT_QUEUE,
        task.limit_key,
    )


async def spawn(conn: Connection, transitions: Sequence[Transition], defaults: TaskDefaults) -> None:
    """Create the children the attempts of `transitions` spawned, each fenced by its attempt, inside
    the caller's transaction and before their outcomes are written (finish_attempts): the steps that
    wait for a spawner wait for its children from the moment it succeeds."""
    for t in transitions:
        if not t.spawned:
            continue
        await conn.fetchval(query("adopt_into_workflow"), t.task_id, t.execution_id)
        await conn.fetch(
            query("spawn_children"),
            t.task_id,
            t.execution_id,
            [_spawned_row(child, defaults) for child in t.spawned],
            t.status == Status.WAITING,
            SPAWNED_DETAILS,
            t.trace_parent,
        )


async def parents_results(
    conn: Pool | Connection, task_ids: Sequence[int], max_bytes: int = model.PARENT_RESULTS_MAX_BYTES
) -> dict[int, tuple[dict[str, Any], tuple[str, ...]]]:
    """Per workflow step of `task_ids`, its parents' results by step name, and the parents whose
    results were left out past `max_bytes` in all (in step order)."""
    found: dict[int, tuple[dict[str, Any], tuple[str, ...]]] = {}
    for row in await conn.fetch(query("parents_results"), list(task_ids)):
        results, left_out = found.get(row["task_id"], ({}, ()))
        if row["total_bytes"] <= max_bytes:
            results[row["step"]] = row["result"]
        else:
            left_out = (*left_out, row["step"])
        found[row["task_id"]] = (results, left_out)
    return found


STRANDED_DETAILS = "Task is queued: the steps it waits for succeeded (found by the lease reaper)"


async def release_stranded(pool: Pool, channel: str, limit: int = 1000) -> int:
    """Queue the WAITING steps whose parents all succeeded but that were never released (see
    stranded_steps); how many. Cheap when there are none: one indexed read."""
    candidates = [r["id"] for r in await pool.fetch(query("stranded_steps"), limit)]
    if not candidates:
        return 0
    async with pool.acquire() as conn, conn.transaction():
        locked = [r["id"] for r in await conn.fetch(query("lock_waiting_steps"), candidates)]
        if not locked:
            return 0
        row = await conn.fetchrow(query("release_stranded_steps"), locked, STRANDED_DETAILS, channel)
    return int(row[0]) if row is not None else 0


async def unfinished_parents(pool: Pool, task_ids: Sequence[int]) -> dict[int, list[tuple[str, Status]]]:
    """What each WAITING step of `task_ids` still waits for: (step, status) of its parents not yet
    succeeded."""
    found: dict[int, list[tuple[str, Status]]] = {}
    for row in await pool.fetch(query("unfinished_parents"), list(task_ids)):
        found.setdefault(row["task_id"], []).append((row["step"], Status(row["status"])))
    return found
