"""Queues and pauses (issue 21): every task in a queue, workers and agents serving the queues they are
started with, and a queue or task type paused cluster-wide by the claim statement itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import psycopg
import pytest
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

import taskservice
from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually, subprocess_env
from taskservice.client.asynchronous import AsyncClient
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.plugins.declare import TaskTypeSpec
from taskservice.rules.tasks import BrokenRule
from taskservice.rules.tasks import new_task as checked_task
from taskservice.store import Store
from test_counts import assert_counts_right

# -- the rules ------------------------------------------------------------------------------------------


def test_a_tasks_queue_is_its_requests_else_its_types_declared_else_default() -> None:
    types = {"mail": TaskTypeSpec(extra_parameters=True, queue="emails"), "plain": None}
    assert checked_task(NewTask("n", "mail"), types).queue == "emails"
    assert checked_task(NewTask("n", "mail", queue="urgent"), types).queue == "urgent"
    assert checked_task(NewTask("n", "plain"), types).queue == "default"


@pytest.mark.parametrize("name", ["", " ", "-lead", "a b", "x" * 101, "é", "a/b", "new\nline"])
def test_a_queue_name_breaking_the_rule_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(BrokenRule) as refused:
        checked_task(NewTask("n", "plain", queue=name or " "), {"plain": None}, prefix="tasks[3].")
    assert refused.value.field == "tasks[3].queue"
    assert "1 to 100 characters of A-Z a-z 0-9 . _ : -" in str(refused.value)


def test_a_declared_queue_must_be_a_queue_name() -> None:
    with pytest.raises(ValueError, match="queue"):
        TaskTypeSpec(queue="not a queue")


async def test_enqueue_in_the_callers_transaction_puts_the_task_in_its_queue(
    database_url: str, store: Store
) -> None:
    """Every driver style gets the queue (the statement's 12th placeholder, after $1 and $11)."""
    with psycopg.connect(database_url) as conn:
        named = taskservice.enqueue(conn, type="sleep", options=taskservice.TaskOptions(queue="nightly"))
        unnamed = taskservice.enqueue(conn, type="sleep")
        conn.commit()
    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with Session(engine) as session:
        via_sqlalchemy = taskservice.enqueue(session, type="sleep", queue="reports")
        session.commit()
    engine.dispose()
    conn_async = await asyncpg.connect(database_url)
    try:
        via_asyncpg = await taskservice.enqueue_async(conn_async, type="sleep", queue="urgent")
    finally:
        await conn_async.close()
    queues = [(await store.get_task(i)).queue for i in (named, unnamed, via_sqlalchemy, via_asyncpg)]
    assert queues == ["nightly", "default", "reports", "urgent"]
    with psycopg.connect(database_url) as conn, pytest.raises(taskservice.InvalidArgument, match="queue"):
        taskservice.enqueue(conn, type="sleep", queue="no spaces")


# -- the store: the claim and the pauses ----------------------------------------------------------------


async def _create(store: Store, queue: str, count: int, task_type: str = "sleep") -> set[int]:
    created = await store.create_tasks(
        [NewTask(f"{queue}-{i}", task_type, queue=queue) for i in range(count)]
    )
    return {task_id for task_id, _ in created}


async def test_a_worker_claims_only_the_queues_it_serves(store: Store) -> None:
    mail, reports = await _create(store, "mail", 3), await _create(store, "reports", 3)
    served = await store.claim("w-mail", 10, queues=["mail"])
    assert {c.task.id for c in served} == mail
    assert {c.task.queue for c in served} == {"mail"}
    everything = await store.claim("w-all", 10)
    assert {c.task.id for c in everything} == reports
    await assert_counts_right(store)


async def test_a_paused_queue_is_not_claimed_until_resumed(store: Store) -> None:
    paused, other = await _create(store, "paused", 4), await _create(store, "other", 2)
    pause, created = await store.pause("queue", "paused", "maintenance", "token:ops")
    assert (pause.kind, pause.name, pause.reason, pause.paused_by, created) == (
        "queue", "paused", "maintenance", "token:ops", True,
    )  # fmt: skip
    again, created = await store.pause("queue", "paused", "another reason")
    assert (again.reason, again.paused_at, created) == (
        "maintenance",
        pause.paused_at,
        False,
    )  # the first kept
    assert {c.task.id for c in await store.claim("w", 10)} == other
    assert await store.claim("w", 10, queues=["paused"]) == []
    assert await store.queue_counts() == {"other": (0, 2), "paused": (4, 0)}
    assert await store.resume("queue", "paused") is True
    assert await store.resume("queue", "paused") is False
    assert {c.task.id for c in await store.claim("w", 10)} == paused
    assert await store.pauses() == []


async def test_a_paused_task_type_is_not_claimed_in_any_queue(store: Store) -> None:
    held = await _create(store, "a", 2, "slow") | await _create(store, "b", 2, "slow")
    free = await _create(store, "a", 2, "fast")
    await store.pause("type", "slow")
    assert [(p.kind, p.name) for p in await store.pauses()] == [("type", "slow")]
    assert {c.task.id for c in await store.claim("w", 10)} == free
    await store.resume("type", "slow")
    assert {c.task.id for c in await store.claim("w", 10)} == held


# -- the whole: several worker and agent processes ------------------------------------------------------


def _worker(settings: Settings, log: Path, *options: str) -> AgentProcess:
    args = [sys.executable, "-m", "taskservice.cli", "--log-level", "info", "serve", *options]
    return AgentProcess(args, subprocess_env(settings), log)


def _metrics(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of the queue and pause metrics, by name and labels."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name in ("taskservice_paused", "taskservice_queue_waiting")
        for sample in family.samples
    }


def _cli(server: ServerProcess, settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "taskservice.cli", "--address", server.url, *args],
        env=subprocess_env(settings), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_workers_and_agents_serve_their_queues_and_a_pause_holds_for_all_of_them(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    server = workerless_server
    # A pause made before any worker starts: nothing of the queue may start, on any of them.
    assert _cli(server, settings, "queue", "pause", "q1", "--reason", "deploy") == "Queue q1 paused.\n"
    processes = [
        _worker(settings, tmp_path / "w1.log", "--queue", "q1", "-c", "4"),
        _worker(settings, tmp_path / "w2.log", "-c", "4"),
        AgentProcess.cli(server, agent_env(settings), tmp_path / "agent.log", "--queue", "q1,q2", "-c", "4"),
    ]
    try:
        async with AsyncClient(server.url) as client:

            async def create(queue: str) -> set[int]:
                made = await client.create_tasks(
                    [NewTask(f"{queue} {i}", "sleep", {"seconds": "0"}, queue=queue) for i in range(30)]
                )
                return {h.id for h in made}

            q1, q2, default = await create("q1"), await create("q2"), await create("default")

            async def finished(ids: set[int]) -> bool:
                return {(await store.get_task(i)).status for i in ids} == {Status.SUCCEEDED}

            async def live_workers() -> bool:
                return sum(w.alive for w in await client.list_workers()) == 3

            await eventually(live_workers, timeout=60)
            await eventually(lambda: finished(q2 | default), timeout=120)
            owners = {w.id: w for w in await client.list_workers()}
            kinds = {w.id: (w.queues, w.alive) for w in owners.values()}
            assert sorted(kinds.values()) == [([], True), (["q1"], True), (["q1", "q2"], True)]
            w1 = next(i for i, w in owners.items() if w.queues == ["q1"])
            agent = next(i for i, w in owners.items() if w.queues == ["q1", "q2"])

            async def ran_by(ids: set[int]) -> set[str]:
                return {e.worker_id for i in ids for e in await store.executions(i)}

            assert w1 not in await ran_by(q2 | default)  # it serves q1 only
            assert agent not in await ran_by(default)  # it serves q1 and q2 only
            # Paused: not one attempt of q1 started, and each of its tasks says why it waits.
            assert await ran_by(q1) == set()
            waiting = await client.get_task(min(q1))
            assert (waiting.status, waiting.queue, waiting.waiting_reason) == (
                taskservice.TaskStatus.QUEUED, "q1", "queue q1 is paused",
            )  # fmt: skip
            [listed] = [q for q in await client.list_queues() if q.name == "q1"]
            assert (listed.paused, listed.waiting, listed.running, listed.reason) == (True, 30, 0, "deploy")
            assert listed.workers == 3  # w1, the agent, and w2 (which serves every queue)
            table = _cli(server, settings, "queue", "list")
            assert [line.split()[:5] for line in table.splitlines() if line.startswith("q1 ")] == [
                ["q1", "paused", "30", "0", "3"]
            ]

            resumed_from = await store.pool.fetchval("SELECT now()")
            assert await client.resume_queue("q1") is True
            await eventually(lambda: finished(q1), timeout=120)
            starts = [e for i in q1 for e in await store.executions(i)]
            assert len(starts) == 30
            assert all(e.started_at >= resumed_from for e in starts)
            assert {e.worker_id for e in starts} <= {w1, agent, *owners}
            assert [q.name for q in await client.list_queues() if q.paused] == []
        await assert_counts_right(store)
    finally:
        codes = [p.stop() for p in processes]
    assert codes == [0, 0, 0], [p.log() for p in processes]


async def test_pausing_through_the_api_is_an_operators_and_answers_what_it_did(
    workerless_server: ServerProcess,
) -> None:
    async with AsyncClient(workerless_server.url) as client:
        assert await client.pause_queue(type="send_email", reason="smtp down") is False
        assert await client.pause_queue(type="send_email") is True  # already
        with pytest.raises(taskservice.InvalidArgument, match="queue: name a queue or a task type"):
            await client.pause_queue("mail", type="send_email")
        with pytest.raises(taskservice.InvalidArgument, match="queue: must be 1 to 100 characters"):
            await client.pause_queue("no spaces")
        task = await client.create_task(type="send_email", parameters={"recipient": "a@example.com"})
        assert (await task.get()).waiting_reason == "type send_email is paused"
        # CancelTask and RetryTask answer with the task as GetTask shows it, the reason included.
        assert (await task.cancel()).waiting_reason == ""
        retried = await client.retry_task(task.id)
        assert (retried.status, retried.waiting_reason) == (
            taskservice.TaskStatus.QUEUED, "type send_email is paused",
        )  # fmt: skip
        # What the metrics show: the pause, and each queue's waiting tasks.
        assert _metrics(workerless_server) == {
            ("taskservice_paused", (("kind", "type"), ("name", "send_email"))): 1.0,
            ("taskservice_queue_waiting", (("queue", "default"),)): 1.0,
        }
        assert await client.resume_queue(type="send_email") is True
        assert await client.resume_queue(type="send_email") is False
