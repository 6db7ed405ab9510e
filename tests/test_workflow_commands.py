"""Workflows through a real server process: `task-cli workflow` (create from a YAML file, get, list,
cancel, retry), and the Python client's create_workflow, get_workflow, list_workflows, cancel_workflow
and retry_workflow, sync and async. Without a server: tests/test_workflow_building.py."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agents import AgentProcess
from conftest import Served, ServerProcess, eventually, serving, subprocess_env
from taskservice import (
    AsyncClient,
    Client,
    InvalidArgument,
    NotFound,
    TaskFailed,
    TaskOptions,
    TaskStatus,
    Workflow,
    WorkflowInfo,
)
from taskservice.cli import cli
from taskservice.config import Settings

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

FAST = {"seconds": "0"}


@pytest.fixture(scope="module")
def idle(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server that runs nothing: every step stays where creating it put it (QUEUED or WAITING)."""
    with serving(pg_server_url, template_database, tmp_path_factory.mktemp("wf-idle"), WORKER_COUNT="0") as s:
        yield s


@pytest.fixture(scope="module")
def busy(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server running the steps itself (4 slots)."""
    with serving(pg_server_url, template_database, tmp_path_factory.mktemp("wf-busy"), WORKER_COUNT="4") as s:
        yield s


def _name() -> str:
    return f"wf-{uuid.uuid4().hex[:8]}"


def _cli(server: Served | ServerProcess, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--address", server.url, *args], input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ok(server: Served | ServerProcess, *args: str, input: str | None = None) -> str:
    code, out, err = _cli(server, *args, input=input)
    assert code == 0, (out, err)
    return out


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


DIAMOND = """\
name: {name}
steps:
  extract:
    type: sleep
    parameters: {{seconds: 0}}
    priority: 5
  left: {{type: sleep, depends_on: [extract], parameters: {{seconds: 0}}, max_retries: 0}}
  right: {{type: sleep, depends_on: [extract], timeout: 30, queue: slow}}
  load:
    type: send_email
    depends_on: [left, right]
    parameters: {{recipient: ops@example.com, subject: done}}
"""


# -- the CLI ------------------------------------------------------------------------------------------


def test_the_cli_creates_a_diamond_from_a_yaml_file_shows_lists_cancels_and_retries_it(
    idle: Served, tmp_path: Path
) -> None:
    name = _name()
    path = tmp_path / "diamond.yaml"
    path.write_text(DIAMOND.format(name=name))
    made = ok(idle, "workflow", "create", "--file", str(path))
    assert made.startswith("Workflow created with ID: ")
    workflow_id = int(made.split(":")[1])

    shown = ok(idle, "workflow", "get", str(workflow_id))
    rows = _rows(shown)
    for row in (["ID", str(workflow_id)], ["Name", name], ["Status", "RUNNING"],
                ["Steps", "4:", "1", "QUEUED,", "3", "WAITING"], ["Finished"]):  # fmt: skip
        assert row in rows, (row, shown)
    data = json.loads(ok(idle, "workflow", "get", str(workflow_id), "-o", "json"))
    ids = {s["name"]: s["taskId"] for s in data["steps"]}
    assert [(s["name"], s["status"], s["dependsOn"]) for s in data["steps"]] == [
        ("extract", "QUEUED", []), ("left", "WAITING", ["extract"]), ("right", "WAITING", ["extract"]),
        ("load", "WAITING", ["left", "right"]),
    ]  # fmt: skip
    tree = shown[shown.index("\n\n") + 2 :].splitlines()
    assert tree == [
        f"extract  task {ids['extract']}  QUEUED",
        f"├── left  task {ids['left']}  WAITING",
        f"│   └── load  task {ids['load']}  WAITING  (also after right)",
        f"└── right  task {ids['right']}  WAITING",
    ]
    # Each step's task carries what the file gave it, and knows its workflow.
    right = _rows(ok(idle, "task", "get", "-i", str(ids["right"])))
    for row in (["Queue", "slow"], ["Timeout", "30s"], ["Workflow", f"{workflow_id},", "step", "right"],
                ["Depends", "on", "task", str(ids["extract"])]):  # fmt: skip
        assert row in right, (row, right)
    extract = yaml.safe_load(ok(idle, "task", "get", "-i", str(ids["extract"]), "-o", "yaml"))
    assert (extract["priority"], extract["payload"], extract["workflowId"]) == (
        5,
        {"parameters": FAST},
        workflow_id,
    )

    listed = _rows(ok(idle, "workflow", "list"))
    assert listed[0] == ["ID", "NAME", "STATUS", "STEPS", "CREATED"]
    assert [str(workflow_id), name, "RUNNING", "0/4", "succeeded"] == listed[2][:5]
    assert ok(idle, "workflow", "list", "--status", "succeeded") == "No workflows\n"
    wide = _rows(ok(idle, "workflows", "list", "-o", "wide", "--status", "RUNNING"))
    assert wide[0] == ["ID", "NAME", "STATUS", "STEPS", "CREATED", "UPDATED", "FINISHED", "CREATED-BY"]
    assert [str(workflow_id), name] in [r[:2] for r in wide[2:]]
    as_yaml = yaml.safe_load(ok(idle, "workflow", "list", "-o", "yaml", "--limit", "1"))
    assert [(w["id"], w["steps"], w["stepCounts"]) for w in as_yaml["workflows"]] == [
        (workflow_id, 4, {"QUEUED": 1, "WAITING": 3})
    ]

    assert ok(idle, "workflow", "cancel", str(workflow_id)) == f"Workflow {workflow_id}: 4 steps cancelled.\n"
    rows = _rows(ok(idle, "workflow", "get", str(workflow_id)))
    assert ["Status", "CANCELLED"] in rows
    assert ["Steps", "4:", "4", "CANCELLED"] in rows
    assert [str(workflow_id), name, "CANCELLED", "0/4", "succeeded"] in [
        r[:5] for r in _rows(ok(idle, "workflow", "list", "-s", "cancelled"))
    ]
    assert ok(idle, "workflow", "cancel", str(workflow_id)) == f"Workflow {workflow_id}: 0 steps cancelled.\n"
    assert (
        ok(idle, "workflow", "retry", str(workflow_id)) == f"Workflow {workflow_id}: 4 steps to run again.\n"
    )
    again = json.loads(ok(idle, "workflow", "get", str(workflow_id), "-o", "json"))
    assert [s["status"] for s in again["steps"]] == ["QUEUED", "WAITING", "WAITING", "WAITING"]


def test_the_cli_reads_json_from_stdin_and_an_idempotency_key_gives_the_first(idle: Served) -> None:
    name = _name()
    text = json.dumps({"name": name, "steps": {"only": {"type": "sleep", "parameters": {"seconds": 0}}}})
    first = json.loads(
        ok(idle, "workflow", "create", "-f", "-", "--idempotency-key", name, "-o", "json", input=text)
    )
    assert first["existing"] is False
    again = ok(idle, "workflow", "create", "-f", "-", "--idempotency-key", name, input=text)
    assert again == f"Workflow already exists with ID: {first['id']}\n"
    shown = _rows(ok(idle, "workflow", "get", str(first["id"])))
    assert ["Idempotency", "key", name] in shown


def test_the_cli_says_the_field_the_server_refuses_and_a_missing_workflow(
    idle: Served, tmp_path: Path
) -> None:
    for steps, said in [
        ({"a": {"type": "nope"}}, "invalid_argument: steps['a'].task.type: unknown task type 'nope'"),
        ({"a": {"type": "sleep", "priority": 5000}}, "invalid_argument: steps['a'].task.priority: "),
        ({"bad name": {"type": "sleep"}}, "invalid_argument: steps[0].name: must be "),
    ]:
        path = tmp_path / "wf.yaml"
        path.write_text(yaml.safe_dump({"name": "refused", "steps": steps}))
        code, _, err = _cli(idle, "workflow", "create", "-f", str(path))
        assert (code, err.startswith(f"Error: {said}")) == (1, True), (steps, err)
    for command in ("get", "cancel", "retry"):
        code, _, err = _cli(idle, "workflow", command, "999999")
        assert (code, err.startswith("Error: not_found: ")) == (1, True), (command, err)
    code, _, err = _cli(idle, "workflow", "get", "x")
    assert (code, "'x' is not a valid integer" in err) == (2, True)


# -- the Python client --------------------------------------------------------------------------------


def test_a_built_workflow_runs_to_success_and_reads_back(busy: Served) -> None:
    wf = Workflow(_name())
    extract = wf.step("sleep", parameters=FAST)
    left = wf.step("sleep", after=extract, parameters=FAST, options=TaskOptions(priority=3))
    right = wf.step("sleep", name="right", after=[extract], parameters=FAST)
    load = wf.step("sleep", name="load", after=[left, right], parameters=FAST)
    with Client(busy.url) as client:
        workflow_id = client.create_workflow(wf)
        steps = {s.name: s for s in client.get_workflow(workflow_id).steps}
        assert list(steps) == ["sleep", "sleep-2", "right", "load"]
        assert steps["load"].depends_on == ("sleep-2", "right")
        assert client.task(steps[load.name].task_id).wait(timeout=60) == {"slept": 0.0}
        done = client.get_workflow(workflow_id)
        assert isinstance(done, WorkflowInfo)
        assert (done.name, done.status, done.step_counts) == (
            wf.name,
            TaskStatus.SUCCEEDED,
            {TaskStatus.SUCCEEDED: 4},
        )
        assert done.finished_at is not None
        assert done.created_at is not None
        assert done.finished_at >= done.created_at
        assert [(s.status, s.attempts, s.spawned_by) for s in done.steps] == [
            (TaskStatus.SUCCEEDED, 1, None)
        ] * 4
        task = client.get_task(steps["load"].task_id)
        assert (task.workflow_id, task.step, task.status) == (workflow_id, "load", TaskStatus.SUCCEEDED)
        assert set(task.dependencies) == {steps["sleep-2"].task_id, steps["right"].task_id}
        assert client.get_task(steps["sleep-2"].task_id).priority == 3
        listed = client.list_workflows(status=TaskStatus.SUCCEEDED)
        assert [(w.id, w.steps, w.step_counts) for w in listed if w.id == workflow_id] == [
            (workflow_id, (), {TaskStatus.SUCCEEDED: 4})
        ]
        assert workflow_id not in [w.id for w in client.list_workflows(status=TaskStatus.RUNNING)]
        # A succeeded workflow has nothing to cancel.
        assert client.cancel_workflow(workflow_id) == 0


def test_a_failed_step_cancels_what_comes_after_and_a_retry_runs_both_again(busy: Served) -> None:
    name = _name()
    steps = {
        "flaky": {"type": "sleep", "parameters": {"seconds": 0, "fail_rate": 1}, "max_retries": 0},
        "after": {"type": "sleep", "parameters": FAST, "depends_on": ["flaky"]},
    }
    with Client(busy.url) as client:
        workflow_id = client.create_workflow(name, steps)
        flaky = client.get_workflow(workflow_id).steps[0]
        with pytest.raises(TaskFailed, match="simulated failure"):
            client.task(flaky.task_id).wait(timeout=60)
        failed = client.get_workflow(workflow_id)
        assert failed.status == TaskStatus.FAILED
        assert [(s.name, s.status) for s in failed.steps] == [
            ("flaky", TaskStatus.FAILED), ("after", TaskStatus.CANCELLED),
        ]  # fmt: skip
        assert client.retry_workflow(workflow_id) == 2
        with pytest.raises(TaskFailed):
            client.task(flaky.task_id).wait(timeout=60)
        again = client.get_workflow(workflow_id)
        assert [(s.status, s.attempts) for s in again.steps] == [
            (TaskStatus.FAILED, 2),
            (TaskStatus.CANCELLED, 0),
        ]


def test_the_client_says_the_field_the_server_refuses(idle: Served) -> None:
    wf = Workflow("refused")
    wf.step("nope")
    with Client(idle.url) as client:
        with pytest.raises(InvalidArgument, match=r"steps\['nope'\].task.type: unknown task type 'nope'"):
            client.create_workflow(wf)
        with pytest.raises(InvalidArgument, match=r"^invalid_argument: steps: must hold 1 to"):
            client.create_workflow(Workflow("empty"))
        with pytest.raises(InvalidArgument, match=r"^invalid_argument: status: a workflow is RUNNING"):
            client.list_workflows(status=TaskStatus.QUEUED)
        with pytest.raises(NotFound):
            client.get_workflow(999_999)


async def test_the_async_client_creates_once_per_key_reads_cancels_and_retries(idle: Served) -> None:
    name = _name()
    wf = Workflow(name)
    first = wf.step("sleep", parameters={"seconds": "600"})
    wf.step("sleep", after=first, parameters=FAST)
    async with AsyncClient(idle.url) as client:
        workflow_id = await client.create_workflow(wf, idempotency_key=name)
        assert await client.create_workflow(wf, idempotency_key=name) == workflow_id
        found = await client.get_workflow(workflow_id)
        assert (found.status, found.idempotency_key) == (TaskStatus.RUNNING, name)
        assert [(s.name, s.status, s.depends_on) for s in found.steps] == [
            ("sleep", TaskStatus.QUEUED, ()), ("sleep-2", TaskStatus.WAITING, ("sleep",)),
        ]  # fmt: skip
        assert found.step_counts == {TaskStatus.QUEUED: 1, TaskStatus.WAITING: 1}
        running = await client.list_workflows(status=TaskStatus.RUNNING, limit=1000)
        assert workflow_id in [w.id for w in running]
        assert await client.cancel_workflow(workflow_id) == 2
        assert (await client.get_workflow(workflow_id)).status == TaskStatus.CANCELLED
        assert await client.retry_workflow(workflow_id) == 2
        assert (await client.get_workflow(workflow_id)).step_counts == {
            TaskStatus.QUEUED: 1,
            TaskStatus.WAITING: 1,
        }
        page = await client.list_workflows(limit=1, offset=0)
        assert len(page) == 1


async def test_get_draws_the_children_a_step_spawned_under_it(
    workerless_server: ServerProcess, settings: Settings, tmp_path: Path
) -> None:
    """`gather` spawns two children and waits for them (ctx.wait_for_children), then runs again;
    `report` after it waits for its children too. A worker process with the workflow tests' types
    runs them (tests/workflow_worker.py)."""
    worker_path = str(Path(__file__).with_name("workflow_worker.py"))
    env = subprocess_env(settings, GATE_DIR=str(tmp_path))
    worker = AgentProcess([sys.executable, worker_path, "--worker"], env, tmp_path / "worker.log")
    try:
        async with AsyncClient(workerless_server.url) as client:

            async def live() -> bool:
                return any(w.alive and "wf_continue" in w.task_types for w in await client.list_workers())

            await eventually(live, timeout=60)
            wf = Workflow(_name())
            gather = wf.step("wf_continue", name="gather", parameters={"n": "2"})
            report = wf.step("wf_sum", name="report", after=gather)
            workflow_id = await client.create_workflow(wf)
            first = await client.get_workflow(workflow_id)
            await client.task(first.steps[1].task_id).wait(timeout=60)
            done = await client.get_workflow(workflow_id)
        assert (done.status, done.step_counts) == (TaskStatus.SUCCEEDED, {TaskStatus.SUCCEEDED: 4})
        ids = {s.name: s.task_id for s in done.steps}
        assert {s.name: s.spawned_by for s in done.steps} == {
            "gather": None, "report": None, "gather/part-0": "gather", "gather/part-1": "gather",
        }  # fmt: skip
        tree = ok(workerless_server, "workflow", "get", str(workflow_id))
        # gather ran twice (spawning, then after its children); it waits for them, and so does report.
        assert tree[tree.index("\n\n") + 2 :].splitlines() == [
            f"gather  task {ids['gather']}  SUCCEEDED  (also after gather/part-0, gather/part-1; 2 attempts)",
            f"├── {report.name}  task {ids['report']}  SUCCEEDED  (also after gather/part-0, gather/part-1)",
            f"├── gather/part-0  task {ids['gather/part-0']}  SUCCEEDED  (spawned)",
            f"└── gather/part-1  task {ids['gather/part-1']}  SUCCEEDED  (spawned)",
        ]
        assert gather.name == "gather"
    finally:
        worker.stop()
