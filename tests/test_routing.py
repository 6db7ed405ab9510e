"""Routing: a worker or agent claims only the task types it can run, and a task whose type no live
worker runs waits in QUEUED and says so (GetTask, ListTasks, `task get`, the dashboard, a metric)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually, subprocess_env
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"


def task_module(folder: Path, name: str, *types: str) -> None:
    """A module declaring `types` with @taskservice.task; each returns the pid that ran it."""
    lines = ["import os", "", "import taskservice", ""]
    for kind in types:
        lines += [
            "",
            f"@taskservice.task({kind!r}, max_retries=0)",
            f"def {kind}(n: int) -> dict[str, object]:",
            "    return {'pid': os.getpid(), 'n': n}",
            "",
        ]
    (folder / f"{name}.py").write_text("\n".join(lines))


def worker_process(settings: Settings, folder: Path, label: str, *options: str, **env: str) -> AgentProcess:
    """`task-cli serve` (a direct worker) importing the task modules written in `folder`."""
    args = [sys.executable, "-m", "taskservice.cli", "--log-level", "info", "serve", *options]
    environment = subprocess_env(settings, PYTHONPATH=str(folder), **env)
    return AgentProcess(args, environment, folder / f"{label}.log")


async def live_workers_with(store: Store, count: int, *types: str) -> bool:
    """Whether `count` live workers or agents run each of `types` (so all may claim from now on)."""
    workers = [w for w in await store.list_workers() if w.stopped_at is None]
    return all(sum(kind in w.task_types for w in workers) >= count for kind in types)


async def ran_by(store: Store, ids: list[int]) -> Counter[tuple[str, int, int]]:
    """(status, attempts, pid that ran it) of each task, counted."""
    seen: Counter[tuple[str, int, int]] = Counter()
    for task_id in ids:
        task = await store.get_task(task_id)
        attempts = await store.executions(task_id)
        result = attempts[-1].result if attempts else None
        pid = result["pid"] if isinstance(result, dict) else 0
        seen[(task.status.name, task.attempts, pid)] += 1
    return seen


async def settled(store: Store, ids: list[int]) -> bool:
    waiting = (Status.QUEUED, Status.RUNNING, Status.RETRYING)
    return not [i for i in ids if (await store.get_task(i)).status in waiting]


async def create(store: Store, count: int, *types: str) -> list[int]:
    """`count` tasks of each of `types`, interleaved (ids[0::2] of the first type...), no retries."""
    news = [NewTask(f"{kind}{i}", kind, {"n": str(i)}, max_retries=0) for i in range(count) for kind in types]
    return [task_id for task_id, _ in await store.create_tasks(news)]


async def test_workers_with_disjoint_types_and_one_with_both_fail_no_task(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Neither narrowed by --type: each claims only what its registry has (before, each claimed every
    type and failed the other's tasks for good with `unknown plugin type`)."""
    task_module(tmp_path, "alpha_tasks", "alpha")
    task_module(tmp_path, "beta_tasks", "beta")
    alpha = worker_process(settings, tmp_path, "alpha", "-c", "4", "--import", "alpha_tasks")
    beta = worker_process(settings, tmp_path, "beta", "-c", "4", "--import", "beta_tasks")
    both = worker_process(
        settings, tmp_path, "both", "-c", "4", "--import", "alpha_tasks", "--import", "beta_tasks"
    )
    workers = [alpha, beta, both]
    try:
        await eventually(lambda: live_workers_with(store, 2, "alpha", "beta"), timeout=60)
        ids = await create(store, 200, "alpha", "beta")
        await eventually(lambda: settled(store, ids), timeout=120)
        outcome = await ran_by(store, ids)
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0, 0], [w.log()[-3000:] for w in workers]
    # Every task succeeded at its first attempt, run by a worker that has its type.
    assert {(status, attempts) for status, attempts, _ in outcome} == {("SUCCEEDED", 1)}, outcome
    alpha_ids, beta_ids = ids[0::2], ids[1::2]
    alpha_pids = {pid for (_, _, pid) in (await ran_by(store, alpha_ids))}
    beta_pids = {pid for (_, _, pid) in (await ran_by(store, beta_ids))}
    assert alpha_pids <= {alpha.pid, both.pid}
    assert beta_pids <= {beta.pid, both.pid}
    assert sum(outcome.values()) == 400


async def test_a_type_only_one_kind_of_worker_has_is_run_by_it_alone(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    """The server's in-process workers (WORKER_COUNT) and an agent without the type, beside a direct
    worker with it: 100 of 100 tasks succeed, all run by that worker; and the other way round, an
    agent-only type is sent to the agent alone."""
    task_module(tmp_path, "gamma_tasks", "gamma")
    task_module(tmp_path, "kappa_tasks", "kappa")
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="4")
    processes: list[AgentProcess] = []
    try:
        server.wait_ready()
        bystander = AgentProcess.cli(server, agent_env(settings), tmp_path / "bystander.log", "-c", "4")
        processes.append(bystander)
        kappa = AgentProcess.cli(
            server, agent_env(settings, PYTHONPATH=str(tmp_path)), tmp_path / "kappa.log",
            "-c", "4", "--import", "kappa_tasks",
        )  # fmt: skip
        processes.append(kappa)
        gamma = worker_process(settings, tmp_path, "gamma", "-c", "4", "--import", "gamma_tasks")
        processes.append(gamma)
        # The server's own worker and the bystander agent run `sleep`: both are live.
        await eventually(lambda: live_workers_with(store, 2, "sleep"), timeout=60)
        await eventually(lambda: live_workers_with(store, 1, "gamma", "kappa"), timeout=60)
        ids = await create(store, 100, "gamma", "kappa")
        await eventually(lambda: settled(store, ids), timeout=120)
        gamma_runs = await ran_by(store, ids[0::2])
        kappa_runs = await ran_by(store, ids[1::2])
    finally:
        codes = [p.stop() for p in processes]
        server.stop()
    assert codes == [0] * len(processes), [p.log()[-3000:] for p in processes]
    assert gamma_runs == Counter({("SUCCEEDED", 1, gamma.pid): 100})
    assert kappa_runs == Counter({("SUCCEEDED", 1, kappa.pid): 100})
    assert "Traceback" not in server.log(), server.log()[-5000:]


def test_a_type_the_worker_cannot_run_stops_it_before_it_starts(settings: Settings, tmp_path: Path) -> None:
    task_module(tmp_path, "alpha_tasks", "alpha")
    args = [sys.executable, "-m", "taskservice.cli", "serve", "--import", "alpha_tasks"]
    args += ["--type", "alpha", "--type", "nope"]
    env = subprocess_env(settings, PYTHONPATH=str(tmp_path))
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "--type names task types this worker cannot run: nope" in done.stderr
    assert "alpha" in done.stderr  # what it has
    assert "send_email" in done.stderr
    assert "Traceback" not in done.stderr


async def test_an_agent_must_name_its_types(workerless_server: ServerProcess) -> None:
    body = b'{"agentId": "typeless", "slots": 1}'
    headers = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
    async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:
        envelope = len(body).to_bytes(5, "big")
        reply = await http.post(f"{SERVICE}/PullEvents", content=envelope + body, headers=headers)
    assert b"invalid_argument" in reply.content
    assert b"task_types: must name the task types this agent runs" in reply.content


def without_worker(metrics: str) -> dict[str, float]:
    return {
        sample.labels["type"]: sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "taskservice_tasks_without_worker"
        for sample in family.samples
    }


async def test_a_type_whose_workers_are_gone_waits_and_says_so(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    task_module(tmp_path, "delta_tasks", "delta")
    reason = "no live worker runs type delta"
    delta = worker_process(settings, tmp_path, "delta", "--import", "delta_tasks")
    try:
        await eventually(lambda: live_workers_with(store, 1, "delta"), timeout=60)
        # Not due for an hour, but a live worker runs its type: it waits for nothing else.
        later, _ = await store.create_task(NewTask("later", "delta", {"n": "0"}, delay_seconds=3600))
        async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:
            got = (await http.post(f"{SERVICE}/GetTask", json={"id": later})).json()
            assert (got["exactStatus"], got["waitingReason"]) == ("QUEUED", "")
            assert without_worker((await http.get("/metrics")).text) == {}
    finally:
        assert delta.stop() == 0, delta.log()
    # Declared once, its only worker gone: its tasks wait, and say why.
    orphan, _ = await store.create_task(NewTask("orphan", "delta", {"n": "1"}))
    async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:
        got = (await http.post(f"{SERVICE}/GetTask", json={"id": orphan})).json()
        assert (got["exactStatus"], got["waitingReason"]) == ("QUEUED", reason)
        listed = (await http.post(f"{SERVICE}/ListTasks", json={})).json()["tasks"]
        assert {t["name"]: t["waitingReason"] for t in listed} == {"orphan": reason, "later": reason}
        assert without_worker((await http.get("/metrics")).text) == {"delta": 2.0}
    cli = [
        sys.executable,
        "-m",
        "taskservice.cli",
        "--address",
        workerless_server.url,
        "task",
        "get",
        "--id",
        str(orphan),
    ]

    def run(*more: str) -> str:
        done = subprocess.run([*cli, *more], capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    human = await asyncio.to_thread(run)
    assert [line.split(None, 1)[1] for line in human.splitlines() if line.startswith("Waiting")] == [reason]
    assert json.loads(await asyncio.to_thread(run, "-o", "json"))["waitingReason"] == reason
    assert f"waitingReason: {reason}" in await asyncio.to_thread(run, "-o", "yaml")
    # A worker of the type comes back: the task runs, and the type has a live worker again.
    back = worker_process(settings, tmp_path, "back", "--import", "delta_tasks")
    try:
        await eventually(lambda: settled(store, [orphan]), timeout=60)
        async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:
            assert without_worker((await http.get("/metrics")).text) == {}
            got = (await http.post(f"{SERVICE}/GetTask", json={"id": later})).json()
            assert got["waitingReason"] == ""
    finally:
        assert back.stop() == 0, back.log()
    assert (await store.get_task(orphan)).status == Status.SUCCEEDED
