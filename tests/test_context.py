"""The attempt's context, as a real worker hands it to plugins: who and which attempt, the worker's
settings, the idempotency key (send_email's Message-ID, checked on a real SMTP server), the deadline,
and the cancellation signal on a timeout and on a cancel."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC
from typing import Any

import pytest

from conftest import eventually
from taskservice import task
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.plugins import Registry
from taskservice.plugins.context import Cancelled, CancelSignal, TaskContext, current
from taskservice.plugins.email import SendEmail, message_id
from taskservice.store import Store
from test_plugins import SMTPServer, _smtp_settings, smtp_server
from test_worker import registry_with, running_worker, status_is

__all__ = ["smtp_server"]  # a fixture, used by name

SEEN: dict[int, dict[str, Any]] = {}  # what the plugins below saw, by task id
KEPT: set[asyncio.Task[Any]] = set()


@pytest.fixture(autouse=True)
def _forget_what_was_seen() -> None:
    SEEN.clear()  # task ids start at 1 in every test's database


def _note(ctx: TaskContext, **more: Any) -> None:
    SEEN.setdefault(ctx.task_id, {}).update(more)


@task("ctx_who")
def who(ctx: TaskContext) -> str:
    assert current() is ctx  # in the worker's thread too
    ctx.log.info("looking at my context")
    _note(
        ctx,
        type=ctx.task_type,
        attempt=ctx.attempt,
        timeout=ctx.timeout_seconds,
        settings=ctx.settings,
        key=ctx.idempotency_key,
        time_left=ctx.time_left(),
        deadline=ctx.deadline,
        thread=threading.current_thread().name,
    )
    if ctx.attempt == 1:
        raise RuntimeError("first attempts fail")
    return "second time lucky"


@task("ctx_stuck")
def stuck(ctx: TaskContext) -> None:
    """A sync plugin that the worker cannot cancel: it waits for the signal and stops."""
    while not ctx.cancellation.wait_blocking(0.05):
        pass
    _note(ctx, reason=ctx.cancellation.reason, cancelled=ctx.cancelled)
    ctx.raise_if_cancelled()


@task("ctx_waits")
async def waits(ctx: TaskContext) -> None:
    async def watch() -> None:
        _note(ctx, reason=await ctx.cancellation.wait())

    watcher = asyncio.get_running_loop().create_task(watch())
    KEPT.add(watcher)
    watcher.add_done_callback(KEPT.discard)
    await asyncio.sleep(3600)


async def _create(store: Store, kind: str, **fields: Any) -> int:
    task_id, _ = await store.create_task(NewTask(f"a {kind}", kind, {}, **fields))
    return task_id


async def test_a_plugin_knows_its_task_attempt_settings_and_key(store: Store, settings: Settings) -> None:
    async with running_worker(store, settings, Registry()):
        task_id = await _create(store, "ctx_who", max_retries=1, timeout_seconds=40)
        keyed = await _create(store, "ctx_who", max_retries=1, idempotency_key="order-42")
        for one in (task_id, keyed):
            await eventually(lambda one=one: status_is(store, one, Status.SUCCEEDED))
    seen = SEEN[task_id]
    installation = await store.installation_id()
    assert (seen["type"], seen["attempt"], seen["timeout"]) == ("ctx_who", 2, 40.0)
    assert seen["settings"] is settings  # the worker's own, not read again from the environment
    assert seen["key"] == f"{installation}-{task_id}"
    assert SEEN[keyed]["key"] == "order-42"  # the task's own key when it has one
    assert 0 < seen["time_left"] <= 40
    assert seen["deadline"].tzinfo == UTC
    assert seen["thread"].startswith("plugin-")  # sync plugins run in one of the worker's plugin threads


async def test_old_style_plugins_get_the_context_too(store: Store, settings: Settings) -> None:
    class TakesIt:
        def run(self, parameters: dict[str, str], ctx: TaskContext) -> int:
            return ctx.attempt

    class AsksForIt:
        async def run(self, parameters: dict[str, str]) -> int:
            return current().task_id

    async with running_worker(store, settings, registry_with(takes=TakesIt, asks=AsksForIt)):
        takes, asks = await _create(store, "takes"), await _create(store, "asks")
        for one in (takes, asks):
            await eventually(lambda one=one: status_is(store, one, Status.SUCCEEDED))
    assert [e.result for e in await store.executions(takes)] == [1]
    assert [e.result for e in await store.executions(asks)] == [asks]


async def test_a_timeout_sets_the_signal_a_thread_can_see(store: Store, settings: Settings) -> None:
    async with running_worker(store, settings, Registry()):
        task_id = await _create(store, "ctx_stuck", timeout_seconds=0.2, max_retries=0)
        await eventually(lambda: status_is(store, task_id, Status.FAILED))
        [attempt] = await store.executions(task_id)
        assert attempt.outcome == "timed_out"
        await eventually(lambda: _seen(task_id))
    assert SEEN[task_id] == {"reason": "timeout", "cancelled": True}


async def test_a_cancel_sets_the_signal_an_async_plugin_awaits(store: Store, settings: Settings) -> None:
    async with running_worker(store, settings, Registry()):
        task_id = await _create(store, "ctx_waits")
        await eventually(lambda: status_is(store, task_id, Status.RUNNING))
        await store.set_status(task_id, Status.CANCELLED, "not needed")
        # The worker hears it at its next heartbeat (refused: the attempt is no longer current).
        await eventually(lambda: _seen(task_id))
    assert SEEN[task_id] == {"reason": "the task was cancelled or its lease lost"}


async def _seen(task_id: int) -> bool:
    return task_id in SEEN


async def test_the_signal_outside_a_worker() -> None:
    signal = CancelSignal()
    assert not signal.is_set()
    assert not signal.wait_blocking(0)
    waiter = asyncio.ensure_future(signal.wait())
    signal.set("first")
    signal.set("second")  # the first reason stays
    assert await waiter == "first"
    assert signal.wait_blocking(0)
    ctx = TaskContext(1, "t", 1, 1.0, Settings(), "key", cancellation=signal)
    with pytest.raises(Cancelled, match="first"):
        ctx.raise_if_cancelled()
    with pytest.raises(LookupError, match="no task attempt is running here"):
        current()


# -- send_email: one Message-ID per task, whatever the attempt ---------------------------------------


async def test_every_attempt_of_an_email_task_sends_the_same_message_id(
    store: Store, settings: Settings, smtp_server: SMTPServer
) -> None:
    smtp = _smtp_settings(settings, smtp_server.port)
    registry = registry_with(send_email=SendEmail)  # made without settings: the worker's are used
    async with running_worker(store, smtp, registry):
        parameters = {"recipient": "ada@example.com", "subject": "Invoice"}
        task_id, _ = await store.create_task(NewTask("invoice", "send_email", parameters))
        other, _ = await store.create_task(NewTask("another", "send_email", parameters))
        for one in (task_id, other):
            await eventually(lambda one=one: status_is(store, one, Status.SUCCEEDED))
        await store.set_status(task_id, Status.QUEUED, "send it again")  # a second attempt, same task
        await eventually(lambda: _attempts_succeeded(store, task_id, 2))
    by_subject = [r.message["Message-ID"] for r in smtp_server.collector.received]
    assert len(by_subject) == 3
    installation = await store.installation_id()
    expected = message_id(f"{installation}-{task_id}", "localhost")
    ids = [e.result["message_id"] for e in await store.executions(task_id)]
    assert ids == [expected, expected]
    assert by_subject.count(expected) == 2  # what the SMTP server received, twice the same
    [other_id] = [e.result["message_id"] for e in await store.executions(other)]
    assert other_id != expected
    assert other_id in by_subject


async def _attempts_succeeded(store: Store, task_id: int, count: int) -> bool:
    executions = await store.executions(task_id)
    return sum(e.outcome == "succeeded" for e in executions) >= count


def test_a_message_id_is_a_valid_header_for_any_key() -> None:
    key = 'order "42" <x@y>\u00e9'
    made = message_id(key, "example.com")
    assert made == message_id(key, "example.com")
    assert made.startswith("<")
    assert made.endswith(".taskservice@example.com>")
    assert made.isascii()
    assert message_id("other", "example.com") != made
