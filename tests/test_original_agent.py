"""The original's agent and controller, replayed call for call (tests/original_agent.py), run tasks to
the end on our server: with auth off and on, one agent and several, and an agent killed mid-task. The
server's history of each task is what the controller said, in order, mapped onto our attempts."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually
from taskservice.auth.tokens import issue
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import IllegalTransition, NewTask, Outcome, Status
from taskservice.store import Credentials, NotHeld, Pool, Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
ORIGINAL_AGENT = str(Path(__file__).with_name("original_agent.py"))
# The original's timings (heartbeat 5 s, backoff 1 s then 2 s, TASK_TIME_OUT 1 s) times this: its
# heartbeats (0.25 s) come well within the tests' 2 s lease, as the original's do within 30 s.
SCALE = "0.05"
STATUS_OF = {"RUNNING": Status.RUNNING, "SUCCEEDED": Status.SUCCEEDED}


def original_agent(
    server: ServerProcess, settings: Settings, log: Path, *options: str, token: str = ""
) -> AgentProcess:
    args = [sys.executable, ORIGINAL_AGENT, server.url, "--scale", SCALE, *options]
    return AgentProcess([*args, *(["--token", token] if token else [])], agent_env(settings), log)


def said(agent: AgentProcess) -> list[dict[str, Any]]:
    """What the replayed agent and controller did: one JSON object a line."""
    lines = []
    for line in agent.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def expected_history(updates: list[dict[str, Any]]) -> list[tuple[Status, str]]:
    """The history lines the controller's accepted updates make, in its words: an "Attempt N
    failed" shows as RETRYING (it tries again, or says it gave up), its last FAILED as FAILED."""
    lines = []
    for update in updates:
        status, message = update["status"], update["message"]
        if status == "FAILED":
            final = not message.startswith("Attempt ")
            lines.append((Status.FAILED if final else Status.RETRYING, message))
        else:
            lines.append((STATUS_OF[status], message))
    return lines


async def check_task(store: Store, task_id: int, updates: list[dict[str, Any]], agent_ids: set[str]) -> None:
    """The task's history is its claim and then exactly the controller's updates; its attempts are
    the controller's, all held by one of the agents named (no one else got it in between)."""
    task = await store.get_task(task_id)
    history = [(h.status, h.details) for h in await store.history(task_id)]
    assert history[0][0] == Status.QUEUED
    assert history[1] == (Status.RUNNING, "Task started (Attempt 1)")
    assert history[2:] == expected_history(updates), (task_id, history)
    runs = [u for u in updates if u["status"] == "RUNNING"]
    final = updates[-1]
    assert task.status == (Status.SUCCEEDED if final["status"] == "SUCCEEDED" else Status.FAILED)
    executions = await store.executions(task_id)
    assert len(executions) == len(runs) == task.attempts
    assert task.retries == len(runs) - 1
    holders = {e.worker_id for e in executions}
    assert len(holders) == 1
    assert holders <= agent_ids
    outcomes = [e.outcome for e in executions]
    last = Outcome.SUCCEEDED if final["status"] == "SUCCEEDED" else Outcome.FAILED
    assert outcomes == [Outcome.FAILED] * (len(runs) - 1) + [last]
    assert all(e.finished_at is not None for e in executions)


def updates_by_task(lines: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    by_task: dict[int, list[dict[str, Any]]] = {}
    for line in lines:
        if line["event"] == "update":
            assert line["ok"], line  # never refused: the original's controller would start over
            by_task.setdefault(line["task"], []).append(line)
    return by_task


async def all_finished(store: Store, ids: list[int], agents: list[AgentProcess]) -> bool:
    """Every task finished, and its controller has the answer to its last report (it says so after)."""
    statuses = {(await store.get_task(i)).status for i in ids}
    if not statuses <= {Status.SUCCEEDED, Status.FAILED}:
        return False
    last: dict[int, dict[str, Any]] = {}
    for agent in agents:
        for line in said(agent):
            if line["event"] == "update":
                last[line["task"]] = line
    return all(i in last and is_final(last[i]) for i in ids)


def is_final(update: dict[str, Any]) -> bool:
    return update["status"] == "SUCCEEDED" or (
        update["status"] == "FAILED" and not update["message"].startswith("Attempt ")
    )


async def agent_ids(store: Store) -> set[str]:
    return {w.id for w in await store.list_workers() if w.kind == "agent"}


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
    assert "Traceback" not in process.log(), process.log()[-5000:]


@pytest.mark.parametrize("count", [1, 3], ids=["one agent", "three agents"])
async def test_fifty_tasks_run_to_the_end_through_the_original_agent_and_controller(
    server: ServerProcess, store: Store, settings: Settings, tmp_path: Path, count: int
) -> None:
    kinds = ("run_query", "send_email")
    created = await store.create_tasks(
        [NewTask(f"Task {i}", kinds[i % 2], {"test": f"test_{i}"}) for i in range(50)]
    )
    ids = [i for i, _ in created]
    logs = [tmp_path / f"agent{n}.log" for n in range(count)]
    agents = [original_agent(server, settings, log, "--seed", str(7 + n)) for n, log in enumerate(logs)]
    try:
        await eventually(lambda: all_finished(store, ids, agents), timeout=120)
    finally:
        for agent in agents:
            agent.stop()
    lines = [line for agent in agents for line in said(agent)]
    assert not [line for line in lines if line["event"] in ("panic", "stream") and "error" in line], lines
    assert not [line for line in lines if line["event"] == "heartbeat"]  # none refused
    by_task = updates_by_task(lines)
    assert sorted(by_task) == sorted(ids)
    registered = await agent_ids(store)
    assert len(registered) == count
    for task_id in ids:
        await check_task(store, task_id, by_task[task_id], registered)
    # run_query failed some attempts (20%): those tasks went RETRYING between them.
    retried = [t for t, u in by_task.items() if any(x["message"].startswith("Attempt") for x in u)]
    assert retried, "the seed should make run_query fail at least once"
    # A client that knows RETRYING sees it; the original's clients see QUEUED (their enum ends at ALL).
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        reply = await http.post(f"{SERVICE}/GetTaskHistory", json={"id": retried[0]})
        shown = [(h["status"], h.get("exactStatus"), h["details"]) for h in reply.json()["history"]]
    failed_once = [s for s in shown if s[2].startswith("Attempt 1 failed: ")]
    assert failed_once == [("QUEUED", "RETRYING", "Attempt 1 failed: query failed")]


async def test_an_original_stream_gets_only_work_and_heartbeats_without_a_uuid_are_accepted(
    server: ServerProcess, store: Store
) -> None:
    """The original's agent would crash on a message without work: an idle stream sends nothing."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        headers = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
        stamp = pb.HeartbeatRequest(timestamp="2026-12-06T00:00:00Z").SerializeToString()
        beat = await http.post(f"{SERVICE}/Heartbeat", content=stamp, headers=headers)
        assert beat.status_code == 200, beat.text
        stream_headers = {**headers, "Content-Type": "application/connect+proto"}
        messages: asyncio.Queue[pb.PullEventsResponse] = asyncio.Queue()

        async def follow() -> None:
            async with http.stream(
                "POST", f"{SERVICE}/PullEvents", content=b"\x00\x00\x00\x00\x00", headers=stream_headers
            ) as response:
                assert response.status_code == 200
                buffer = b""
                async for chunk in response.aiter_bytes():
                    buffer += chunk
                    while len(buffer) >= 5 and len(buffer) >= 5 + int.from_bytes(buffer[1:5]):
                        length = int.from_bytes(buffer[1:5])
                        messages.put_nowait(pb.PullEventsResponse.FromString(buffer[5 : 5 + length]))
                        buffer = buffer[5 + length :]

        follower = asyncio.create_task(follow())
        try:
            await eventually(lambda: agent_ids(store), timeout=30)  # the stream is open
            # Idle for three times our own agents' keep-alive period (a third of the 2 s lease): no
            # message at all, where our agents get a hello at once and then keep-alives.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(messages.get(), 2.0)
            task_id, _ = await store.create_task(NewTask("old", "send_email", {"test": "test_0"}))
            # Silent for longer than two thirds of a lease, it is fed again once it heartbeats: a
            # heartbeat naming a uuid of its own (nobody registered it) speaks for its stream, as one
            # naming none does (the 50 tasks above take longer than that: the agent names none).
            own = pb.HeartbeatRequest(timestamp="2026-12-06T00:00:05Z", uuid="3f9c2f7e-0000-4000-8000-c0ffee")
            beat = await http.post(f"{SERVICE}/Heartbeat", content=own.SerializeToString(), headers=headers)
            assert beat.status_code == 200, beat.text
            message = await asyncio.wait_for(messages.get(), 30)
            assert message.HasField("work")
            assert message.work.task.id == task_id
            assert (message.keepalive, message.agent_id) == (False, "")

            async def alive() -> bool:  # heard, its agent shows alive (here: within the 2 s lease)
                kinds = [("send_email", "default"), ("run_query", "default")]
                return not await store.without_live_worker(kinds, 2.0)

            await eventually(alive, timeout=30)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)


async def test_the_server_keeps_idle_connections_alive_with_tcp_keepalive(server: ServerProcess) -> None:
    """What keeps an original-style stream's idle connection alive instead of keep-alive messages."""
    if shutil.which("ss") is None:
        pytest.skip("needs ss (iproute2) to read the server's socket timers")
    port = urlsplit(server.url).port
    _, writer = await asyncio.open_connection("127.0.0.1", port)

    async def probed() -> bool:
        shown = await asyncio.to_thread(
            subprocess.run, ["ss", "-tnoH", "state", "established", f"( sport = :{port} )"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return "timer:(keepalive" in shown.stdout

    try:
        await eventually(probed, timeout=30)
    finally:
        writer.close()


# -- auth on: several agents, each with its own token ----------------------------------------------


async def tokens(pool: Pool, *names: str) -> dict[str, str]:
    credentials = Credentials(pool)
    made = {}
    for name in names:
        _, secret = await issue(credentials, name, name.split("-", 1)[0], 0, "tests")
        made[name] = secret
    return made


@pytest.fixture
def auth_server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", AUTH_REQUIRED="true")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
    assert "Traceback" not in process.log(), process.log()[-5000:]


async def test_several_original_agents_with_auth_on_report_their_own_tasks_only(
    auth_server: ServerProcess, store: Store, pool: Pool, settings: Settings, tmp_path: Path
) -> None:
    secrets = await tokens(pool, "agent-one", "agent-two", "agent-three")
    # The third agent hangs in its first task: the task it holds is its own alone.
    hung_id, _ = await store.create_task(NewTask("held", "send_email", {"test": "held"}))
    hung = original_agent(auth_server, settings, tmp_path / "hung.log", "--plugin", "hang",
                          token=secrets["agent-three"])  # fmt: skip

    async def hung_started() -> bool:
        return any(line["event"] == "plugin" for line in said(hung))

    agents: list[AgentProcess] = []
    try:
        await eventually(hung_started, timeout=60)
        kinds = ("run_query", "send_email")
        news = [NewTask(f"Task {i}", kinds[i % 2], {"test": f"test_{i}"}) for i in range(20)]
        ids = [i for i, _ in await store.create_tasks(news)]
        one = ("--seed", "1")
        two = ("--plugin", "fail")
        agents = [
            original_agent(auth_server, settings, tmp_path / "one.log", *one, token=secrets["agent-one"]),
            original_agent(auth_server, settings, tmp_path / "two.log", *two, token=secrets["agent-two"]),
        ]
        # Another agent's token reports nothing for the held task; nor does an anonymous caller.
        async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as http:
            for status in ("RUNNING", "FAILED", "SUCCEEDED"):
                body = {"id": hung_id, "status": status, "message": f"Attempt 1 failed: {status}"}
                other = {"Authorization": f"Bearer {secrets['agent-one']}"}
                reply = await http.post(f"{SERVICE}/UpdateTaskStatus", json=body, headers=other)
                assert reply.status_code == 403, reply.text
                assert reply.json()["code"] == "permission_denied"
                reply = await http.post(f"{SERVICE}/UpdateTaskStatus", json=body)
                assert reply.status_code == 401, reply.text
        await eventually(lambda: all_finished(store, ids, agents), timeout=120)
        assert (await store.get_task(hung_id)).status == Status.RUNNING  # still its holder's
    finally:
        for agent in [*agents, hung]:
            agent.stop()
    workers = {w.principal: w.id for w in await store.list_workers() if w.kind == "agent"}
    by_agent = {name: updates_by_task(said(a)) for name, a in zip(("one", "two"), agents, strict=True)}
    assert by_agent["one"], "both agents ran tasks"
    assert by_agent["two"], "both agents ran tasks"
    assert not set(by_agent["one"]) & set(by_agent["two"])
    for name, by_task in by_agent.items():
        agent_id = workers[f"token:agent-{name}"]
        for task_id, updates in by_task.items():
            await check_task(store, task_id, updates, {agent_id})
    # The agent whose plugin always fails ended its tasks FAILED, after three attempts each.
    for task_id in by_agent["two"]:
        history = [h.details for h in await store.history(task_id)]
        assert history[-1] == "All 3 attempts failed. Last error: query failed"
        assert (await store.get_task(task_id)).attempts == 3


# -- an agent killed mid-task -----------------------------------------------------------------------


async def test_an_original_agent_killed_mid_task_loses_no_task(
    server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    task_id, _ = await store.create_task(NewTask("survivor", "send_email", {"test": "test_0"}))
    first = original_agent(server, settings, tmp_path / "first.log", "--plugin", "fail-then-hang")

    async def in_second_attempt() -> bool:
        return any(line["event"] == "plugin" and line["attempt"] == 2 for line in said(first))

    try:
        await eventually(in_second_attempt, timeout=60)
        # Between and during its controller's attempts the task stayed with it.
        executions = await store.executions(task_id)
        assert len({e.worker_id for e in executions}) == 1
    finally:
        first.stop(signal.SIGKILL)
    [first_agent] = {e.worker_id for e in await store.executions(task_id)}
    # The second heartbeats under a uuid of its own, as an older original agent did.
    uuid = ("--uuid", "3f9c2f7e-0000-4000-8000-c0ffee")
    second = original_agent(server, settings, tmp_path / "second.log", *uuid)
    try:
        await eventually(lambda: all_finished(store, [task_id], [second]), timeout=60)
    finally:
        second.stop()
    task = await store.get_task(task_id)
    assert task.status == Status.SUCCEEDED
    history = [(h.status, h.details) for h in await store.history(task_id)]
    first_updates = updates_by_task(said(first))[task_id]
    second_updates = updates_by_task(said(second))[task_id]
    assert [u["message"] for u in first_updates] == [
        "Running attempt 1 of 3", "Attempt 1 failed: query failed", "Running attempt 2 of 3"
    ]  # fmt: skip
    lost = [i for i, (_, details) in enumerate(history) if details.startswith("Lease expired (Attempt 2)")]
    assert len(lost) == 1
    assert history[2 : lost[0]] == expected_history(first_updates)
    assert history[lost[0]][0] == Status.RETRYING
    assert history[lost[0] + 1] == (Status.RUNNING, "Task started (Attempt 3)")
    assert history[lost[0] + 2 :] == expected_history(second_updates)
    executions = await store.executions(task_id)
    assert [(e.worker_id == first_agent, e.outcome) for e in executions] == [
        (True, Outcome.FAILED), (True, Outcome.LOST), (False, Outcome.SUCCEEDED)
    ]  # fmt: skip


# -- the store's rules, without a server ------------------------------------------------------------


async def report(store: Store, task_id: int, status: Status, message: str, holder: str | None) -> Status:
    """UpdateTaskStatus as the service makes it (a 60 s hold); the task's status after."""
    task = await store.set_status(task_id, status, message, verbatim=True, holder=holder, hold_seconds=60.0)
    return task.status


async def test_between_its_controller_s_attempts_a_task_is_held_for_its_agent(store: Store) -> None:
    await store.register_worker("agent-old", "remote", 0, 1, ["send_email"], "agent", "token:a")
    task_id, _ = await store.create_task(NewTask("t", "send_email"))
    [claim] = await store.claim_for(["agent-old"], ["send_email"], 30.0)
    assert await report(store, task_id, Status.RUNNING, "Running attempt 1 of 3", "token:a") == Status.RUNNING
    assert await report(store, task_id, Status.FAILED, "Attempt 1 failed: boom", "token:a") == Status.RETRYING
    assert await store.claim_for(["someone-else"], [], 30.0) == []  # held for its agent
    with pytest.raises(NotHeld):  # another's agent token cannot reopen it; its own can
        await report(store, task_id, Status.RUNNING, "Running attempt 2 of 3", "token:b")
    assert await report(store, task_id, Status.RUNNING, "Running attempt 2 of 3", "token:a") == Status.RUNNING
    task = await store.get_task(task_id)
    assert (task.attempts, task.retries, task.lease_owner) == (2, 1, "agent-old")
    assert task.execution_id != claim.execution_id
    assert await report(store, task_id, Status.FAILED, "Attempt 2 failed: boom", "token:a") == Status.RETRYING
    # Its open stream keeps the hold; another agent's does not; when its stream ends, it is due.
    assert await store.extend_original_holds("agent-old", [task_id], 60.0) == {task_id}
    assert await store.extend_original_holds("someone-else", [task_id], 60.0) == set()
    assert await store.release_original_holds("agent-old", [task_id]) == 1
    [again] = await store.claim_for(["someone-else"], [], 30.0)
    assert (again.task.id, again.task.attempts, again.task.status) == (task_id, 3, Status.RUNNING)
    assert await store.extend_original_holds("agent-old", [task_id], 60.0) == set()
    # The first agent's controller, late, changes nothing now: the attempt is another agent's.
    with pytest.raises(NotHeld):
        await report(store, task_id, Status.RUNNING, "Running attempt 3 of 3", "token:a")
    outcomes = [(e.worker_id, e.outcome) for e in await store.executions(task_id)]
    assert outcomes == [
        ("agent-old", Outcome.FAILED), ("agent-old", Outcome.FAILED), ("someone-else", Outcome.RUNNING)
    ]  # fmt: skip


async def test_the_controller_s_last_failure_settles_the_task_in_its_words(store: Store) -> None:
    await store.register_worker("agent-old", "remote", 0, 1, ["run_query"], "agent", None)
    task_id, _ = await store.create_task(NewTask("t", "run_query"))
    await store.claim_for(["agent-old"], ["run_query"], 30.0)
    said = []
    for attempt in (1, 2, 3):
        said.append((Status.RUNNING, f"Running attempt {attempt} of 3"))
        said.append((Status.FAILED, f"Attempt {attempt} failed: x"))
    said.append((Status.FAILED, "All 3 attempts failed. Last error: x"))
    for status, message in said:
        await report(store, task_id, status, message, None)  # auth off: no holder to check
    task = await store.get_task(task_id)
    assert (task.status, task.attempts, task.retries) == (Status.FAILED, 3, 2)
    history = [(h.status, h.details) for h in await store.history(task_id)][2:]
    shown = [Status.RETRYING if m.startswith("Attempt") else s for s, m in said]
    assert history == list(zip(shown, [m for _, m in said], strict=True))
    assert [e.error for e in await store.executions(task_id)] == ["x", "x", "x"]


async def test_running_and_attempt_failures_are_only_for_an_agent_s_attempts(store: Store) -> None:
    """A direct worker's task: RUNNING is refused as before; a FAILED in the controller's words is an
    operator's, which settles the task."""
    await store.register_worker("w", "h", 1, 1, ["send_email"])
    task_id, _ = await store.create_task(NewTask("t", "send_email"))
    await store.claim_for(["w"], ["send_email"], 30.0)
    with pytest.raises(IllegalTransition):
        await report(store, task_id, Status.RUNNING, "Running attempt 1 of 3", None)
    assert await report(store, task_id, Status.FAILED, "Attempt 1 failed: x", None) == Status.FAILED
    queued_id, _ = await store.create_task(NewTask("q", "send_email"))
    with pytest.raises(IllegalTransition):
        await report(store, queued_id, Status.RUNNING, "Running attempt 1 of 3", None)
