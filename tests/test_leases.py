"""A worker's leases on its own clock (moved by the tests): when they run out, `ctx.ensure_current()`
says so to the plugin, the worker stops the attempt before any heartbeat for it, and the task goes back
to the queue without spending a retry (tests/test_paused.py pauses real processes)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from conftest import ServerProcess, eventually
from taskservice.api import convert
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import NewTask, Outcome, Status, Task
from taskservice.plugins.context import Cancelled, CancelSignal, Lease, NotCurrent, TaskContext
from taskservice.plugins.email import SendEmail
from taskservice.store import Claim, Store
from taskservice.worker.agent import LEASE_MARGIN_SECONDS, AgentLink, claim_of
from taskservice.worker.leases import LeaseBook
from taskservice.worker.runtime import Worker, new_worker_id
from taskservice.worker.serve import worker_options
from test_plugins import SMTPServer, _smtp_settings, smtp_server
from test_worker import registry_with, running_worker, status_is

__all__ = ["smtp_server"]  # a fixture, used by name


class Clock:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the bookkeeping ----------------------------------------------------------------------------------


def test_a_lease_lasts_from_when_its_claim_or_heartbeat_was_sent() -> None:
    clock = Clock()
    book = LeaseBook(30.0, clock)
    lease = book.grant(1, sent_at=990.0)  # the claim went out 10 s ago (a slow answer, say)
    assert (lease.expires_at, lease.passed()) == (1020.0, False)
    told = book.grant(2, sent_at=1000.0, until=1005.0)  # an agent's assignment said 5 s were left
    assert told.expires_at == 1005.0
    assert book.get(2) is told
    clock.now = 1005.0
    assert book.overdue() == [2]
    assert book.overdue() == []  # found once
    assert book.ran_out == {2}
    book.extended([1, 2], sent_at=1004.0)  # a heartbeat sent before 2 ran out answers after
    assert (lease.expires_at, told.expires_at) == (1034.0, 1005.0)  # 2 stays out of it
    book.extended([1], sent_at=1001.0)  # an older heartbeat's late answer never shortens a lease
    assert lease.expires_at == 1034.0
    clock.now = 1034.0
    assert book.overdue() == [1]
    book.drop(2)
    assert book.get(2) is None
    book.keep_only([1])  # 2's outcome is written: nothing to keep out any more
    assert book.ran_out == {1}


def test_ensure_current_checks_the_signal_and_the_lease_from_any_thread() -> None:
    clock, settings = Clock(), Settings()
    ctx = TaskContext(1, "t", 1, 60.0, settings, "key", lease=Lease(1030.0, clock))
    ctx.ensure_current()  # current: nothing happens
    clock.now = 1030.0
    errors: list[BaseException] = []

    def in_a_thread() -> None:  # where a sync plugin runs
        try:
            ctx.ensure_current()
        except NotCurrent as error:
            errors.append(error)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    [error] = errors
    assert isinstance(error, Cancelled)  # what raise_if_cancelled raises: one except catches both
    assert str(error) == "the attempt is no longer current: its lease ran out on this worker's clock"
    assert not ctx.cancelled  # the worker sets the signal itself when it stops the attempt

    signal = CancelSignal()
    alone = TaskContext(2, "t", 1, 60.0, settings, "key", cancellation=signal)  # no lease: no worker
    alone.ensure_current()
    signal.set("the task was cancelled")
    with pytest.raises(NotCurrent, match=r"^the attempt is no longer current: the task was cancelled$"):
        alone.ensure_current()


async def test_send_email_sends_nothing_once_the_attempt_is_not_current(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    clock = Clock()
    smtp = _smtp_settings(settings, smtp_server.port)
    ctx = TaskContext(1, "send_email", 1, 60.0, smtp, "key", lease=Lease(1030.0, clock))
    mail = {"recipient": "bob@example.com", "subject": "once"}
    plugin = SendEmail()
    await asyncio.to_thread(plugin.run, mail, ctx)
    assert len(smtp_server.collector.received) == 1
    clock.now = 1030.0
    with pytest.raises(NotCurrent):
        await asyncio.to_thread(plugin.run, mail, ctx)
    assert len(smtp_server.collector.received) == 1
    # Nor into the outbox, the other way it sends.
    outboxed = TaskContext(1, "send_email", 1, 60.0, settings, "key", lease=Lease(1030.0, clock))
    with pytest.raises(NotCurrent):
        plugin.run(mail, outboxed)
    assert not settings.email_outbox_dir.exists() or not any(settings.email_outbox_dir.iterdir())


def test_an_agent_counts_its_lease_from_receiving_the_assignment_less_a_margin() -> None:
    claim = Claim(_task(), 7, lease_until=1030.0)
    work = convert.assignment(claim, now=1010.0)
    assert work.lease_seconds_left == 20.0
    received = claim_of(pb.WorkAssignment.FromString(work.SerializeToString()), "agent-1", 5000.0)
    assert received.lease_until == 5020.0 - LEASE_MARGIN_SECONDS
    late = convert.assignment(claim, now=1040.0)
    assert (late.HasField("lease_seconds_left"), late.lease_seconds_left) == (True, 0.0)
    # From an older server (nothing said): the worker counts from when it takes the assignment.
    older = pb.WorkAssignment(assignment_id=7, task=work.task)
    assert claim_of(older, "agent-1", 5000.0).lease_until is None
    assert not convert.assignment(Claim(_task(), 7), now=1010.0).HasField("lease_seconds_left")


def _task() -> Task:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Task(
        id=1, name="n", type="t", status=Status.RUNNING, payload={"parameters": {}}, retries=0,
        max_retries=0, priority=0, description="", timeout_seconds=60.0, attempts=1, created_at=now,
        updated_at=now, run_at=now,
    )  # fmt: skip


# -- a worker whose clock jumps past its lease ----------------------------------------------------------


class Acting:
    """A sync plugin held until the test lets it go; then it checks, and acts (notes its attempt)."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started: list[int] = []
        self.acted: list[int] = []
        self.not_current: list[tuple[int, str]] = []

    def run(self, parameters: dict[str, str], ctx: TaskContext) -> dict[str, int]:
        self.started.append(ctx.attempt)
        self.go.wait(30)
        try:
            ctx.ensure_current()
        except NotCurrent as error:
            self.not_current.append((ctx.attempt, str(error)))
            raise
        self.acted.append(ctx.attempt)
        return {"acted_in": ctx.attempt}

    async def has_started(self, *attempts: int) -> None:
        await eventually(lambda: asyncio.sleep(0, self.started == list(attempts)))


async def _acts_once_in_attempt_2(store: Store, task_id: int, acting: Acting) -> None:
    """The attempt whose lease ran out put the task back itself (the database had not reaped it:
    no real time passed), without spending a retry, and never acts; attempt 2 does."""
    await acting.has_started(1, 2)
    acting.go.set()
    await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED))
    await eventually(lambda: asyncio.sleep(0, len(acting.not_current) == 1))
    assert acting.acted == [2]
    assert acting.not_current == [
        (1, "the attempt is no longer current: its lease ran out on this worker's clock")
    ]
    task = await store.get_task(task_id)
    assert (task.retries, task.lost_leases, task.attempts) == (0, 1, 2)
    [lost, won] = await store.executions(task_id)
    assert (lost.outcome, won.outcome, won.result) == (Outcome.LOST, Outcome.SUCCEEDED, {"acted_in": 2})
    history = [h.details for h in await store.history(task_id)]
    assert f"Lease expired (Attempt 1): worker {lost.worker_id} stopped responding; " in history[-3]
    assert history[-1] == "Task completed successfully (Attempt 2)"


async def test_the_lease_watch_stops_an_attempt_whose_lease_ran_out(store: Store, settings: Settings) -> None:
    clock, acting = Clock(), Acting()
    task_id, _ = await store.create_task(NewTask("once", "act", max_retries=0))
    async with running_worker(store, settings, registry_with(act=acting.run), clock):
        await acting.has_started(1)
        clock.now += settings.lease_seconds  # paused this long, as far as the worker can tell
        await _acts_once_in_attempt_2(store, task_id, acting)


async def test_a_heartbeat_stops_an_attempt_whose_lease_ran_out_before_extending_it(
    store: Store, settings: Settings
) -> None:
    clock, acting = Clock(), Acting()
    task_id, _ = await store.create_task(NewTask("once", "act", max_retries=0))
    async with running_worker(store, settings, registry_with(act=acting.run), clock) as worker:
        await acting.has_started(1)
        await worker._watch.stop()  # the heartbeat alone, then
        [execution_id] = worker.held()
        clock.now += settings.lease_seconds
        # What the heartbeat's tick asks to extend: not this one, which is being stopped instead.
        assert worker._held_now() == []
        assert worker._leases.ran_out == {execution_id}
        await _acts_once_in_attempt_2(store, task_id, acting)


async def test_an_attempt_that_ended_before_its_lease_ran_out_keeps_its_outcome(
    store: Store, settings: Settings
) -> None:
    """The plugin's thread ends within the lease; the worker is paused before it takes the result
    and finds the lease run out on waking: what the plugin did stands (it is not run again)."""
    clock, loop = Clock(), asyncio.get_running_loop()
    acted: list[int] = []
    workers: list[Worker] = []

    def act(parameters: dict[str, str], ctx: TaskContext) -> str:
        ctx.ensure_current()
        acted.append(ctx.attempt)
        clock.now += settings.lease_seconds  # the pause, right after the plugin ended

        def check_after_the_result_is_in() -> None:
            # Once the plugin's thread is idle again, its result is queued on the loop: the worker's
            # check comes after it, and before the attempt's turn to take it.
            if not workers[0]._threads.idle():
                loop.call_soon(check_after_the_result_is_in)
                return
            loop.call_soon(workers[0]._expire)

        loop.call_soon_threadsafe(check_after_the_result_is_in)
        return "done"

    task_id, _ = await store.create_task(NewTask("once", "act", max_retries=0))
    async with running_worker(store, settings, registry_with(act=act), clock) as worker:
        workers.append(worker)
        await worker._watch.stop()  # only the check above
        await worker._heartbeat.stop()
        await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED, Status.RETRYING))
        await eventually(lambda: asyncio.sleep(0, not worker._reporter.unwritten()))
    assert acted == [1]
    task = await store.get_task(task_id)
    assert (task.status, task.attempts, task.lost_leases) == (Status.SUCCEEDED, 1, 0)
    [attempt] = await store.executions(task_id)
    assert (attempt.outcome, attempt.result) == (Outcome.SUCCEEDED, "done")


async def test_an_agent_whose_lease_ran_out_puts_the_task_back_through_the_server(
    workerless_server: ServerProcess, store: Store, settings: Settings
) -> None:
    """The same with an agent: its lease counts from the assignment, and its report of a lost lease
    is taken by the server (ReportOutcomes accepts the outcome `lost`)."""
    clock, acting = Clock(), Acting()
    task_id, _ = await store.create_task(NewTask("once", "act", max_retries=0))
    link = AgentLink(workerless_server.url, "", new_worker_id(), clock=clock)
    agent = Worker(
        link, None, registry_with(act=acting.run), worker_options(settings, 2, ()), link.agent_id,
        settings=settings, helpers=[link.stream], kind="agent", clock=clock,
    )  # fmt: skip
    link.on_work, link.held = agent.work_arrived, agent.held
    stop = asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    try:
        await acting.has_started(1)
        [execution_id] = agent.held()
        lease = agent._leases.get(execution_id)
        assert lease is not None
        # Counted from when it arrived, less the margin: at most a lease from now.
        assert clock.now < lease.expires_at <= clock.now + settings.lease_seconds - LEASE_MARGIN_SECONDS
        clock.now += settings.lease_seconds
        await _acts_once_in_attempt_2(store, task_id, acting)
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)
        await link.close()
