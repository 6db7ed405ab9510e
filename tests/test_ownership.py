"""An agent reports only what it holds: heartbeats, outcomes and UpdateTaskStatus from an agent change
only attempts of agents its caller registered; a forged call is refused (permission_denied), changes
nothing and is logged, and no agent's stream can be taken over under its id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ServerProcess, eventually
from taskservice import model
from taskservice.auth.tokens import issue
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Credentials, Pool, ReportNotHeld, Store, WorkerIdTaken

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
LEASE = "60"  # no lease runs out while the test looks


def envelope(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">BI", 0, len(data)) + data


class Stream:
    """A PullEvents stream held open in the background; what it delivers lands in `work`."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str], hello: dict[str, Any]) -> None:
        self.http, self.headers, self.hello = http, headers, hello
        self.work: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.opened = asyncio.Event()
        self.trailer: dict[str, Any] = {}
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        headers = {
            **self.headers,
            "Content-Type": "application/connect+json",
            "Connect-Protocol-Version": "1",
        }
        async with self.http.stream(
            "POST", f"{SERVICE}/PullEvents", content=envelope(self.hello), headers=headers
        ) as response:
            buffer = b""
            async for chunk in response.aiter_bytes():
                buffer += chunk
                while len(buffer) >= 5 and len(buffer) >= 5 + struct.unpack(">I", buffer[1:5])[0]:
                    flags, length = struct.unpack(">BI", buffer[:5])
                    message = json.loads(buffer[5 : 5 + length])
                    buffer = buffer[5 + length :]
                    if flags & 2:
                        self.trailer = message
                        self.opened.set()
                        return
                    self.opened.set()
                    if "work" in message:
                        self.work.put_nowait(message["work"])

    async def next_work(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.work.get(), 30)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


async def tokens(pool: Pool, *names: str) -> dict[str, dict[str, str]]:
    """Authorization headers of new tokens: `name` is `<role>-<who>`."""
    credentials = Credentials(pool)
    made = {}
    for name in names:
        _, secret = await issue(credentials, name, name.split("-", 1)[0], 0, "tests")
        made[name] = {"Authorization": f"Bearer {secret}"}
    return made


@pytest.fixture
def auth_server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        settings, tmp_path / "server.log", WORKER_COUNT="0", AUTH_REQUIRED="true", LEASE_SECONDS=LEASE
    )
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
    assert "Traceback" not in process.log(), process.log()[-5000:]


@pytest.fixture
async def http(auth_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as client:
        yield client


async def snapshot(store: Store, task_id: int, *, lease: bool = True) -> tuple[Any, ...]:
    """Everything a forged call could change about a task: status, attempt, lease, history. (The
    server extends an original-style agent's leases itself: `lease` False leaves its expiry out.)"""
    task = await store.get_task(task_id)
    attempts = [
        (e.id, e.worker_id, e.outcome, e.finished_at, e.result) for e in await store.executions(task_id)
    ]
    history = [(h.status, h.details) for h in await store.history(task_id)]
    expiry = task.lease_expires_at if lease else None
    return task.status, task.execution_id, task.lease_owner, expiry, attempts, history


def outcome(assignment: int, task_id: int, details: str = "forged") -> dict[str, Any]:
    return {
        "assignmentId": assignment, "taskId": task_id, "status": "SUCCEEDED", "outcome": "succeeded",
        "details": details, "resultJson": json.dumps({"by": details}),
    }  # fmt: skip


async def refused(http: httpx.AsyncClient, method: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    reply = await http.post(f"{SERVICE}/{method}", json=body, headers=headers)
    assert reply.status_code == 403, (method, body, reply.text)
    error = reply.json()
    assert error["code"] == "permission_denied", error
    return str(error["message"])


async def test_no_agent_changes_an_attempt_it_does_not_hold(
    auth_server: ServerProcess, http: httpx.AsyncClient, store: Store, pool: Pool
) -> None:
    keys = await tokens(pool, "agent-a", "agent-b")
    a, b = keys["agent-a"], keys["agent-b"]
    # A direct worker's attempt (it claims from PostgreSQL, as `task-cli serve` does).
    direct_task, _ = await store.create_task(NewTask("direct", "gate", {"name": "direct"}))
    await store.register_worker("direct-1", "db-host", 1, 1, ["gate"])
    [direct] = await store.claim("direct-1", 1, ["gate"], lease_seconds=float(LEASE))
    # Agent A's attempt, over its stream; and an original-style agent with A's token.
    a_task, _ = await store.create_task(NewTask("mine", "gate", {"name": "mine"}))
    legacy_task, _ = await store.create_task(NewTask("old", "send_email", {"to": "a@b.c"}))
    streams = [Stream(http, a, {"agentId": "agent-a", "slots": 1, "taskTypes": ["gate"]})]
    try:
        work = await streams[0].next_work()
        assert int(work["task"]["id64"]) == a_task
        mine = int(work["assignmentId"])
        streams.append(Stream(http, a, {}))
        legacy = await streams[1].next_work()
        assert int(legacy["task"]["id64"]) == legacy_task
        # Agent B, live with a stream of its own (a type nobody creates: it gets no work).
        streams.append(Stream(http, b, {"agentId": "agent-b", "slots": 1, "taskTypes": ["idle"]}))
        await asyncio.wait_for(streams[2].opened.wait(), 30)
        await eventually(lambda: agent_registered(store, "agent-b"))
        ids = (direct_task, a_task, legacy_task)
        before = await snapshots(store, ids)

        await forge(http, a, b, (mine, a_task), (direct.execution_id, direct_task), ids)
        # A stream under A's id from B: refused, and A's session stays.
        takeover = Stream(http, b, {"agentId": "agent-a", "slots": 1, "taskTypes": ["gate"]})
        await asyncio.wait_for(takeover.task, 30)
        assert takeover.trailer["error"]["code"] == "permission_denied", takeover.trailer
        assert not streams[0].task.done()
        assert await snapshots(store, ids) == before  # nothing changed

        # The legitimate paths still work: A heartbeats and reports its own; the original-style
        # agent reports through UpdateTaskStatus.
        beat = await http.post(f"{SERVICE}/Heartbeat", json={"uuid": "agent-a", "held": [mine]}, headers=a)
        assert beat.status_code == 200, beat.text
        assert beat.json().get("lost", []) == []
        assert (await store.get_task(a_task)).lease_expires_at != before[1][3]  # extended
        report = await http.post(
            f"{SERVICE}/ReportOutcomes",
            json={"agentId": "agent-a", "outcomes": [outcome(mine, a_task, "mine")]},
            headers=a,
        )
        assert report.status_code == 200, report.text
        assert report.json().get("refused", []) == []
        settled = await http.post(
            f"{SERVICE}/UpdateTaskStatus",
            json={"id": legacy_task, "status": "SUCCEEDED", "message": "sent by the old agent"},
            headers=a,
        )
        assert settled.status_code == 200, settled.text
    finally:
        for stream in streams:
            await stream.close()
    assert (await store.get_task(a_task)).status == Status.SUCCEEDED
    assert (await store.executions(a_task))[-1].result == {"by": "mine"}
    assert (await store.history(legacy_task))[-1].details == "sent by the old agent"
    assert (await snapshots(store, ids))[0] == before[0]  # the direct worker's attempt runs on
    log = auth_server.log()
    for rpc in ("ReportOutcomes", "Heartbeat", "UpdateTaskStatus", "PullEvents"):
        assert f"{rpc} refused" in log, rpc
    assert "token:agent-b" in log
    assert str(direct.execution_id) in log  # the attempts a refused report named


async def snapshots(store: Store, ids: tuple[int, int, int]) -> list[tuple[Any, ...]]:
    """Of the direct worker's task, agent A's, and the original-style agent's."""
    direct, mine, legacy = ids
    return [
        await snapshot(store, direct),
        await snapshot(store, mine),
        await snapshot(store, legacy, lease=False),
    ]


async def forge(
    http: httpx.AsyncClient,
    a: dict[str, str],
    b: dict[str, str],
    held_by_a: tuple[int, int],
    held_directly: tuple[int, int],
    ids: tuple[int, int, int],
) -> None:
    """Every call that names what its caller's agent does not hold: each one refused."""
    mine, a_task = held_by_a
    direct_attempt, direct_task = held_directly
    # B names A's attempt (as itself, and as A), the direct worker's, and a mix: all refused.
    forged_reports = [
        ("agent-b", [outcome(mine, a_task)]),
        ("agent-a", [outcome(mine, a_task)]),
        ("agent-b", [outcome(direct_attempt, direct_task)]),
        ("direct-1", [outcome(direct_attempt, direct_task)]),
        ("agent-a", [outcome(999_999, a_task)]),  # no such attempt, but still A's agent id
    ]
    for agent, outcomes in forged_reports:
        message = await refused(http, "ReportOutcomes", {"agentId": agent, "outcomes": outcomes}, b)
        assert "nothing was changed" in message
    # Even A, naming its own attempt beside one it does not hold: the whole call is refused.
    both = [outcome(mine, a_task, "mine"), outcome(direct_attempt, direct_task)]
    await refused(http, "ReportOutcomes", {"agentId": "agent-a", "outcomes": both}, a)
    # Heartbeats under another's id.
    await refused(http, "Heartbeat", {"uuid": "agent-a", "held": [mine]}, b)
    await refused(http, "Heartbeat", {"uuid": "direct-1", "held": [direct_attempt]}, b)
    # UpdateTaskStatus on tasks running others' attempts (the legacy one is A's).
    for task_id in ids:
        body = {"id": task_id, "status": "SUCCEEDED", "message": "forged"}
        await refused(http, "UpdateTaskStatus", body, b)
    await refused(http, "UpdateTaskStatus", {"id": direct_task, "status": "FAILED", "message": "x"}, a)


async def agent_registered(store: Store, agent: str) -> bool:
    return any(w.id == agent and w.stopped_at is None for w in await store.list_workers())


@pytest.fixture
def open_server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", LEASE_SECONDS=LEASE)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


async def test_with_auth_off_an_agent_still_reports_only_its_own_attempts(
    open_server: ServerProcess, store: Store
) -> None:
    task_id, _ = await store.create_task(NewTask("one", "gate", {"name": "one"}))
    async with httpx.AsyncClient(base_url=open_server.url, timeout=30) as http:
        stream = Stream(http, {}, {"agentId": "holder", "slots": 1, "taskTypes": ["gate"]})
        try:
            held = int((await stream.next_work())["assignmentId"])
            before = await snapshot(store, task_id)
            body = {"agentId": "someone-else", "outcomes": [outcome(held, task_id)]}
            await refused(http, "ReportOutcomes", body, {})
            assert await snapshot(store, task_id) == before
            body = {"agentId": "holder", "outcomes": [outcome(held, task_id, "holder")]}
            reply = await http.post(f"{SERVICE}/ReportOutcomes", json=body)
            assert reply.status_code == 200, reply.text
        finally:
            await stream.close()
    assert (await store.get_task(task_id)).status == Status.SUCCEEDED
    assert "ReportOutcomes refused" in open_server.log()


# -- the store's rules, without a server ------------------------------------------------------------


async def test_an_agent_id_is_not_taken_over_and_its_leases_are_its_registrant_s(store: Store) -> None:
    await store.register_worker("agent-x", "h", 1, 1, ["gate"], "agent", "token:x")
    await store.register_worker("agent-x", "h", 2, 1, ["gate"], "agent", "token:x")  # reconnecting
    for other in ("token:y", None):  # another caller; a direct worker or auth off
        with pytest.raises(WorkerIdTaken, match="agent id 'agent-x' is registered by someone else"):
            await store.register_worker("agent-x", "h", 3, 1, ["gate"], "agent", other)
    [info] = await store.list_workers()
    assert (info.pid, info.principal) == (2, "token:x")
    task_id, _ = await store.create_task(NewTask("t", "gate"))
    [claim] = await store.claim_for(["agent-x"], ["gate"], 30.0)
    before = (await store.get_task(task_id)).lease_expires_at
    with pytest.raises(WorkerIdTaken):
        await store.extend_agent_leases("agent-x", [claim.execution_id], 60.0, "token:y")
    assert (await store.get_task(task_id)).lease_expires_at == before
    assert await store.extend_agent_leases("agent-x", [claim.execution_id], 60.0, "token:x") == {
        claim.execution_id
    }
    # The Kubernetes controller's heartbeat for the Jobs it runs: the leases only, the agent not heard.
    heard = (await store.list_workers())[0].last_heartbeat_at
    extended = (await store.get_task(task_id)).lease_expires_at
    kept = await store.extend_agent_leases("agent-x", [claim.execution_id], 90.0, "token:x", alive=False)
    assert kept == {claim.execution_id}
    later = (await store.get_task(task_id)).lease_expires_at
    assert extended is not None
    assert later is not None
    assert later > extended
    assert (await store.list_workers())[0].last_heartbeat_at == heard
    # The original's agent heartbeats under a uuid nobody registered: nothing to extend, no refusal.
    assert await store.extend_agent_leases("its-own-uuid", [claim.execution_id], 60.0, "token:y") == set()
    # A report is settled only for the agent's own attempts, registered by the caller; else nothing
    # changes, and the refusal says which.
    done = model.succeeded(claim.task, claim.execution_id, {"ok": True})
    for agent, caller in (("agent-x", "token:y"), ("agent-z", "token:x")):
        with pytest.raises(ReportNotHeld) as refused:
            await store.finish([done], agent_id=agent, principal=caller)
        assert (refused.value.agent_registered, refused.value.foreign) == (False, [claim.execution_id])
        assert (await store.get_task(task_id)).status == Status.RUNNING
    assert await store.finish([done], agent_id="agent-x", principal="token:x") == {claim.execution_id}
    assert (await store.get_task(task_id)).status == Status.SUCCEEDED


async def test_types_without_a_live_worker(store: Store) -> None:
    await store.register_worker("w1", "h", 1, 1, ["alpha", "beta"])
    await store.register_worker("w2", "h", 2, 1, ["gamma"])
    await store.register_worker("w3", "h", 3, 1, ["epsilon"], queues=["mail"])
    await store.stop_worker("w2")
    kinds = [("alpha", "default"), ("gamma", "default"), ("delta", "default"), ("alpha", "mail")]
    # w1 serves every queue; none runs gamma (w2 stopped) or delta.
    assert await store.without_live_worker(kinds, 60.0) == {("gamma", "default"), ("delta", "default")}
    # w3 runs epsilon for the mail queue only.
    epsilons = [("epsilon", "mail"), ("epsilon", "default")]
    assert await store.without_live_worker(epsilons, 60.0) == {("epsilon", "default")}
    assert await store.without_live_worker([], 60.0) == set()
    await store.create_tasks([NewTask(f"g{i}", "gamma") for i in range(3)] + [NewTask("a", "alpha")])
    await store.create_task(NewTask("d", "delta", delay_seconds=3600))  # waiting, if not due yet
    await store.create_tasks([NewTask("e1", "epsilon", queue="mail"), NewTask("e2", "epsilon")])
    assert await store.waiting_without_live_worker(60.0) == {"gamma": 3, "delta": 1, "epsilon": 1}
