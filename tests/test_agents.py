"""Remote agents: `task-cli serve --address` runs tasks through the API server alone, under leases and
fencing; an agent written against the original's contract gets work too; auth keeps others out."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents import AgentProcess, agent_env, wake_and_stop
from conftest import ServerProcess, eventually
from taskservice.config import Settings
from taskservice.model import NewTask, Outcome, Status
from taskservice.store import Store

SERVICE = "/cloud.v1.TaskManagementService"


async def statuses(store: Store, ids: list[int]) -> list[Status]:
    return [(await store.get_task(i)).status for i in ids]


async def all_succeeded(store: Store, ids: list[int]) -> bool:
    return set(await statuses(store, ids)) == {Status.SUCCEEDED}


async def test_an_agent_runs_tasks_through_the_server_alone(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    created = await store.create_tasks([NewTask(f"t{i}", "sleep", {"seconds": "0"}) for i in range(30)])
    ids = [i for i, _ in created]
    agent = AgentProcess.cli(workerless_server, agent_env(settings), tmp_path / "agent.log", "-c", "4")
    try:
        await eventually(lambda: all_succeeded(store, ids), timeout=60)
        [info] = [w for w in await store.list_workers() if w.kind == "agent"]
        assert (info.concurrency, info.stopped_at) == (4, None)
        assert info.version == importlib.metadata.version("taskservice")  # said on its stream (0110)
        owners = {e.worker_id for i in ids for e in await store.executions(i)}
        assert owners == {info.id}
        listed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "taskservice.cli", "--address", workerless_server.url, "workers"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        [row] = [line for line in listed.stdout.splitlines() if info.id in line]
        assert row.split()[4:6] == ["alive", "agent"]
    finally:
        code = agent.stop()
    assert code == 0, agent.log()
    assert "agent stopped" in agent.log()

    async def marked_stopped() -> bool:  # its stream ended: the server marks it stopped
        return all(w.stopped_at is not None for w in await store.list_workers() if w.kind == "agent")

    await eventually(marked_stopped)


@pytest.mark.parametrize("prefetch", [None, 0], ids=["prefetching", "no-prefetch"])
async def test_an_agent_holds_its_slots_and_its_prefetch_and_keeps_the_waiting_ones_leased(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path, prefetch: int | None
) -> None:
    """The gated agent has 4 slots and (unless AGENT_PREFETCH=0) as many waiting: 4 tasks start, 4 more
    are sent and wait in the agent, their attempts' leases kept by its heartbeats past several leases;
    the rest stay queued. Released, each task runs once, the waiting ones without losing a lease."""
    gates = tmp_path / "gates"
    gates.mkdir()
    created = await store.create_tasks([NewTask(f"g{i}", "gate", {"name": f"g{i}"}) for i in range(10)])
    ids = [i for i, _ in created]
    extra = {} if prefetch is None else {"AGENT_PREFETCH": str(prefetch)}
    env = agent_env(settings, gates, **extra)
    waiting = 4 if prefetch is None else 0
    agent = AgentProcess.gated(workerless_server.url, env, tmp_path / "agent.log")
    try:
        await eventually(lambda: asyncio.sleep(0, len(list(gates.glob("started-*"))) == 4), timeout=60)
        await eventually(lambda: _count(store, ids, Status.RUNNING, 4 + waiting), timeout=30)
        assert (await statuses(store, ids)).count(Status.QUEUED) == 6 - waiting

        async def held_past_two_leases() -> bool:
            open_attempts = await store.pool.fetch(
                "SELECT lease_expires_at - started_at AS held FROM task_executions"
                " WHERE task_id = ANY($1::bigint[]) AND finished_at IS NULL",
                ids,
            )
            assert len(open_attempts) == 4 + waiting  # none reaped meanwhile
            return all(row["held"].total_seconds() > 2 * settings.lease_seconds for row in open_attempts)

        await eventually(held_past_two_leases, timeout=60)
        assert len(list(gates.glob("started-*"))) == 4  # the waiting ones did not start meanwhile
        (gates / f"release-{agent.pid}").touch()
        await eventually(lambda: all_succeeded(store, ids), timeout=60)
    finally:
        assert agent.stop() == 0, agent.log()
    for task_id in ids:
        assert [e.outcome for e in await store.executions(task_id)] == [Outcome.SUCCEEDED]


async def test_a_stopping_agent_gives_back_what_waits_at_once(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Stopped (SIGTERM) while 4 tasks run and 4 wait in it, the agent hands the waiting ones back to the
    queue as it stops (no lease to wait out), the running ones after its grace period; another agent
    then runs each."""
    gates = tmp_path / "gates"
    gates.mkdir()
    created = await store.create_tasks([NewTask(f"g{i}", "gate", {"name": f"g{i}"}) for i in range(8)])
    ids = [i for i, _ in created]
    first = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "first.log")
    try:
        await eventually(lambda: _count(store, ids, Status.RUNNING, 8), timeout=60)
    finally:
        assert first.stop() == 0, first.log()
    for task_id in ids:
        [attempt] = await store.executions(task_id)
        assert attempt.outcome != Outcome.LOST  # given back, not reaped
        assert (await store.get_task(task_id)).status in (Status.QUEUED, Status.RETRYING)
    second = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "second.log")
    try:
        (gates / f"release-{second.pid}").touch()
        await eventually(lambda: all_succeeded(store, ids), timeout=60)
    finally:
        assert second.stop() == 0, second.log()


async def _count(store: Store, ids: list[int], status: Status, expected: int) -> bool:
    return (await statuses(store, ids)).count(status) == expected


# -- the original's contract ------------------------------------------------------------------------


def envelope(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">BI", 0, len(data)) + data


async def json_messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The messages of a `application/connect+json` stream."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while len(buffer) >= 5:
            flags, length = struct.unpack(">BI", buffer[:5])
            if len(buffer) < 5 + length:
                break
            data, buffer = buffer[5 : 5 + length], buffer[5 + length :]
            if flags & 2:
                return
            yield json.loads(data)


async def test_an_original_style_agent_gets_work_and_reports_it(
    workerless_server: ServerProcess, store: Store
) -> None:
    """What the original's agent did, in plain HTTP JSON: Heartbeat, PullEvents (an empty request),
    and UpdateTaskStatus for each assignment. It gets one assignment at a time."""
    # The original's agent runs its two types (send_email, run_query): it is sent only those.
    created = await store.create_tasks([NewTask(f"old{i}", "send_email", {"to": "a@b.c"}) for i in range(3)])
    ids = [i for i, _ in created]
    done: list[int] = []
    headers = {"Connect-Protocol-Version": "1"}
    async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as client:
        beat = await client.post(
            f"{SERVICE}/Heartbeat",
            json={"timestamp": "2026-12-01T00:00:00Z", "uuid": "0b0e3f4e-old-agent"},
            headers=headers,
        )
        assert beat.status_code == 200, beat.text
        async with client.stream(
            "POST",
            f"{SERVICE}/PullEvents",
            content=envelope({}),
            headers={**headers, "Content-Type": "application/connect+json"},
        ) as stream:
            assert stream.status_code == 200
            async for message in json_messages(stream):
                work = message.get("work")
                if work is None:
                    continue
                assert set(work) >= {"assignmentId", "task"}
                task_id = int(work["task"]["id"])
                # One at a time: the others are still queued while this one is unreported.
                assert (await statuses(store, [i for i in ids if i not in done])).count(Status.RUNNING) == 1
                reply = await client.post(
                    f"{SERVICE}/UpdateTaskStatus",
                    json={"id": task_id, "status": "SUCCEEDED", "message": "done by the old agent"},
                    headers=headers,
                )
                assert reply.status_code == 200, reply.text
                done.append(task_id)
                if len(done) == len(ids):
                    break
    assert sorted(done) == sorted(ids)
    for task_id in ids:
        history = await store.history(task_id)
        assert [h.status for h in history] == [Status.QUEUED, Status.RUNNING, Status.SUCCEEDED]
        assert history[-1].details == "done by the old agent"


# -- leases and fencing -------------------------------------------------------------------------------


async def lease_lost(store: Store, task_id: int) -> bool:
    return any(h.details.startswith("Lease expired") for h in await store.history(task_id))


async def test_an_agent_killed_mid_task_loses_no_task(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    task_id, _ = await store.create_task(NewTask("survivor", "gate", {"name": "survivor"}, max_retries=0))
    first = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "first.log")
    try:
        await eventually(lambda: asyncio.sleep(0, any(gates.glob(f"started-{first.pid}-*"))), timeout=60)
    finally:
        first.stop(signal.SIGKILL)
    # Nobody heartbeats its lease: the server's reaper puts the task back, without spending a retry.
    await eventually(lambda: lease_lost(store, task_id), timeout=60)
    second = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "second.log")
    try:
        (gates / f"release-{second.pid}").touch()
        await eventually(lambda: all_succeeded(store, [task_id]), timeout=60)
    finally:
        assert second.stop() == 0, second.log()
    outcomes = [e.outcome for e in await store.executions(task_id)]
    assert outcomes == [Outcome.LOST, Outcome.SUCCEEDED]


async def test_a_paused_agent_cannot_report_and_its_plugin_is_cancelled_on_waking(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    task_id, _ = await store.create_task(NewTask("paused", "gate", {"name": "paused"}))
    paused = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "paused.log")
    other: AgentProcess | None = None
    try:
        await eventually(lambda: asyncio.sleep(0, any(gates.glob(f"started-{paused.pid}-*"))), timeout=60)
        (gates / f"release-{paused.pid}").touch()  # it may finish... but it is frozen first
        paused.process.send_signal(signal.SIGSTOP)
        await eventually(lambda: lease_lost(store, task_id), timeout=60)
        other = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "other.log")
        (gates / f"release-{other.pid}").touch()
        await eventually(lambda: all_succeeded(store, [task_id]), timeout=60)
        paused.process.send_signal(signal.SIGCONT)
        # Awake, it learns its lease is gone (a refused heartbeat or a refused report), and changes
        # nothing: the task stays as the other agent left it.

        async def told() -> bool:
            log = paused.log()
            return "attempt no longer current" in log or "outcomes refused" in log

        await eventually(told, timeout=60)
    finally:
        wake_and_stop(paused, other)
    task = await store.get_task(task_id)
    assert task.status == Status.SUCCEEDED
    [lost, won] = await store.executions(task_id)
    assert (lost.outcome, won.outcome) == (Outcome.LOST, Outcome.SUCCEEDED)
    assert won.result == {"released_in": str(other.pid)}
    history = [h.details for h in await store.history(task_id)]
    assert history.count("Task completed successfully (Attempt 1)") == 0


async def test_a_paused_agent_s_running_plugin_is_cancelled_when_it_wakes(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """The gate of the paused agent is never opened: on waking it finds the lease ran out on its own
    clock and cancels the plugin at once, before any heartbeat, while the attempt that replaced it
    finishes elsewhere."""
    gates = tmp_path / "gates"
    gates.mkdir()
    task_id, _ = await store.create_task(NewTask("frozen", "gate", {"name": "frozen"}))
    paused = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "paused.log")
    other: AgentProcess | None = None
    try:
        await eventually(lambda: asyncio.sleep(0, any(gates.glob(f"started-{paused.pid}-*"))), timeout=60)
        paused.process.send_signal(signal.SIGSTOP)
        await eventually(lambda: lease_lost(store, task_id), timeout=60)
        other = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "other.log")
        (gates / f"release-{other.pid}").touch()
        await eventually(lambda: all_succeeded(store, [task_id]), timeout=60)
        paused.process.send_signal(signal.SIGCONT)
        cancelled = gates / f"cancelled-{paused.pid}-frozen"
        await eventually(lambda: asyncio.sleep(0, cancelled.exists()), timeout=60)
    finally:
        wake_and_stop(paused, other)
    log = paused.log()
    assert "the attempt's lease ran out (was this worker paused?); stopping it" in log, log
    assert "outcomes refused" in log, log  # its report of a lost lease came too late: changes nothing
    assert (await store.get_task(task_id)).status == Status.SUCCEEDED
    assert [e.outcome for e in await store.executions(task_id)] == [Outcome.LOST, Outcome.SUCCEEDED]


async def test_a_paused_agent_starts_none_of_the_assignments_that_waited_in_it(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Frozen (SIGSTOP) with 4 tasks running and 4 waiting in it, the agent loses all 8 leases; another
    agent runs them. Woken, the paused one starts none of those that waited (their leases ran out on its
    clock too, or its heartbeat learns they are gone), and nothing it says changes a task."""
    gates = tmp_path / "gates"
    gates.mkdir()
    created = await store.create_tasks([NewTask(f"p{i}", "gate", {"name": f"p{i}"}) for i in range(8)])
    ids = [i for i, _ in created]
    paused = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "paused.log")
    other: AgentProcess | None = None
    try:
        await eventually(lambda: _count(store, ids, Status.RUNNING, 8), timeout=60)
        await eventually(lambda: asyncio.sleep(0, len(list(gates.glob(f"started-{paused.pid}-*"))) == 4))
        paused.process.send_signal(signal.SIGSTOP)
        for task_id in ids:
            await eventually(lambda task_id=task_id: lease_lost(store, task_id), timeout=60)
        other = AgentProcess.gated(workerless_server.url, agent_env(settings, gates), tmp_path / "other.log")
        (gates / f"release-{other.pid}").touch()
        await eventually(lambda: all_succeeded(store, ids), timeout=60)
        paused.process.send_signal(signal.SIGCONT)
        cancelled = f"cancelled-{paused.pid}-*"
        await eventually(lambda: asyncio.sleep(0, len(list(gates.glob(cancelled))) == 4), timeout=60)
        await eventually(lambda: asyncio.sleep(0, "outcomes refused" in paused.log()), timeout=60)
    finally:
        wake_and_stop(paused, other)
    # Stopped, it can start nothing more: only the 4 it ran before the pause ever started in it.
    assert len(list(gates.glob(f"started-{paused.pid}-*"))) == 4
    for task_id in ids:
        [lost, won] = await store.executions(task_id)
        assert (lost.outcome, won.outcome) == (Outcome.LOST, Outcome.SUCCEEDED)
        assert won.result == {"released_in": str(other.pid)}


# -- auth ---------------------------------------------------------------------------------------------


async def test_with_auth_on_only_an_agent_token_runs_an_agent(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    from taskservice.auth.tokens import issue
    from taskservice.store import Credentials

    credentials = Credentials(store.pool)
    tokens = {
        role: (await issue(credentials, f"t-{role}", role, 0, "tests"))[1] for role in ("agent", "viewer")
    }
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", AUTH_REQUIRED="true")
    try:
        server.wait_ready()
        task_id, _ = await store.create_task(NewTask("guarded", "sleep", {"seconds": "0"}))
        for name, token in (("none", ""), ("viewer", tokens["viewer"])):
            refused = AgentProcess.cli(
                server, agent_env(settings, TASK_SERVICE_TOKEN=token), tmp_path / f"{name}.log"
            )
            # It stops at once, saying why, and took nothing.
            assert await asyncio.to_thread(refused.process.wait, 60) == 1, refused.log()
            expected = "unauthenticated" if name == "none" else "permission_denied"
            assert f"the worker stopped: agent-stream failed: {expected}" in refused.log()
            assert (await store.get_task(task_id)).status == Status.QUEUED
            refused.stop()
        agent = AgentProcess.cli(
            server, agent_env(settings, TASK_SERVICE_TOKEN=tokens["agent"]), tmp_path / "agent.log"
        )
        try:
            await eventually(lambda: all_succeeded(store, [task_id]), timeout=60)
        finally:
            assert agent.stop() == 0, agent.log()
    finally:
        server.stop()


async def test_agents_share_the_work(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    created = await store.create_tasks([NewTask(f"s{i}", "sleep", {"seconds": "0"}) for i in range(400)])
    ids = [i for i, _ in created]
    agents = [
        AgentProcess.cli(workerless_server, agent_env(settings), tmp_path / f"agent{n}.log", "-c", "100")
        for n in range(2)
    ]

    async def both_registered() -> bool:  # each past its start (handling SIGTERM), even one left no work
        return len([w for w in await store.list_workers() if w.kind == "agent"]) == 2

    try:
        await eventually(lambda: all_succeeded(store, ids), timeout=90)
        await eventually(both_registered, timeout=90)
    finally:
        for agent in agents:
            assert agent.stop() == 0, agent.log()
    runs = [len(await store.executions(i)) for i in ids]
    assert set(runs) == {1}  # each ran once


# -- bad input ----------------------------------------------------------------------------------------


async def test_bad_agent_requests_name_the_field_and_the_rule(workerless_server: ServerProcess) -> None:
    headers = {"Connect-Protocol-Version": "1"}
    cases = [
        ("Heartbeat", {"uuid": "no spaces allowed"}, "uuid: must be 1 to 255 characters"),
        ("Heartbeat", {"uuid": "a", "held": list(range(1, 2002))}, "held: must hold at most 2000"),
        ("Heartbeat", {"uuid": "a", "held": [0]}, "held[0]: must be >= 1"),
        # The controller's leases-only heartbeat names the agent (never the original's uuid-less one).
        ("Heartbeat", {"leasesOnly": True}, "uuid: must be 1 to 255 characters"),
        ("ReportOutcomes", {"agentId": "a"}, "outcomes: must hold 1 to 1000 outcomes"),
        (
            "ReportOutcomes",
            {"agentId": "a", "outcomes": [{"assignmentId": 1, "taskId": 1, "status": "RUNNING"}]},
            "outcomes[0].status: must be one of",
        ),
        (
            "ReportOutcomes",
            {"agentId": "a", "outcomes": [{
                "assignmentId": 1, "taskId": 1, "status": "SUCCEEDED", "outcome": "succeeded",
                "details": "done", "resultJson": "{not json",
            }]},
            "outcomes[0].result_json: must be JSON",
        ),
        (
            "ReportOutcomes",
            {"agentId": "a", "outcomes": [{
                "assignmentId": 1, "taskId": 1, "status": "SUCCEEDED", "outcome": "succeeded",
                "details": "done", "resultJson": '{"out": ["x\\u0000"]}',
            }]},
            "outcomes[0].result_json: must not contain NUL",
        ),
        (
            "ReportOutcomes",
            {"agentId": "a", "outcomes": [{
                "assignmentId": 1, "taskId": 1, "status": "FAILED", "outcome": "failed",
                "details": "done", "error": "bad\x00",
            }]},
            "outcomes[0].error: must not contain NUL",
        ),
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as client:
        for method, body, expected in cases:
            reply = await client.post(f"{SERVICE}/{method}", json=body, headers=headers)
            assert reply.status_code == 400, (method, reply.text)
            error = reply.json()
            assert error["code"] == "invalid_argument"
            assert error["message"].startswith(expected), (expected, error)
        for pull, expected_error in (
            ({"agentId": "bad id", "slots": 5}, b"agent_id: must be 1 to 255 characters"),
            ({"agentId": "a", "slots": 5, "taskTypes": ["t"], "prefetch": 1001}, b"prefetch: must be"),
        ):
            async with client.stream(
                "POST",
                f"{SERVICE}/PullEvents",
                content=envelope(pull),
                headers={**headers, "Content-Type": "application/connect+json"},
            ) as stream:
                trailer = await stream.aread()
            assert b"invalid_argument" in trailer
            assert expected_error in trailer, trailer


AGENT_TASKS = """
import taskservice


@taskservice.task("keyed", max_retries=0)
def keyed(ctx: taskservice.TaskContext, size: int) -> dict[str, object]:
    return {"key": ctx.idempotency_key, "size": size}
"""


async def test_an_agent_publishes_its_declarations_and_gives_plugins_the_idempotency_key(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "agent_tasks.py").write_text(AGENT_TASKS)
    env = agent_env(settings, PYTHONPATH=str(tmp_path))
    agent = AgentProcess.cli(workerless_server, env, tmp_path / "agent.log", "--import", "agent_tasks")
    try:
        async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:

            async def refused_by_the_declaration() -> bool:  # once the agent's stream is open
                body = {"name": "k", "type": "keyed", "payload": {"parameters": {"size": "big"}}}
                answer = await http.post(f"{SERVICE}/CreateTask", json=body)
                return answer.status_code == 400 and "payload.parameters['size']" in answer.json()["message"]

            await eventually(refused_by_the_declaration)
            body = {"name": "k", "type": "keyed", "payload": {"parameters": {"size": "3"}}}
            created = (await http.post(f"{SERVICE}/CreateTask", json=body)).json()
        task_id = int(created["id64"])
        await eventually(lambda: all_succeeded(store, [task_id]), timeout=60)
        [attempt] = await store.executions(task_id)
        # The same key a direct worker would give: this installation's id and the task's.
        assert attempt.result == {"key": f"{await store.installation_id()}-{task_id}", "size": 3}
    finally:
        code = agent.stop()
    assert code == 0, agent.log()
