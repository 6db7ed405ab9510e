"""The Python client (taskservice.Client / AsyncClient) against a real server process over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import httpx
import psycopg
import pytest

import taskservice
from conftest import Served, serving
from taskservice import TaskStatus
from taskservice.client.asynchronous import AsyncClient
from taskservice.client.sync import Client
from taskservice.client.wire import CallRetry
from taskservice.model import NewTask, Status
from taskservice.testing import enqueued

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

FAST = {"seconds": "0"}
LONG = {"seconds": "600"}
LATER = 3600.0


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("client")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="4") as s:
        yield s


@pytest.fixture
def client(server: Served) -> Iterator[Client]:
    with Client(server.url, timeout=30) as c:
        yield c


def _name() -> str:
    return f"client-{uuid.uuid4().hex[:8]}"


def test_create_and_wait_returns_the_result(client: Client) -> None:
    handle = client.create_task(name=_name(), type="sleep", parameters={"seconds": "0.01"}, priority=5)
    assert handle.id > 0
    assert not handle.existing
    assert handle.wait(timeout=60) == {"slept": 0.01}
    assert handle.status() == TaskStatus.SUCCEEDED
    assert handle.result() == {"slept": 0.01}
    task = client.get_task(handle.id)
    assert task.priority == 5
    assert task.parameters == {"seconds": "0.01"}
    assert task.attempts == 1
    assert task.created_at is not None
    assert task.created_at.tzinfo is not None
    [history_first, *_rest] = client.get_task_history(handle.id)
    assert history_first.status == TaskStatus.QUEUED
    [execution] = client.list_task_executions(handle.id)
    assert execution.outcome == "succeeded"
    assert execution.result == {"slept": 0.01}


def test_wait_on_a_task_that_finished_before_the_wait_does_not_hang(client: Client) -> None:
    handle = client.create_task(name=_name(), type="sleep", parameters=FAST)
    # Finished before anyone subscribed: the status read after subscribing must see it.
    deadline_checks = 0
    while handle.status() != TaskStatus.SUCCEEDED:
        deadline_checks += 1
        client.get_task_history(handle.id)  # a round trip, no sleeping
        assert deadline_checks < 100_000
    assert handle.wait(timeout=30) == {"slept": 0.0}


def test_wait_raises_task_failed_with_the_error(client: Client) -> None:
    handle = client.create_task(
        name=_name(), type="sleep", parameters={"seconds": "0", "fail_rate": "1"}, max_retries=0
    )
    with pytest.raises(taskservice.TaskFailed) as failed:
        handle.wait(timeout=60)
    assert "simulated failure" in failed.value.error
    assert failed.value.task.status == TaskStatus.FAILED
    with pytest.raises(taskservice.TaskFailed):
        handle.result()


def test_wait_times_out_and_a_cancel_ends_the_wait(client: Client) -> None:
    handle = client.create_task(name=_name(), type="sleep", parameters=FAST, delay_seconds=LATER)
    with pytest.raises(taskservice.Timeout):
        handle.wait(timeout=0.5)
    with pytest.raises(taskservice.FailedPrecondition, match="not finished"):
        handle.result()

    def cancel() -> None:
        with Client(client.address) as other:
            other.cancel_task(handle.id, "no longer needed")

    threading.Thread(target=cancel).start()
    with pytest.raises(taskservice.TaskCancelled):
        handle.wait(timeout=60)


def test_errors_carry_the_connect_code(client: Client) -> None:
    with pytest.raises(taskservice.NotFound) as missing:
        client.get_task(10**12)
    assert missing.value.code == "not_found"
    with pytest.raises(taskservice.InvalidArgument, match="type") as invalid:
        client.create_task(name=_name(), type="no_such_type")
    assert invalid.value.code == "invalid_argument"
    with pytest.raises(taskservice.InvalidArgument, match="priority"):
        client.create_task(name=_name(), type="sleep", priority=5000)
    done = client.create_task(name=_name(), type="sleep", parameters=FAST)
    done.wait(timeout=60)
    with pytest.raises(taskservice.FailedPrecondition):
        client.cancel_task(done.id)


def test_every_other_rpc(client: Client) -> None:
    name = _name()
    handles = client.create_tasks(
        [NewTask(name=name, type="sleep", parameters=FAST, delay_seconds=LATER) for _ in range(3)]
    )
    assert [h.id for h in handles] == sorted(h.id for h in handles)
    page = client.list_tasks(name_contains=name, status=TaskStatus.QUEUED, type="sleep", limit=2)
    assert page.total == 3
    assert [t.id for t in page.tasks] == [h.id for h in handles][::-1][:2]
    cancelled = handles[0].cancel("test")
    assert cancelled.status == TaskStatus.CANCELLED
    assert client.retry_task(handles[0].id).status == TaskStatus.QUEUED
    client.update_task_status(handles[1].id, TaskStatus.CANCELLED, "by hand")
    last = client.get_task_history(handles[1].id)[-1]
    assert (last.status, last.details) == (TaskStatus.CANCELLED, "by hand")  # the exact twin, not FAILED
    with pytest.raises(taskservice.TaskCancelled):
        handles[1].wait(timeout=10)
    counts = client.get_status()
    assert set(counts) >= {TaskStatus.QUEUED, TaskStatus.SUCCEEDED}
    assert counts[TaskStatus.QUEUED] >= 1
    assert counts[TaskStatus.CANCELLED] >= 1  # the exact counts, not the original's four keys
    types = {t.name: t for t in client.list_task_types()}
    assert types["sleep"].declared
    seconds = next(p for p in types["sleep"].parameters if p.name == "seconds")
    assert (seconds.type, seconds.required) == ("number", False)
    recipient = next(p for p in types["send_email"].parameters if p.name == "recipient")
    assert recipient.required
    assert any(w.alive for w in client.list_workers())
    again = client.create_task(name=name, type="sleep", parameters=FAST, idempotency_key=name)
    same = client.create_task(name=name, type="sleep", parameters=FAST, idempotency_key=name)
    assert same.id == again.id
    assert same.existing
    assert not again.existing


def test_bulk_actions_answer_the_count(client: Client) -> None:
    name = _name()
    later = [NewTask(name=name, type="sleep", parameters=FAST, delay_seconds=LATER) for _ in range(4)]
    ids = [h.id for h in client.create_tasks(later)]
    queued = [TaskStatus.QUEUED]
    assert client.cancel_tasks(dry_run=True, statuses=queued, name_contains=name) == 4
    assert client.cancel_tasks(reason="not needed", statuses=queued, name_contains=name) == 4
    assert {client.get_task(i).status for i in ids} == {TaskStatus.CANCELLED}
    assert client.get_task_history(ids[0])[-1].details == "Task cancelled: not needed"
    created = client.get_task(ids[0]).created_at
    assert created is not None
    assert client.retry_tasks(ids[:1]) == 1
    assert client.task(ids[0]).wait(timeout=60) == {"slept": 0.0}  # due at once: it ran
    assert client.delete_tasks(name_contains=name, created_after=created) == 4
    assert client.cancel_tasks(name_contains=name, created_before=created) == 0
    with pytest.raises(taskservice.NotFound):
        client.get_task(ids[1])
    with pytest.raises(taskservice.InvalidArgument, match=r"^invalid_argument: filter: names no task"):
        client.delete_tasks()
    with pytest.raises(ValueError, match="created_after: must be timezone-aware"):
        client.cancel_tasks(created_after=created.replace(tzinfo=None))
    with pytest.raises(TypeError, match="give ids or type, not both"):
        client.cancel_tasks(ids, type="sleep")


async def test_the_async_client_acts_in_bulk_too(server: Served) -> None:
    async with AsyncClient(server.url) as client:
        name = _name()
        later = [NewTask(name=name, type="sleep", parameters=FAST, delay_seconds=LATER) for _ in range(3)]
        ids = [h.id for h in await client.create_tasks(later)]
        assert await client.cancel_tasks(ids, reason="bulk") == 3
        assert await client.retry_tasks(type="sleep", name_contains=name, dry_run=True) == 3
        assert await client.delete_tasks(ids[1:]) == 2
        assert (await client.get_task(ids[0])).status == TaskStatus.CANCELLED


def test_answers_are_the_public_types_and_calls_take_either_status(client: Client, server: Served) -> None:
    name = _name()
    handle = client.create_task(name=name, type="sleep", parameters=FAST, delay_seconds=LATER)
    task = client.get_task(handle.id)
    assert type(task) is taskservice.Task
    assert type(task.status) is type(handle.status()) is taskservice.TaskStatus
    assert {type(s) for s in client.get_status()} == {taskservice.TaskStatus}
    assert {type(h.status) for h in client.get_task_history(handle.id)} == {taskservice.TaskStatus}
    assert {type(w) for w in client.list_workers()} == {taskservice.WorkerInfo}
    # A filter or a target: the public TaskStatus, or the model's Status (its filter value ALL too).
    for status in (taskservice.TaskStatus.QUEUED, Status.QUEUED, Status.ALL):
        assert [t.id for t in client.list_tasks(name_contains=name, status=status).tasks] == [handle.id]
    client.update_task_status(handle.id, taskservice.TaskStatus.CANCELLED, "by hand")
    answered = client.get_task(handle.id)
    assert answered.status == taskservice.TaskStatus.CANCELLED
    # testing.enqueued reads the same task as the same public Task, its times to the microsecond.
    with psycopg.connect(server.settings.database_url) as conn:
        [record] = enqueued(conn, name=name)
    assert type(record) is taskservice.Task
    assert record.created_at is not None
    assert record.updated_at is not None
    assert record.run_at is not None
    to_seconds = replace(
        record,
        created_at=record.created_at.replace(microsecond=0),
        updated_at=record.updated_at.replace(microsecond=0),
        run_at=record.run_at.replace(microsecond=0),
    )
    assert to_seconds == answered


def test_events_of_named_tasks_only(client: Client) -> None:
    other = client.create_task(name=_name(), type="sleep", parameters=FAST, delay_seconds=LATER)
    mine = client.create_task(name=_name(), type="sleep", parameters=FAST, delay_seconds=LATER)
    stream = client.events([mine.id])
    assert next(stream).keepalive  # live: what happens from now on is heard
    other.cancel()
    mine.cancel()
    seen = []
    for event in stream:
        if not event.keepalive:
            seen.append((event.task_id64, Status(event.exact_status)))
        if Status(event.exact_status) == Status.CANCELLED:
            break
    stream.close()
    # Its creation may be heard too (the server's hub may hold it still when the stream starts).
    assert seen[-1] == (mine.id, Status.CANCELLED)
    assert {task_id for task_id, _ in seen} == {mine.id}


def test_watch_yields_events_as_dataclasses(client: Client) -> None:
    other = client.create_task(name=_name(), type="sleep", parameters=LONG, delay_seconds=LATER)
    mine = client.create_task(name=_name(), type="sleep", parameters=LONG, delay_seconds=LATER)
    heard = threading.Event()

    def keep_changing() -> None:  # until the watcher hears one (it cannot say when it is live)
        with Client(client.address) as second:
            while not heard.is_set():
                for task in (other, mine):
                    second.cancel_task(task.id)
                    second.retry_task(task.id)

    changer = threading.Thread(target=keep_changing)
    changer.start()
    try:
        for event in client.watch([mine.id]):
            assert event.task_id == mine.id
            assert event.task_name == client.get_task(mine.id).name
            assert event.status in (TaskStatus.CANCELLED, TaskStatus.QUEUED)
            assert event.created_at is not None
            break
    finally:
        heard.set()
        changer.join()
    mine.cancel()  # each ends retried (queued or running 600 s): free the worker slots
    other.cancel()


def test_the_server_refuses_a_watch_of_too_many_tasks(client: Client) -> None:
    with pytest.raises(taskservice.InvalidArgument, match="task_ids"):
        next(client.events(range(1, 1002)))
    with pytest.raises(taskservice.InvalidArgument, match=r"task_ids\[0\]"):
        next(client.events([0]))


def _raw_post(http: httpx.Client, method: str, body: bytes, **headers: str) -> tuple[httpx.Response, bytes]:
    """A POST and its body as sent (not inflated)."""
    with http.stream("POST", f"/cloud.v1.TaskManagementService/{method}", content=body, headers=headers) as r:
        return r, b"".join(r.iter_raw())


def test_unary_answers_carry_content_length(server: Served) -> None:
    cases = [
        ("GetStatus", "application/json", b"{}", "identity", 200),
        ("GetStatus", "application/proto", b"", "identity", 200),
        ("GetStatus", "application/json", b"{}", "gzip", 200),
        ("GetTask", "application/json", b'{"id": 0}', "identity", 400),
    ]
    with httpx.Client(base_url=server.url) as http:
        for method, content_type, body, encoding, status in cases:
            sent = {"Content-Type": content_type, "Accept-Encoding": encoding}
            reply, raw = _raw_post(http, method, body, **sent)
            assert reply.status_code == status
            assert reply.headers.get("content-length") == str(len(raw)), (method, content_type, encoding)
            assert "transfer-encoding" not in reply.headers


def _refusing_port() -> int:
    """A port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_unavailable_after_the_retries() -> None:
    with Client(f"http://127.0.0.1:{_refusing_port()}", retry=CallRetry(attempts=3, base_seconds=0.01)) as c:
        with pytest.raises(taskservice.Unavailable) as failed:
            c.get_status()
        assert failed.value.code == "unavailable"
        assert not failed.value.sent


def test_retry_delays_back_off_and_are_capped() -> None:
    delays = list(CallRetry(attempts=6, base_seconds=0.1, max_seconds=0.3).delays())
    assert len(delays) == 5
    assert all(0 <= d <= 0.3 for d in delays)


async def test_the_async_client(server: Served) -> None:
    async with AsyncClient(server.url) as client:
        handles = await asyncio.gather(
            *(client.create_task(name=_name(), type="sleep", parameters=FAST) for _ in range(5))
        )
        results = await asyncio.gather(*(h.wait(timeout=60) for h in handles))
        assert results == [{"slept": 0.0}] * 5
        assert await handles[0].status() == TaskStatus.SUCCEEDED
        waiting = await client.create_task(name=_name(), type="sleep", parameters=LONG)
        with pytest.raises(taskservice.Timeout):
            await waiting.wait(timeout=0.3)
        await waiting.cancel()
        with pytest.raises(taskservice.TaskCancelled):
            await waiting.wait(timeout=60)
        batch = await client.create_tasks([NewTask(name=_name(), type="sleep", parameters=FAST)])
        assert await batch[0].wait(timeout=60) == {"slept": 0.0}
        with pytest.raises(taskservice.NotFound):
            await client.get_task(10**12)
        assert (await client.list_tasks(limit=1)).total > 0


async def test_more_concurrent_calls_than_connections_wait_their_turn(server: Served) -> None:
    async with AsyncClient(server.url, max_connections=2) as client:
        handles = await asyncio.gather(
            *(client.create_task(name=_name(), type="sleep", parameters=FAST) for _ in range(20))
        )
        assert len({h.id for h in handles}) == 20
        assert len(client._transport._idle) <= 2  # never more connections than allowed


async def test_the_async_watch_yields_the_named_tasks_events(server: Served) -> None:
    async with AsyncClient(server.url) as client:
        other = await client.create_task(name=_name(), type="sleep", parameters=LONG, delay_seconds=LATER)
        mine = await client.create_task(name=_name(), type="sleep", parameters=LONG, delay_seconds=LATER)
        heard = asyncio.Event()

        async def keep_changing() -> None:  # until the watcher hears one (it cannot say when it is live)
            while not heard.is_set():
                for task in (other, mine):
                    await client.cancel_task(task.id)
                    await client.retry_task(task.id)

        changer = asyncio.create_task(keep_changing())
        try:
            async for event in client.watch([mine.id]):
                assert event.task_id == mine.id
                assert event.status in (TaskStatus.CANCELLED, TaskStatus.QUEUED)
                break
        finally:
            heard.set()
            await changer
        await mine.cancel()  # each ends retried (queued or running 600 s): free the worker slots
        await other.cancel()


# -- a token sent to a server that does not check it ----------------------------------------------------


def test_a_token_the_server_does_not_check_is_warned_about_once_per_client(server: Served) -> None:
    """The test server runs on loopback with auth off: a token sent there guards nothing."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Client(server.url, token="tsk_not_checked") as client:
            client.get_status()
            client.get_status()
        with Client(server.url) as anonymous:  # no token: nothing to warn about
            anonymous.get_status()
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert messages == [
        f"the server at {server.url} runs with auth off (AUTH_REQUIRED=false): the token this client "
        "sends is not checked there"
    ]


async def test_an_async_client_is_warned_once_too(server: Served) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with AsyncClient(server.url, token="tsk_not_checked") as client:
            await client.get_status()
            await client.get_status()
    assert [str(w.message) for w in caught if "auth off" in str(w.message)] == [
        f"the server at {server.url} runs with auth off (AUTH_REQUIRED=false): the token this client "
        "sends is not checked there"
    ]
