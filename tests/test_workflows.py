"""Workflows end to end (issue 23): created through the API, run by several worker and agent processes
at once; steps start after their parents and read their results; a failure cancels what waits below
it; a retried workflow re-runs only what failed; children spawned at run time, once, even when the
parent's attempt is killed after spawning them."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually, subprocess_env
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient
from taskservice.model import Status
from taskservice.store import Store
from test_counts import assert_counts_right

pytestmark = pytest.mark.database

WORKFLOW_WORKER = str(Path(__file__).with_name("workflow_worker.py"))
HEADERS = {"Task-Id-Width": "64"}


class Processes:
    """Two direct workers and an agent of the workerless server, with the workflow task types."""

    def __init__(self, server: ServerProcess, settings: Settings, folder: Path) -> None:
        self.gates = folder / "gates"
        self.gates.mkdir()
        env = subprocess_env(settings, GATE_DIR=str(self.gates))
        self.all = [
            AgentProcess([sys.executable, WORKFLOW_WORKER, "--worker"], env, folder / "w1.log"),
            AgentProcess([sys.executable, WORKFLOW_WORKER, "--worker"], env, folder / "w2.log"),
            AgentProcess(
                [sys.executable, WORKFLOW_WORKER, server.url],
                agent_env(settings, self.gates),
                folder / "agent.log",
            ),
        ]

    def stop(self) -> list[int]:
        return [p.stop() for p in self.all]


@pytest.fixture
def processes(workerless_server: ServerProcess, settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    running = Processes(workerless_server, settings, tmp_path)
    yield running
    running.stop()


@pytest.fixture
async def api(workerless_server: ServerProcess) -> Any:
    async with TaskManagementServiceClient(workerless_server.url) as client:
        yield client


def step(name: str, kind: str, after: tuple[str, ...] = (), **parameters: str) -> pb.WorkflowStep:
    task = pb.CreateTaskRequest(type=kind, payload=pb.Payload(parameters=parameters), max_retries=0)
    return pb.WorkflowStep(name=name, task=task, depends_on=after)


async def create(api: TaskManagementServiceClient, name: str, *steps: pb.WorkflowStep) -> int:
    answer = await api.create_workflow(pb.CreateWorkflowRequest(name=name, steps=steps), headers=HEADERS)
    return answer.id


async def workflow(api: TaskManagementServiceClient, workflow_id: int) -> pb.GetWorkflowResponse:
    return await api.get_workflow(pb.GetWorkflowRequest(id=workflow_id), headers=HEADERS)


async def ended(
    api: TaskManagementServiceClient, workflow_id: int, timeout: float = 120
) -> pb.GetWorkflowResponse:
    async def finished() -> pb.GetWorkflowResponse | None:
        got = await workflow(api, workflow_id)
        return got if got.workflow.status != pb.RUNNING else None

    found: pb.GetWorkflowResponse = await eventually(finished, timeout=timeout)
    return found


def steps_of(got: pb.GetWorkflowResponse) -> dict[str, pb.WorkflowStepState]:
    return {s.name: s for s in got.steps}


async def result(store: Store, task_id: int) -> Any:
    executions = await store.executions(task_id)
    return executions[-1].result


async def live(api: TaskManagementServiceClient, count: int) -> None:
    async def all_up() -> bool:
        workers = (await api.list_workers(pb.ListWorkersRequest(), headers=HEADERS)).workers
        return sum(1 for w in workers if w.alive and "wf_value" in w.task_types) >= count

    await eventually(all_up, timeout=60)


async def test_workflows_run_in_order_across_workers_and_agents(
    processes: Processes, api: TaskManagementServiceClient, store: Store
) -> None:
    await live(api, 3)
    diamond = await create(
        api, "diamond",
        step("a", "wf_value", value="1"),
        step("b", "wf_value", ("a",), value="2"),
        step("c", "wf_value", ("a",), value="3"),
        step("d", "wf_sum", ("b", "c")),
    )  # fmt: skip
    fan = await create(api, "fan", step("fan", "wf_fan_out", n="100"), step("total", "wf_sum", ("fan",)))
    failing = await create(
        api, "failing",
        step("a", "wf_value", value="1"),
        step("b", "wf_fail", ("a",), value="2"),
        step("c", "wf_value", ("a",), value="3"),
        step("d", "wf_sum", ("b", "c")),
    )  # fmt: skip
    again = await create(
        api, "continuation", step("parts", "wf_continue", n="5"), step("after", "wf_sum", ("parts",))
    )

    # The diamond: d started after b and c ended, and read both results.
    got = await ended(api, diamond)
    assert got.workflow.status == pb.SUCCEEDED
    by_name = steps_of(got)
    assert list(by_name) == ["a", "b", "c", "d"]
    assert list(by_name["d"].depends_on) == ["b", "c"]
    assert (await result(store, by_name["d"].task_id))["sum"] == 5
    # d started after b and c ended: its start's history row was written after their ends' (ids come
    # from one sequence, taken as each row is written; the rows' times are their transactions' starts,
    # which can be in the other order when a claim's transaction began just before a parent's end).
    [d_start] = [h.id for h in await store.history(by_name["d"].task_id) if h.status == Status.RUNNING]
    for parent in ("b", "c"):
        [p_attempt] = await store.executions(by_name[parent].task_id)
        assert p_attempt.finished_at is not None
        [p_end] = [h.id for h in await store.history(by_name[parent].task_id) if h.status == Status.SUCCEEDED]
        assert p_end < d_start
    task_d = await api.get_task(pb.GetTaskRequest(id64=by_name["d"].task_id), headers=HEADERS)
    assert sorted(task_d.dependencies) == sorted(str(by_name[p].task_id) for p in ("b", "c"))
    assert (task_d.workflow_id, task_d.step) == (diamond, "d")

    # 100-way fan-out, and its fan-in reads every child's result.
    got = await ended(api, fan)
    assert got.workflow.status == pb.SUCCEEDED
    by_name = steps_of(got)
    children = [s for s in got.steps if s.spawned_by == "fan"]
    assert len(children) == 100 and got.workflow.steps == 102  # noqa: PT018
    total = await result(store, by_name["total"].task_id)
    assert total["sum"] == sum(range(100)) and len(total["seen"]) == 101  # noqa: PT018

    # A failure in b cancels d; c, independent of b, ran.
    got = await ended(api, failing)
    assert got.workflow.status == pb.FAILED
    statuses = {s.name: s.status for s in got.steps}
    assert statuses == {"a": pb.SUCCEEDED, "b": pb.FAILED, "c": pb.SUCCEEDED, "d": pb.CANCELLED}
    history = (await api.get_task_history(pb.GetTaskHistoryRequest(id64=steps_of(got)["d"].task_id))).history
    assert history[-1].details == "upstream step b failed"
    assert history[-1].exact_status == pb.CANCELLED

    # Retried once b can succeed: b and d run again, a and c keep their one attempt and result.
    (processes.gates / "fixed").touch()
    assert (await api.retry_workflow(pb.RetryWorkflowRequest(id=failing), headers=HEADERS)).retried == 2
    got = await ended(api, failing)
    assert got.workflow.status == pb.SUCCEEDED
    assert {s.name: s.attempts for s in got.steps} == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert (await result(store, steps_of(got)["d"].task_id))["sum"] == 5

    # A continuation ran again after its children and the step after it read it.
    got = await ended(api, again)
    assert got.workflow.status == pb.SUCCEEDED
    parts = steps_of(got)["parts"]
    assert parts.attempts == 2
    assert await result(store, parts.task_id) == {"sum": 10, "children": 5}

    # Several processes ran them.
    runners = await store.pool.fetch("SELECT DISTINCT worker_id FROM task_executions")
    assert len(runners) >= 2
    await assert_counts_right(store)
    assert processes.stop() == [0, 0, 0], [p.log()[-3000:] for p in processes.all]


async def test_a_parent_killed_after_spawning_creates_its_children_once(
    processes: Processes, api: TaskManagementServiceClient, store: Store
) -> None:
    await live(api, 3)
    workflow_id = await create(
        api, "killed", step("parent", "wf_spawn_then_hang", n="10"), step("sum", "wf_sum", ("parent",))
    )

    async def hung() -> int | None:
        marks = list(processes.gates.glob("hung-*"))
        return int(marks[0].name.removeprefix("hung-")) if marks else None

    pid = await eventually(hung, timeout=60)
    [victim] = [p for p in processes.all if p.pid == pid]
    os.kill(pid, signal.SIGKILL)
    victim.process.wait(30)
    got = await ended(api, workflow_id)
    assert got.workflow.status == pb.SUCCEEDED
    children = sorted(s.name for s in got.steps if s.spawned_by == "parent")
    assert children == sorted(f"parent/{i}" for i in range(10))
    by_name = steps_of(got)
    assert by_name["parent"].attempts == 2
    assert (await result(store, by_name["sum"].task_id))["sum"] == sum(range(10))
    await assert_counts_right(store)


async def test_bad_workflows_are_refused_naming_the_step(
    workerless_server: ServerProcess, api: TaskManagementServiceClient, store: Store
) -> None:
    cases = [
        (
            [step("a", "sleep"), step("b", "sleep", ("x",))],
            "steps['b'].depends_on: names no step of this workflow",
        ),
        (
            [step("a", "sleep", ("b",)), step("b", "sleep", ("a",))],
            "steps['a'].depends_on: makes a cycle: a -> b -> a",
        ),
        ([step("a", "nope")], "steps['a'].task.type: unknown task type 'nope'"),
        ([step("a", "sleep", seconds="soon")], "steps['a'].task.payload.parameters['seconds']"),
        ([step("a b", "sleep")], "steps[0].name: must be 1 to 100 characters"),
        ([step(f"s{i}", "sleep") for i in range(1001)], "steps: must hold 1 to 1000 steps"),
    ]
    for steps, message in cases:
        with pytest.raises(ConnectError) as refused:
            await create(api, "bad", *steps)
        assert refused.value.code == Code.INVALID_ARGUMENT
        assert refused.value.message.startswith(message), refused.value.message
    assert await store.list_workflows() == []  # nothing half-written
    assert await store.count_tasks() == 0


async def test_idempotent_creation_cancel_and_the_original_view(
    workerless_server: ServerProcess, api: TaskManagementServiceClient, store: Store
) -> None:
    steps = [step("a", "sleep", seconds="60"), step("b", "sleep", ("a",), seconds="0")]
    request = pb.CreateWorkflowRequest(name="once", steps=steps, idempotency_key="wf-1")
    first = await api.create_workflow(request, headers=HEADERS)
    second = await api.create_workflow(request, headers=HEADERS)
    assert (second.id, second.existing, first.existing) == (first.id, True, False)
    got = await workflow(api, first.id)
    b = steps_of(got)["b"]
    # The original's clients see a waiting step as QUEUED; ours see WAITING.
    task_b = await api.get_task(pb.GetTaskRequest(id64=b.task_id))
    assert (task_b.status, task_b.exact_status) == (pb.QUEUED, pb.WAITING)
    assert task_b.waiting_reason == "waiting for step a (QUEUED)"
    with pytest.raises(ConnectError) as refused:
        await api.retry_task(pb.RetryTaskRequest(id64=b.task_id), headers=HEADERS)
    assert refused.value.code == Code.FAILED_PRECONDITION
    with pytest.raises(ConnectError) as running:
        await api.retry_workflow(pb.RetryWorkflowRequest(id=first.id), headers=HEADERS)
    assert running.value.code == Code.FAILED_PRECONDITION
    assert (await api.cancel_workflow(pb.CancelWorkflowRequest(id=first.id), headers=HEADERS)).cancelled == 2
    got = await workflow(api, first.id)
    assert got.workflow.status == pb.CANCELLED
    assert dict(got.workflow.step_counts) == {"CANCELLED": 2}
    listed = await api.list_workflows(pb.ListWorkflowsRequest(status=pb.CANCELLED), headers=HEADERS)
    assert [w.id for w in listed.workflows] == [first.id]
    assert (
        await api.list_workflows(pb.ListWorkflowsRequest(status=pb.RUNNING), headers=HEADERS)
    ).workflows == []
    with pytest.raises(ConnectError) as missing:
        await workflow(api, 987_654)
    assert (missing.value.code, missing.value.message) == (Code.NOT_FOUND, "no workflow 987654")
    counts = json.loads(json.dumps(dict((await api.get_status(pb.GetStatusRequest())).exact_status_counts)))
    assert counts.get(str(int(Status.CANCELLED)), counts.get(int(Status.CANCELLED))) == 2
