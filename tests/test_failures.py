"""Errors a developer can act on: a failed attempt keeps its exception's type and message and a bounded
traceback, and every way of looking at the attempt (history, the API, `task attempts --attempt`, the
client's TaskFailed, agents' reports, the worker's log) gives them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually
from taskservice import Client, TaskFailed, model
from taskservice.api import validation
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import NewTask, Status
from taskservice.store import Store
from test_worker import registry_with, running_worker, status_is

SERVICE = "cloud.v1.TaskManagementService"


class NoSuchCustomer(Exception):
    pass


def find_customer(name: str) -> None:
    raise NoSuchCustomer(name)


def charge(parameters: dict[str, str]) -> None:
    find_customer(parameters["customer"])


async def charge_async(parameters: dict[str, str]) -> None:
    find_customer(parameters["customer"])


# Two functions calling each other: Python folds a run of one repeated frame, not this.
def _ping(depth: int) -> None:
    if not depth:
        raise NoSuchCustomer("x" * 2000)
    _pong(depth - 1)


def _pong(depth: int) -> None:
    _ping(depth)


def deep(parameters: dict[str, str]) -> None:
    _ping(300)


# -- in a worker of this process ------------------------------------------------------------------


async def test_a_failed_attempt_keeps_the_type_message_and_traceback(
    store: Store, settings: Settings
) -> None:
    registry = registry_with(charge=charge, charge_async=charge_async)
    created = await store.create_tasks(
        [NewTask(kind, kind, {"customer": "nobody"}, max_retries=1) for kind in ("charge", "charge_async")]
    )
    with structlog.testing.capture_logs() as logs:
        async with running_worker(store, settings, registry, retry_policy=model.RetryPolicy(0.01, 0.02)):
            for task_id, _ in created:
                await eventually(lambda task_id=task_id: status_is(store, task_id, Status.FAILED))
    for task_id, _ in created:
        history = [h.details for h in await store.history(task_id)]
        assert history[2].startswith("Task failed (Attempt 1): NoSuchCustomer: nobody; retry 1 of 1 in ")
        assert history[-1] == "Task failed (Attempt 2): NoSuchCustomer: nobody; no retries left (1 used)"
        for attempt in await store.executions(task_id):
            assert attempt.error == "NoSuchCustomer: nobody"
            assert attempt.traceback is not None
            lines = attempt.traceback.splitlines()
            # From the plugin on: the runtime's own frames (the attempt, the plugin's thread) say nothing.
            assert lines[0] == "Traceback (most recent call last):"
            assert ", in charge" in lines[1], attempt.traceback
            assert "runtime.py" not in attempt.traceback
            assert lines[-3].endswith(", in find_customer")
            assert lines[-2].strip() == "raise NoSuchCustomer(name)"
            assert lines[-1] == "test_failures.NoSuchCustomer: nobody"  # as Python prints it
    # One line per failed attempt, at INFO while it will be retried, WARNING when the task fails.
    failed = [entry for entry in logs if entry.get("error") == "NoSuchCustomer: nobody"]
    assert sorted((e["task_id"], e["attempt"], e["log_level"], e["type"]) for e in failed) == sorted(
        (task_id, attempt, level, kind)
        for (task_id, _), kind in zip(created, ("charge", "charge_async"), strict=True)
        for attempt, level in ((1, "info"), (2, "warning"))
    )


async def test_a_success_formats_no_traceback(store: Store, settings: Settings) -> None:
    task_id, _ = await store.create_task(NewTask("fine", "fine"))
    async with running_worker(store, settings, registry_with(fine=lambda parameters: "ok")):
        await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED))
    [attempt] = await store.executions(task_id)
    assert (attempt.error, attempt.traceback) == (None, None)


async def test_a_huge_traceback_and_message_are_bounded(store: Store, settings: Settings) -> None:
    task_id, _ = await store.create_task(NewTask("deep", "deep", max_retries=0))
    async with running_worker(store, settings, registry_with(deep=deep)):
        await eventually(lambda: status_is(store, task_id, Status.FAILED))
    [attempt] = await store.executions(task_id)
    assert attempt.error is not None
    assert attempt.traceback is not None
    assert len(attempt.error) == model.ERROR_MAX
    assert attempt.error.startswith("NoSuchCustomer: xxx")
    assert attempt.error.endswith("…")
    # The last frames are kept, the first ones cut, and it says so.
    assert len(attempt.traceback) <= model.TRACEBACK_MAX
    assert attempt.traceback.startswith("[... the first lines were cut: this traceback had ")
    assert attempt.traceback.endswith(f".NoSuchCustomer: {'x' * 2000}\n")
    assert attempt.traceback.count(", in _pong\n") > 10
    assert "in deep" not in attempt.traceback  # the first frame was cut


async def test_a_message_with_a_nul_is_stored_escaped(store: Store, settings: Settings) -> None:
    """PostgreSQL's text cannot hold NUL: the attempt would fail as unstorable instead of saying why."""

    def nul(parameters: dict[str, str]) -> None:
        raise ValueError("before\x00after")

    task_id, _ = await store.create_task(NewTask("nul", "nul", max_retries=0))
    async with running_worker(store, settings, registry_with(nul=nul)):
        await eventually(lambda: status_is(store, task_id, Status.FAILED))
    [attempt] = await store.executions(task_id)
    assert attempt.error == "ValueError: before\\x00after"
    assert attempt.traceback is not None
    assert attempt.traceback.endswith("ValueError: before\\x00after\n")


def test_cut_traceback_keeps_whole_last_lines_within_the_limit() -> None:
    short = "Traceback (most recent call last):\n  File ...\nValueError: no\n"
    assert model.cut_traceback(short) == short
    lines = [f'  File "app.py", line {n}, in f{n}\n' for n in range(2000)]
    text = "Traceback (most recent call last):\n" + "".join(lines) + "ValueError: no\n"
    cut = model.cut_traceback(text, 4096)
    assert len(cut) <= 4096
    marker, first_kept, *_ = cut.splitlines(keepends=True)
    assert marker == f"[... the first lines were cut: this traceback had {len(text)} characters ...]\n"
    assert first_kept in lines  # begins at a whole line
    assert cut.endswith("in f1999\nValueError: no\n")


def test_the_server_bounds_an_agents_traceback_as_it_bounds_its_error() -> None:
    def report(traceback: str) -> pb.ReportOutcomesRequest:
        outcome = pb.AttemptOutcome(
            assignment_id=7, task_id=3, status=int(Status.FAILED), details="Task failed (Attempt 1): E",  # type: ignore[arg-type]
            outcome="failed", error="E", traceback=traceback,
        )  # fmt: skip
        return pb.ReportOutcomesRequest(agent_id="a", outcomes=[outcome])

    [kept] = validation.outcomes(report("Traceback ...\nE\n"), 1024, {})
    assert kept.traceback == "Traceback ...\nE\n"
    [none] = validation.outcomes(report(""), 1024, {})
    assert none.traceback is None
    with pytest.raises(validation.BrokenRule) as refused:
        validation.outcomes(report("x" * (model.TRACEBACK_MAX + 1)), 1024, {})
    assert refused.value.field == "outcomes[0].traceback"
    assert f"at most {model.TRACEBACK_MAX} characters" in refused.value.rule


# -- a user's task type, run by `task-cli server`'s workers and by an agent -------------------------

CUSTOMERS = '''
from taskservice import task


class NoSuchCustomer(Exception):
    """No customer by that name."""


def find_customer(name):
    raise NoSuchCustomer(name)


@task("charge_customer", max_retries=0)
def charge_customer(customer: str) -> str:
    find_customer(customer)
    return "charged"
'''


@pytest.fixture
def customers(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "customers.py").write_text(textwrap.dedent(CUSTOMERS))
    return folder


@pytest.fixture
def customers_server(settings: Settings, tmp_path: Path, customers: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        settings,
        tmp_path / "server.log",
        WORKER_COUNT="2",
        TASK_MODULES="customers",
        PYTHONPATH=str(customers),
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _assert_names_the_raise(traceback: str) -> None:
    assert traceback.startswith("Traceback (most recent call last):\n"), traceback
    assert ", in charge_customer\n" in traceback.splitlines(keepends=True)[1]  # @task's call is skipped
    assert ", in find_customer\n" in traceback
    assert traceback.endswith("\ncustomers.NoSuchCustomer: nobody\n")


def test_every_view_of_a_failed_attempt_gives_the_error_and_traceback(
    customers_server: ServerProcess,
) -> None:
    with Client(customers_server.url) as client:
        handle = client.create_task(name="Charge", type="charge_customer", parameters={"customer": "nobody"})
        with pytest.raises(TaskFailed) as failed:
            handle.wait(timeout=60)
        [history_end] = client.get_task_history(handle.id)[-1:]
    # The client: the one-line form, and the traceback of the last attempt.
    assert failed.value.error == "NoSuchCustomer: nobody"
    assert str(failed.value) == f"task_failed: task {handle.id} failed: NoSuchCustomer: nobody"
    _assert_names_the_raise(failed.value.traceback)
    assert history_end.details == "Task failed (Attempt 1): NoSuchCustomer: nobody; no retries left (0 used)"

    # The API (JSON): the attempt carries both.
    answer = httpx.post(
        f"{customers_server.url}/{SERVICE}/ListTaskExecutions", json={"id": handle.id}, timeout=10
    )
    [attempt] = answer.json()["executions"]
    assert attempt["error"] == "NoSuchCustomer: nobody"
    _assert_names_the_raise(attempt["traceback"])

    # task-cli: one line per attempt in the list; the traceback under the one attempt asked for.
    def task_cli(*arguments: str) -> str:
        command = [sys.executable, "-m", "taskservice.cli", "--address", customers_server.url, *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    listed = task_cli("task", "attempts", "-i", str(handle.id))
    assert "NoSuchCustomer: nobody" in listed
    assert "Traceback" not in listed
    one = task_cli("task", "attempts", "-i", str(handle.id), "--attempt", "1")
    table, _, traceback = one.partition("\n\n")
    assert "NoSuchCustomer: nobody" in table
    _assert_names_the_raise(traceback)
    assert traceback.rstrip("\n") == attempt["traceback"].rstrip("\n")


async def test_an_agent_reports_the_traceback_too(
    workerless_server: ServerProcess, settings: Settings, store: Store, customers: Path, tmp_path: Path
) -> None:
    env = agent_env(settings, TASK_MODULES="customers", PYTHONPATH=str(customers))
    agent = AgentProcess.cli(workerless_server, env, tmp_path / "agent.log", "-c", "2")
    try:
        new = NewTask("Charge", "charge_customer", {"customer": "nobody"}, max_retries=0)
        task_id, _ = await store.create_task(new)
        await eventually(lambda: status_is(store, task_id, Status.FAILED), timeout=60)
    finally:
        assert agent.stop() == 0, agent.log()
    [attempt] = await store.executions(task_id)
    kinds = {w.id: w.kind for w in await store.list_workers()}
    assert kinds[attempt.worker_id] == "agent"  # run by the agent, reported through the API
    assert attempt.error == "NoSuchCustomer: nobody"
    assert attempt.traceback is not None
    _assert_names_the_raise(attempt.traceback)
    # The agent's log says so in one line.
    assert "NoSuchCustomer: nobody" in agent.log()
