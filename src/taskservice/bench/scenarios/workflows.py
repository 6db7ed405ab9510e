"""Workflows: a fan-out then fan-in workflow beside the same number of no-op tasks without
dependencies, drained by the same worker processes, their rounds interleaved.

The workflow has `workflow_steps` steps: one (`root`), then `workflow_steps - 2` that each wait for
it, then one (`last`) that waits for all of those. Every step is the no-op `sleep` task of the other
drains. Each round runs, with the same workers:
- the limits scenario's drain without a limit (processing.drain_once): as many no-op tasks queued in
  one statement, timed from its commit to the last one's end;
- the workflow, created in one call (Store.create_workflow, what CreateWorkflow does), timed from
  that call's return (its steps committed, the workers woken) to the end of its last step. Between
  the two the root runs alone; its finish releases the middle steps; every statement that finishes
  middle steps counts down the last step's parents (the last step's row locked until it commits),
  and the one that takes them to zero queues it.
Each shows its CPU per task, the worker processes' and their PostgreSQL backends' (bench/cpu.py).

Releasing children is one call of release_children per statement that finishes steps, not one per
child. Where the database lets the benchmark count function calls (track_functions, which only a
superuser may set: the workers' sessions get it from the database), the calls made during the
scenario are counted once its workers are gone (a session reports its counts as it ends), beside the
statements that finished the steps of its workflows, the warm-up's included (the attempts one
statement finished share its transaction's now() and its worker). The independent drains never call
it: their tasks are no steps.
"""

from __future__ import annotations

import contextlib
import math
import time

import asyncpg

from taskservice.bench.context import Context, sql
from taskservice.bench.cpu import CpuPerTask, Drains
from taskservice.bench.processes import BenchTimeout, Child, wait_until
from taskservice.bench.results import Figure, ScenarioResult, Target
from taskservice.bench.scenarios.processing import drain_once
from taskservice.bench.stats import best
from taskservice.model import NewTask, Status, StepSpec, WorkflowGraph
from taskservice.rules.workflows import checked_graph

NAME = "workflows"
TITLE = "l. Workflows (a fan-out then fan-in, beside the same tasks without dependencies)"

TASK_TYPE = "sleep"
ROOT, LAST = "root", "last"
ENDED = {int(Status.SUCCEEDED), int(Status.FAILED), int(Status.CANCELLED)}
# How long the ended workers' sessions may take to report their function calls (each does as it ends).
REPORTED_WITHIN = 15.0


def fan_out_fan_in(steps: int) -> WorkflowGraph:
    """`root`, then steps - 2 middle steps that each wait for it, then `last`, waiting for them all."""
    middle = [f"m{i}" for i in range(1, steps - 1)]

    def no_op(name: str, *after: str) -> StepSpec:
        task = NewTask(name=f"bench-workflow-{name}", type=TASK_TYPE, parameters={"seconds": "0"})
        return StepSpec(name, task, tuple(after))

    return checked_graph([no_op(ROOT), *(no_op(name, ROOT) for name in middle), no_op(LAST, *middle)])


async def _independent(
    ctx: Context, result: ScenarioResult, workers: list[Child], drains: Drains, count: int
) -> None:
    """The limits scenario's drain without a limit, of `count` tasks."""
    before = await ctx.cpu_times(workers)
    rate, incomplete = await drain_once(ctx, count)
    drains.cpu.append(CpuPerTask.between(before, await ctx.cpu_times(workers), count))
    drains.rates.append(rate)
    result.tasks += count
    result.lost += incomplete


class Workflows:
    """The workflows run: the measured rounds' rates and CPU (`drains`) and creation times; of every
    workflow, the warm-up's too, the statements that finished its steps and the steps it released."""

    def __init__(self) -> None:
        self.drains = Drains(NAME, "workflow", "independent")
        self.create_ms: list[float] = []
        self.statements: list[int] = []
        self.released = 0

    async def run(
        self,
        ctx: Context,
        result: ScenarioResult,
        workers: list[Child],
        graph: WorkflowGraph,
        measured: bool = True,
    ) -> None:
        steps = len(graph.steps)
        before = await ctx.cpu_times(workers)
        await ctx.clear_tasks()
        sent = time.perf_counter()
        workflow_id, _ = await ctx.store.create_workflow(NAME, graph, by="task-cli bench")
        created_at = time.time()  # committed: the workers were told and start now
        create_ms = (time.perf_counter() - sent) * 1000

        async def ended() -> bool:
            return await ctx.value("step_status", workflow_id, LAST) in ENDED

        await wait_until(ended, ctx.sizes.step_timeout, f"the last of {steps} steps to end", interval=0.1)
        finished_at: float | None = await ctx.value("step_finished", workflow_id, LAST)
        if measured:
            self.drains.cpu.append(CpuPerTask.between(before, await ctx.cpu_times(workers), steps))
            self.drains.rates.append(steps / (finished_at - created_at) if finished_at else 0.0)
            self.create_ms.append(create_ms)
        result.tasks += steps
        result.lost += steps - await ctx.value("whole_steps", workflow_id)
        self.statements.append(await ctx.value("finish_statements", workflow_id))
        self.released += steps - 1


async def _calls_reported(ctx: Context, before: int, expected: int) -> int:
    """The calls of release_children since `before`, once they reach `expected` or the sessions had
    time enough to report them all (a session that ended reported them as it ended)."""
    calls = 0

    async def reported() -> bool:
        nonlocal calls
        calls = int(await ctx.value("release_calls")) - before
        return calls >= expected

    with contextlib.suppress(BenchTimeout):
        await wait_until(reported, REPORTED_WITHIN, "release_children calls", interval=0.1)
    return calls


async def _track_functions(ctx: Context) -> bool:
    """Whether the sessions started from now on count function calls (False: not ours to set)."""
    try:
        await ctx.pool.execute(sql("track_functions"))
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


async def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = ctx.sizes
    processes = max(sizes.worker_processes)
    steps = sizes.workflow_steps
    graph = fan_out_fan_in(steps)
    independent = Drains(NAME, "independent", "independent")
    await ctx.reset()
    counted = await _track_functions(ctx)  # before the workers start: their sessions take it
    calls_before = int(await ctx.value("release_calls"))
    workflows = Workflows()
    try:
        async with ctx.workers(processes) as workers:
            # Not measured: a first drain and workflow on each worker's connections.
            warm_up = min(steps, processes * sizes.worker_concurrency)
            await _independent(ctx, result, workers, Drains(NAME, "warm_up", "independent"), warm_up)
            await workflows.run(ctx, result, workers, fan_out_fan_in(warm_up), measured=False)
            for _ in range(sizes.rounds):
                await _independent(ctx, result, workers, independent, steps)
                await workflows.run(ctx, result, workers, graph)
        # Counted once the workers are gone: their sessions report their calls as they end.
        calls = await _calls_reported(ctx, calls_before, sum(workflows.statements)) if counted else None
    finally:
        if counted:
            await ctx.pool.execute(sql("untrack_functions"))
    result.figures += _figures(ctx, independent, workflows, calls, steps, processes)


def _figures(
    ctx: Context,
    independent: Drains,
    workflows: Workflows,
    calls: int | None,
    steps: int,
    processes: int,
) -> list[Figure]:
    sizes = ctx.sizes
    drains = workflows.drains
    shares = [round(w / i, 3) for w, i in zip(drains.rates, independent.rates, strict=True)]
    count = len(workflows.statements)
    statements = sum(workflows.statements)
    workers = f"{processes} worker processes x {sizes.worker_concurrency}"
    return [
        Figure(
            f"{NAME}.independent",
            f"{steps:,} tasks without dependencies, {workers}",
            best(independent.rates), "tasks/s",
            details={"rounds": [round(r) for r in independent.rates]},
        ),
        *independent.cpu_figures("without dependencies"),
        Figure(
            f"{NAME}.workflow",
            f"a workflow of {steps:,} steps (1 → {steps - 2:,} → 1): creation to its last step's end",
            best(drains.rates), "tasks/s",
            raw_key=f"{NAME}.independent", compared_with="independent",
            details={
                "rounds": [round(r) for r in drains.rates],
                "share_each_round": shares,
                "create_ms": [round(ms, 1) for ms in workflows.create_ms],
            },
        ),
        *drains.cpu_figures("the workflow"),
        Figure(
            f"{NAME}.finish_statements",
            f"statements that finished the steps of the {count} workflows (the warm-up's too)",
            float(statements), "statements", details={"workflows": workflows.statements},
        ),
        Figure(
            f"{NAME}.release_calls",
            f"release_children calls for them ({workflows.released:,} steps released)",
            float(calls) if calls is not None else math.nan, "calls",
            target=Target("<=", statements) if calls is not None else None,
            raw_key=f"{NAME}.finish_statements", compared_with="statements",
        ),
    ]  # fmt: skip
