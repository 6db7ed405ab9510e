"""The Connect API end to end: a real `task-cli server` process, over real HTTP, in JSON and binary proto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from prometheus_client.parser import text_string_to_metric_families

from conftest import Served, ServerProcess, eventually, serving
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient
from taskservice.gen.grpc.health.v1 import health_pb2
from taskservice.gen.grpc.health.v1.health_connect import HealthClient

SERVICE = "/cloud.v1.TaskManagementService"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Every task status a task can be in, by number (UNKNOWN=4 and ALL=5 are not states of a task).
STATUS_NUMBERS = {"QUEUED": 0, "RUNNING": 1, "FAILED": 2, "SUCCEEDED": 3, "RETRYING": 6, "CANCELLED": 7}
TASK_FIELDS = {
    "id", "name", "type", "status", "retries", "priority", "createdAt", "payload", "description",
    "maxRetries", "attempts", "updatedAt", "timeoutSeconds", "runAt", "workerId", "idempotencyKey",
    "truncated",
    "id64",  # the 64-bit twin of id: proto3 JSON writes an int64 as a string
    "exactStatus",  # the twin of status, RETRYING and CANCELLED included
}  # fmt: skip
LATER = 3600  # delaySeconds that keeps a task QUEUED for the whole module
FAST = {"seconds": "0"}
FAILING = {"seconds": "0", "fail_rate": "1"}
LONG = {"seconds": "60"}


# -- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The main server: 4 in-process worker slots, CORS for any origin."""
    folder = tmp_path_factory.mktemp("api")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="4", CORS_ORIGINS="*") as s:
        yield s


@pytest.fixture(scope="module")
def idle_server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server without workers (its tasks stay QUEUED) that allows one CORS origin only."""
    folder = tmp_path_factory.mktemp("api-idle")
    with serving(
        pg_server_url, template_database, folder, WORKER_COUNT="0", CORS_ORIGINS="http://allowed.example"
    ) as s:
        yield s


# -- clients ---------------------------------------------------------------------------------


def exact(value: Any) -> Any:
    """A response with each status read from its exact twin (`status` from `exactStatus`), however deep,
    as the dashboard reads them; tests/test_statuses.py checks the original's fields."""
    if isinstance(value, list):
        return [exact(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: exact(item) for key, item in value.items()}
    for original, twin in (("status", "exactStatus"), ("statusCounts", "exactStatusCounts")):
        if twin in out:
            out[original] = out.pop(twin)
    return out


class Api:
    """JSON calls over plain HTTP, as the dashboard (and curl) make them; statuses exact."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, method: str, body: Any) -> httpx.Response:
        return await self.http.post(f"{SERVICE}/{method}", json=body)

    async def ok(self, method: str, body: Any = None) -> dict[str, Any]:
        response = await self.post(method, {} if body is None else body)
        assert response.status_code == 200, f"{method}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == "application/json"
        data = exact(response.json())
        assert isinstance(data, dict)
        return data

    async def fails(self, method: str, body: Any, status: int, code: str) -> str:
        """The message of the error `method` must answer with."""
        response = await self.post(method, body)
        assert (response.status_code, response.headers["content-type"]) == (status, "application/json"), (
            f"{method}: {response.status_code} {response.text}"
        )
        error = response.json()
        assert error["code"] == code, error
        assert isinstance(error["message"], str)
        return error["message"]

    async def create(self, name: str, parameters: dict[str, str] | None = None, **fields: Any) -> int:
        body = {"name": name, "type": "sleep", "payload": {"parameters": parameters or FAST}, **fields}
        created = await self.ok("CreateTask", body)
        assert created["existing"] is False
        task_id = created["id"]
        assert isinstance(task_id, int)
        return task_id

    async def get(self, task_id: int) -> dict[str, Any]:
        return await self.ok("GetTask", {"id": task_id})

    async def history(self, task_id: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = (await self.ok("GetTaskHistory", {"id": task_id}))["history"]
        return entries

    async def executions(self, task_id: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.ok("ListTaskExecutions", {"id": task_id}))["executions"]
        return found

    async def counts(self) -> dict[str, int]:
        """GetStatus as {status name: count}."""
        raw = (await self.ok("GetStatus"))["statusCounts"]
        assert set(raw) == {str(n) for n in STATUS_NUMBERS.values()}, raw
        assert all(isinstance(v, str) and v.isdigit() for v in raw.values()), raw  # int64: strings
        return {name: int(raw[str(number)]) for name, number in STATUS_NUMBERS.items()}

    async def total(self) -> int:
        return sum((await self.counts()).values())

    async def listed(self, **request: Any) -> tuple[list[int], int]:
        """(ids, total) of a ListTasks call."""
        found = await self.ok("ListTasks", request)
        assert isinstance(found["total"], str)  # int64
        return [t["id"] for t in found["tasks"]], int(found["total"])

    async def wait_status(self, task_id: int, status: str, timeout: float = 30.0) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            task = await self.get(task_id)
            return task if task["status"] == status else None

        result: dict[str, Any] = await eventually(reached, timeout)
        return result


@pytest.fixture
async def api(server: Served) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield Api(http)


@pytest.fixture
async def idle_api(idle_server: Served) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=idle_server.url, timeout=30) as http:
        yield Api(http)


@pytest.fixture
async def client(server: Served) -> AsyncIterator[TaskManagementServiceClient]:
    """The generated Connect client, sending binary proto as the original Go CLI does."""
    async with TaskManagementServiceClient(server.url) as c:
        yield c


def unique(label: str) -> str:
    """A name prefix of this test's own, so filters see only this test's tasks."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


def parse_time(text: str) -> datetime:
    assert TIME.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def recent(text: str) -> bool:
    return abs((datetime.now(UTC) - parse_time(text)).total_seconds()) < 120


# -- the wire contract's and the README's examples -------------------------------------------


async def test_wire_contract_curl_example_answers_in_proto3_json(api: Api) -> None:
    await api.create("contract example")  # ids start at 1 in the module's fresh database
    # curl -H 'Content-Type: application/json' -d '{"id":1}' .../cloud.v1.TaskManagementService/GetTask
    response = await api.http.post(
        f"{SERVICE}/GetTask", headers={"Content-Type": "application/json"}, content=b'{"id":1}'
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    task = response.json()
    assert set(task) == TASK_FIELDS  # lowerCamelCase names, defaults included
    assert task["id"] == 1  # int32: a JSON number
    assert task["status"] in STATUS_NUMBERS  # enums by name
    assert TIME.match(task["createdAt"])
    assert isinstance(task["payload"]["parameters"], dict)


async def test_readme_example_send_newsletter_is_accepted_and_sent(api: Api, server: Served) -> None:
    body = {
        "name": "Send Newsletter",
        "type": "send_email",
        "payload": {"parameters": {"recipient": "user@example.com", "subject": "Weekly Update"}},
    }
    task_id = (await api.ok("CreateTask", body))["id"]
    task = await api.wait_status(task_id, "SUCCEEDED")
    assert (task["name"], task["type"], task["attempts"], task["retries"]) == (
        "Send Newsletter", "send_email", 1, 0,
    )  # fmt: skip
    [execution] = await api.executions(task_id)
    result = execution["result"]
    assert (execution["outcome"], result["backend"], result["recipient"]) == (
        "succeeded", "outbox", "user@example.com",
    )  # fmt: skip
    path = Path(result["path"])
    assert path.parent == server.settings.email_outbox_dir
    mail = message_from_bytes(await asyncio.to_thread(path.read_bytes))
    assert (mail["To"], mail["Subject"], mail["Message-ID"]) == (
        "user@example.com", "Weekly Update", result["message_id"],
    )  # fmt: skip


# -- every RPC in JSON -----------------------------------------------------------------------


async def test_create_and_get_task_with_every_field(api: Api) -> None:
    name = unique("every field")
    body = {
        "name": name,
        "type": "sleep",
        "payload": {"parameters": {"seconds": "0", "note": "two words"}},
        "description": "all the fields",
        "priority": 7,
        "maxRetries": 2,
        "timeoutSeconds": 30,
        "idempotencyKey": f"{name}-key",
        "delaySeconds": LATER,
    }
    created = await api.ok("CreateTask", body)
    assert set(created) == {"id", "existing", "id64"}
    assert created["existing"] is False
    assert created["id64"] == str(created["id"])
    task = await api.get(created["id"])
    assert task == {
        "id": created["id"],
        "id64": str(created["id"]),
        "name": name,
        "type": "sleep",
        "status": "QUEUED",
        "retries": 0,
        "priority": 7,
        "createdAt": task["createdAt"],
        "payload": {"parameters": {"seconds": "0", "note": "two words"}},
        "description": "all the fields",
        "maxRetries": 2,
        "attempts": 0,
        "updatedAt": task["updatedAt"],
        "timeoutSeconds": 30.0,
        "runAt": task["runAt"],
        "workerId": "",
        "idempotencyKey": f"{name}-key",
        "truncated": False,
    }
    assert recent(task["createdAt"])
    assert recent(task["updatedAt"])
    delay = (parse_time(task["runAt"]) - parse_time(task["createdAt"])).total_seconds()
    assert LATER - 2 <= delay <= LATER + 2


async def test_unset_fields_take_the_servers_defaults(api: Api, server: Served) -> None:
    task = await api.get(await api.create(unique("defaults"), delaySeconds=LATER))
    assert (task["maxRetries"], task["timeoutSeconds"]) == (
        server.settings.max_retries, server.settings.task_time_out,
    )  # fmt: skip
    assert (task["priority"], task["description"], task["idempotencyKey"]) == (0, "", "")


async def test_a_task_runs_to_success_with_history_executions_and_worker(api: Api) -> None:
    name = unique("succeeds")
    task_id = await api.create(name)
    task = await api.wait_status(task_id, "SUCCEEDED")
    assert (task["attempts"], task["retries"], task["workerId"]) == (1, 0, "")

    history = await api.history(task_id)
    assert [(h["status"], h["details"]) for h in history] == [
        ("QUEUED", "Task is scheduled"),
        ("RUNNING", "Task started (Attempt 1)"),
        ("SUCCEEDED", "Task completed successfully (Attempt 1)"),
    ]
    assert [h["id"] for h in history] == sorted(h["id"] for h in history)  # oldest first
    assert all(isinstance(h["id"], int) and TIME.match(h["createdAt"]) for h in history)

    [execution] = await api.executions(task_id)
    assert isinstance(execution["id"], str)  # int64: a string
    assert int(execution["id"]) > 0
    assert (execution["taskId"], execution["attempt"], execution["outcome"], execution["error"]) == (
        task_id, 1, "succeeded", "",
    )  # fmt: skip
    assert execution["result"] == {"slept": 0.0}
    assert parse_time(execution["startedAt"]) <= parse_time(execution["finishedAt"])
    assert execution["durationSeconds"] >= 0
    assert execution["startedAfterSeconds"] >= 0

    workers = (await api.ok("ListWorkers"))["workers"]
    [worker] = [w for w in workers if w["id"] == execution["workerId"]]
    assert worker["alive"] is True
    assert (worker["concurrency"], worker["stoppedAt"]) == (4, "")
    assert sorted(worker["taskTypes"]) == (await api.ok("ListTaskTypes"))["types"]  # it runs every type
    assert worker["pid"] > 0
    assert worker["host"]
    assert recent(worker["startedAt"])
    assert recent(worker["lastHeartbeatAt"])
    assert 0 <= worker["running"] <= 4


async def test_a_failing_task_retries_then_fails(api: Api) -> None:
    task_id = await api.create(unique("fails"), FAILING, maxRetries=1)
    task = await api.wait_status(task_id, "FAILED")
    assert (task["attempts"], task["retries"], task["maxRetries"]) == (2, 1, 1)
    history = await api.history(task_id)
    assert [h["status"] for h in history] == ["QUEUED", "RUNNING", "RETRYING", "RUNNING", "FAILED"]
    assert "simulated failure (fail_rate=1)" in history[2]["details"]
    assert "retry 1 of 1" in history[2]["details"]
    assert "no retries left" in history[4]["details"]
    executions = await api.executions(task_id)
    assert [(e["attempt"], e["outcome"]) for e in executions] == [(1, "failed"), (2, "failed")]
    assert all("simulated failure" in e["error"] for e in executions)


async def test_list_tasks_orders_filters_and_pages(api: Api) -> None:
    prefix = unique("list")
    queued = await api.create(f"{prefix} queued", delaySeconds=LATER)
    email = (
        await api.ok(
            "CreateTask",
            {
                "name": f"{prefix} email",
                "type": "send_email",
                "payload": {"parameters": {"recipient": "list@example.com"}},
                "delaySeconds": LATER,
            },
        )
    )["id"]
    succeeded = await api.create(f"{prefix} succeeded")
    failed = await api.create(f"{prefix} failed", FAILING, maxRetries=0)
    running = await api.create(f"{prefix} running", LONG)
    cancelled = await api.create(f"{prefix} cancelled", delaySeconds=LATER)
    try:
        await api.ok("CancelTask", {"id": cancelled})
        await api.wait_status(succeeded, "SUCCEEDED")
        await api.wait_status(failed, "FAILED")
        await api.wait_status(running, "RUNNING")
        everything = [cancelled, running, failed, succeeded, email, queued]  # newest first

        assert await api.listed(nameContains=prefix) == (everything, 6)
        assert await api.listed(nameContains=prefix.upper()) == (everything, 6)  # case-insensitive
        assert await api.listed(nameContains=prefix, status="ALL") == (everything, 6)
        assert await api.listed(nameContains=prefix, status=5) == (everything, 6)
        assert await api.listed(nameContains=f"{prefix} run") == ([running], 1)
        by_status = {
            "QUEUED": [email, queued], "RUNNING": [running], "FAILED": [failed],
            "SUCCEEDED": [succeeded], "RETRYING": [], "CANCELLED": [cancelled],
        }  # fmt: skip
        for status, ids in by_status.items():
            assert await api.listed(nameContains=prefix, status=status) == (ids, len(ids)), status
            number = STATUS_NUMBERS[status]
            assert await api.listed(nameContains=prefix, status=number) == (ids, len(ids)), number
        assert await api.listed(nameContains=prefix, type="send_email") == ([email], 1)
        assert await api.listed(nameContains=prefix, type="sleep") == (
            [i for i in everything if i != email],
            5,
        )
        assert await api.listed(nameContains=prefix, type="run_query") == ([], 0)
        assert await api.listed(nameContains=prefix, type="sleep", status="QUEUED") == ([queued], 1)

        assert await api.listed(nameContains=prefix, limit=2) == (everything[:2], 6)
        assert await api.listed(nameContains=prefix, limit=2, offset=2) == (everything[2:4], 6)
        assert await api.listed(nameContains=prefix, limit=2, offset=4) == (everything[4:], 6)
        assert await api.listed(nameContains=prefix, limit=100, offset=6) == ([], 6)
        # The listed tasks are whole tasks.
        [task] = (await api.ok("ListTasks", {"nameContains": f"{prefix} email"}))["tasks"]
        assert task == await api.get(email)
    finally:
        await api.ok("CancelTask", {"id": running})


async def test_name_contains_is_a_literal_substring(api: Api) -> None:
    prefix = unique("literal")
    plain = await api.create(f"{prefix} plain", delaySeconds=LATER)
    special = await api.create(f"{prefix} 100%_done", delaySeconds=LATER)
    assert await api.listed(nameContains=f"{prefix} plain") == ([plain], 1)
    assert await api.listed(nameContains=f"{prefix} 100%_") == ([special], 1)
    assert await api.listed(nameContains=f"{prefix} p_ain") == ([], 0)
    assert await api.listed(nameContains=f"{prefix}%plain") == ([], 0)


async def test_list_tasks_limit_zero_or_unset_means_thirty(api: Api) -> None:
    prefix = unique("page")
    tasks = [
        {"name": f"{prefix} {i:02d}", "type": "sleep", "payload": {"parameters": FAST}, "delaySeconds": LATER}
        for i in range(31)
    ]
    ids = (await api.ok("CreateTasks", {"tasks": tasks}))["ids"]
    newest_first = ids[::-1]
    assert await api.listed(nameContains=prefix) == (newest_first[:30], 31)
    assert await api.listed(nameContains=prefix, limit=0) == (newest_first[:30], 31)
    assert await api.listed(nameContains=prefix, limit=0, offset=30) == (newest_first[30:], 31)
    assert await api.listed(nameContains=prefix, limit=100) == (newest_first, 31)


async def test_get_status_counts_every_status(api: Api) -> None:
    async def quiet() -> dict[str, int] | None:
        """The counts, once no task can change by itself: none running, retrying or due."""
        counts = await api.counts()
        depth = metric_samples((await api.http.get("/metrics")).text, "taskservice_queue_depth")
        return counts if counts["RUNNING"] == counts["RETRYING"] == 0 and depth == [({}, 0.0)] else None

    before: dict[str, int] = await eventually(quiet)
    prefix = unique("counts")
    await api.create(f"{prefix} queued 1", delaySeconds=LATER)
    await api.create(f"{prefix} queued 2", delaySeconds=LATER)
    await api.wait_status(await api.create(f"{prefix} succeeded"), "SUCCEEDED")
    await api.wait_status(await api.create(f"{prefix} failed", FAILING, maxRetries=0), "FAILED")
    running = await api.create(f"{prefix} running", LONG)
    await api.ok("CancelTask", {"id": await api.create(f"{prefix} cancelled", delaySeconds=LATER)})
    try:
        await api.wait_status(running, "RUNNING")
        after = await api.counts()
        change = {name: after[name] - before[name] for name in STATUS_NUMBERS}
        assert change == {
            "QUEUED": 2,
            "RUNNING": 1,
            "FAILED": 1,
            "SUCCEEDED": 1,
            "RETRYING": 0,
            "CANCELLED": 1,
        }
        assert (await api.listed(limit=1))[1] == sum(after.values())
        for name, count in after.items():
            assert (await api.listed(status=name, limit=1))[1] == count, name
    finally:
        await api.ok("CancelTask", {"id": running})
    assert (await api.counts())["CANCELLED"] == after["CANCELLED"] + 1


async def test_update_task_status_legal_changes(api: Api) -> None:
    prefix = unique("update")
    # Cancel a queued task; the message is the history row's details (the original's contract).
    task_id = await api.create(f"{prefix} queued", delaySeconds=LATER)
    assert (
        await api.ok("UpdateTaskStatus", {"id": task_id, "status": "CANCELLED", "message": "not needed"})
        == {}
    )
    assert (await api.get(task_id))["status"] == "CANCELLED"
    last = (await api.history(task_id))[-1]
    assert (last["status"], last["details"]) == ("CANCELLED", "not needed")

    # Re-queue the finished task: it is due now and runs.
    assert await api.ok("UpdateTaskStatus", {"id": task_id, "status": 0, "message": "run it after all"}) == {}
    task = await api.wait_status(task_id, "SUCCEEDED")
    assert task["attempts"] == 1
    statuses = [(h["status"], h["details"]) for h in await api.history(task_id)]
    assert statuses[:3] == [
        ("QUEUED", "Task is scheduled"),
        ("CANCELLED", "not needed"),
        ("QUEUED", "run it after all"),
    ]
    assert statuses[-1] == ("SUCCEEDED", "Task completed successfully (Attempt 1)")

    # An operator may finish a running task; their message (2000 characters: the limit) is the details.
    for target, message in (("SUCCEEDED", "done by hand"), ("FAILED", "m" * 2000)):
        running = await api.create(f"{prefix} {target}", LONG)
        await api.wait_status(running, "RUNNING")
        assert await api.ok("UpdateTaskStatus", {"id": running, "status": target, "message": message}) == {}
        last = (await api.history(running))[-1]
        assert (last["status"], last["details"]) == (target, message)

        async def attempt_closed(task_id: int = running) -> bool:
            [execution] = await api.executions(task_id)
            return bool(execution["finishedAt"])

        await eventually(attempt_closed)
        assert (await api.get(running))["status"] == target  # the worker's stop did not change it
        [execution] = await api.executions(running)
        assert execution["outcome"] == target.lower(), execution


async def test_create_tasks_returns_ids_in_request_order(api: Api) -> None:
    prefix = unique("batch")
    names = [f"{prefix} c", f"{prefix} a", f"{prefix} b"]
    tasks = [
        {"name": n, "type": "sleep", "payload": {"parameters": FAST}, "delaySeconds": LATER} for n in names
    ]
    ids = (await api.ok("CreateTasks", {"tasks": tasks}))["ids"]
    assert len(ids) == 3
    assert all(isinstance(i, int) for i in ids)
    assert [(await api.get(i))["name"] for i in ids] == names
    assert await api.listed(nameContains=prefix) == (ids[::-1], 3)


async def test_cancel_and_retry_task(api: Api) -> None:
    prefix = unique("cancel")
    running = await api.create(f"{prefix} running", LONG)
    await api.wait_status(running, "RUNNING")
    cancelled = await api.ok("CancelTask", {"id": running, "reason": "changed my mind"})
    assert set(cancelled) == TASK_FIELDS - {"exactStatus"}  # ok() reads the exact twin into status
    assert (cancelled["id"], cancelled["status"]) == (running, "CANCELLED")
    assert (await api.history(running))[-1]["details"] == "Task cancelled: changed my mind"

    async def stopped() -> bool:
        [execution] = await api.executions(running)
        return bool(execution["outcome"] == "cancelled" and execution["finishedAt"])

    await eventually(stopped)  # the worker noticed and stopped the attempt

    failed = await api.create(f"{prefix} failed", FAILING, maxRetries=0)
    await api.wait_status(failed, "FAILED")
    retried = await api.ok("RetryTask", {"id": failed, "reason": "one more time"})
    assert (retried["id"], retried["status"], retried["retries"]) == (failed, "QUEUED", 0)
    history = await api.history(failed)
    assert [h["status"] for h in history[:4]] == ["QUEUED", "RUNNING", "FAILED", "QUEUED"]
    assert history[3]["details"] == "Task queued again: one more time"

    async def failed_twice() -> bool:
        task = await api.get(failed)
        return bool(task["status"] == "FAILED" and task["attempts"] == 2)

    await eventually(failed_twice)
    retried = await api.ok("RetryTask", {"id": failed})
    assert retried["status"] == "QUEUED"

    async def failed_thrice() -> bool:
        task = await api.get(failed)
        return bool(task["status"] == "FAILED" and task["attempts"] == 3)

    await eventually(failed_thrice)
    history = await api.history(failed)
    assert [h["status"] for h in history] == [
        "QUEUED",
        *["RUNNING", "FAILED", "QUEUED"] * 2,
        "RUNNING",
        "FAILED",
    ]
    assert history[6]["details"] == "Task queued again: retried"  # no reason given


async def test_list_task_types(api: Api) -> None:
    types = (await api.ok("ListTaskTypes"))["types"]
    assert {"send_email", "run_query", "sleep"} <= set(types)
    assert types == sorted(types)


# -- every RPC in binary proto (the generated client) ----------------------------------------


async def test_every_rpc_in_binary_proto(client: TaskManagementServiceClient, api: Api) -> None:
    prefix = unique("binary")
    created = await client.create_task(
        pb.CreateTaskRequest(
            name=f"{prefix} one", type="sleep", payload=pb.Payload(parameters=FAST), priority=3, max_retries=0
        )
    )
    assert created.existing is False
    task = await client.get_task(pb.GetTaskRequest(id=created.id))
    assert (task.id, task.name, task.type, task.priority, task.max_retries) == (
        created.id, f"{prefix} one", "sleep", 3, 0,
    )  # fmt: skip
    assert dict(task.payload.parameters) == FAST
    assert TIME.match(task.created_at)

    async def succeeded() -> pb.Task | None:
        task = await client.get_task(pb.GetTaskRequest(id=created.id))
        return task if task.status == pb.SUCCEEDED else None

    task = await eventually(succeeded)
    assert (await client.get_task(pb.GetTaskRequest(id=created.id), use_get=True)) == task  # Connect GET
    history = (await client.get_task_history(pb.GetTaskHistoryRequest(id=created.id))).history
    assert [h.status for h in history] == [pb.QUEUED, pb.RUNNING, pb.SUCCEEDED]
    assert history[0].details == "Task is scheduled"
    [execution] = (await client.list_task_executions(pb.ListTaskExecutionsRequest(id=created.id))).executions
    assert (execution.task_id, execution.attempt, execution.outcome) == (created.id, 1, "succeeded")
    assert execution.result.struct_value["slept"] == 0.0

    batch = await client.create_tasks(
        pb.CreateTasksRequest(
            tasks=[
                pb.CreateTaskRequest(
                    name=f"{prefix} batch {i}", type="sleep", payload=pb.Payload(), delay_seconds=LATER
                )
                for i in range(2)
            ]
        )
    )
    assert len(batch.ids) == 2
    assert [(await client.get_task(pb.GetTaskRequest(id=i))).name for i in batch.ids] == [
        f"{prefix} batch 0", f"{prefix} batch 1",
    ]  # fmt: skip

    listed = await client.list_tasks(pb.TaskListRequest(name_contains=prefix))
    assert ([t.id for t in listed.tasks], listed.total) == ([*batch.ids[::-1], created.id], 3)
    listed = await client.list_tasks(pb.TaskListRequest(name_contains=prefix, status=pb.QUEUED))  # 0, set
    assert [t.id for t in listed.tasks] == batch.ids[::-1]
    listed = await client.list_tasks(
        pb.TaskListRequest(name_contains=prefix, status=pb.ALL, limit=1, offset=2)
    )
    assert ([t.id for t in listed.tasks], listed.total) == ([created.id], 3)
    listed = await client.list_tasks(pb.TaskListRequest(name_contains=prefix, type="send_email"))
    assert (list(listed.tasks), listed.total) == ([], 0)

    counts = (await client.get_status(pb.GetStatusRequest())).exact_status_counts
    assert set(counts) == set(STATUS_NUMBERS.values())
    assert {n: counts[number] for n, number in STATUS_NUMBERS.items()} == await api.counts()

    await client.update_task_status(
        pb.UpdateTaskStatusRequest(id=batch.ids[0], status=pb.CANCELLED, message="binary cancel")
    )
    assert (await client.get_task(pb.GetTaskRequest(id=batch.ids[0]))).exact_status == pb.CANCELLED
    cancelled = await client.cancel_task(pb.CancelTaskRequest(id=batch.ids[1], reason="binary"))
    assert (cancelled.id, cancelled.exact_status) == (batch.ids[1], pb.CANCELLED)
    retried = await client.retry_task(pb.RetryTaskRequest(id=batch.ids[1]))
    assert (retried.status, retried.retries) == (pb.QUEUED, 0)

    async def retried_ran() -> bool:
        return (await client.get_task(pb.GetTaskRequest(id=batch.ids[1]))).status == pb.SUCCEEDED

    await eventually(retried_ran)  # a retried task is due at once

    workers = (await client.list_workers(pb.ListWorkersRequest())).workers
    assert execution.worker_id in [w.id for w in workers if w.alive]
    types = (await client.list_task_types(pb.ListTaskTypesRequest())).types
    assert {"send_email", "run_query", "sleep"} <= set(types)

    with pytest.raises(ConnectError) as missing:
        await client.get_task(pb.GetTaskRequest(id=987_654))
    assert (missing.value.code, missing.value.message) == (Code.NOT_FOUND, "task 987654 not found")
    with pytest.raises(ConnectError) as invalid:
        await client.create_task(pb.CreateTaskRequest(name="", type="sleep", payload=pb.Payload()))
    assert invalid.value.code == Code.INVALID_ARGUMENT
    assert invalid.value.message.startswith("name: ")


async def test_json_through_the_generated_client(server: Served) -> None:
    async with TaskManagementServiceClient(server.url, proto_json=True) as client:
        created = await client.create_task(
            pb.CreateTaskRequest(
                name=unique("json client"), type="sleep", payload=pb.Payload(), delay_seconds=LATER
            )
        )
        task = await client.get_task(pb.GetTaskRequest(id=created.id))
        assert task.id == created.id
        counts = await client.get_status(pb.GetStatusRequest())
        assert set(counts.exact_status_counts) == set(STATUS_NUMBERS.values())
        with pytest.raises(ConnectError) as missing:
            await client.get_task_history(pb.GetTaskHistoryRequest(id=987_654))
        assert missing.value.code == Code.NOT_FOUND


# -- WatchEvents -----------------------------------------------------------------------------


async def _json_event_stream(http: httpx.AsyncClient, into: list[dict[str, Any]]) -> dict[str, Any]:
    """Read WatchEvents as raw `application/connect+json` envelopes (flags, length, message).

    Returns the end-of-stream message (`{}` when the stream ended without an error).
    """
    body = b"{}"
    async with http.stream(
        "POST",
        f"{SERVICE}/WatchEvents",
        content=struct.pack(">BI", 0, len(body)) + body,
        headers={"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"},
        timeout=None,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/connect+json"
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            while len(buffer) >= 5:
                flags, length = struct.unpack(">BI", buffer[:5])
                if len(buffer) < 5 + length:
                    break
                message, buffer = json.loads(buffer[5 : 5 + length]), buffer[5 + length :]
                if flags & 0x02:  # end of stream
                    assert isinstance(message, dict)
                    return message
                into.append(message)
    raise AssertionError("the stream ended without an end-of-stream message")


async def test_watch_events_streams_status_changes(server: Served, api: Api) -> None:
    binary: list[pb.TaskEvent] = []
    as_json: list[dict[str, Any]] = []
    async with (
        TaskManagementServiceClient(server.url) as client,
        httpx.AsyncClient(base_url=server.url) as http,
    ):

        async def read_binary() -> None:
            try:
                async for event in client.watch_events(pb.WatchEventsRequest()):
                    binary.append(event)
            except ConnectError as error:  # the client's word for being cancelled
                if error.code != Code.CANCELED:
                    raise

        readers = [asyncio.create_task(read_binary()), asyncio.create_task(_json_event_stream(http, as_json))]
        try:
            # A stream sees events from when it subscribed; probe until both have.
            probes: set[int] = set()

            async def subscribed() -> bool:
                if any(reader.done() for reader in readers):
                    raise AssertionError(f"a stream ended: {[r.result() for r in readers if r.done()]}")
                probes.add(await api.create(unique("watch probe"), delaySeconds=LATER))
                return any(e.task_id in probes for e in binary) and any(
                    e["taskId"] in probes for e in as_json
                )

            await eventually(subscribed, interval=0.2)
            name = unique("watched")
            task_id = await api.create(name)

            def mine_binary() -> list[pb.TaskEvent]:
                return [e for e in binary if e.task_id == task_id]

            def mine_json() -> list[dict[str, Any]]:
                return [e for e in as_json if e["taskId"] == task_id]

            async def all_seen() -> bool:
                return len(mine_binary()) >= 3 and len(mine_json()) >= 3

            await eventually(all_seen)
        finally:
            for reader in readers:
                reader.cancel()
            for reader in readers:
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    history = await api.history(task_id)
    expected = [(h["id"], STATUS_NUMBERS[h["status"]], h["details"], h["createdAt"]) for h in history]
    assert [h["status"] for h in history] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert [(e.id, e.status, e.details, e.created_at) for e in mine_binary()] == expected
    assert all((e.task_name, e.task_type, e.keepalive) == (name, "sleep", False) for e in mine_binary())
    assert [
        (int(e["id"]), STATUS_NUMBERS[e["status"]], e["details"], e["createdAt"]) for e in mine_json()
    ] == expected
    assert all(isinstance(e["id"], str) for e in mine_json())  # int64
    assert all((e["taskName"], e["taskType"]) == (name, "sleep") for e in mine_json())


async def test_a_stopping_server_ends_event_streams_at_once(settings: Settings, tmp_path: Path) -> None:
    """uvicorn waits for open responses before it stops; an event stream would hold it for the full grace."""
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", SHUTDOWN_GRACE="30")
    events: list[dict[str, Any]] = []
    try:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            api = Api(http)
            reader = asyncio.create_task(_json_event_stream(http, events))
            probes: set[int] = set()

            async def subscribed() -> bool:
                assert not reader.done(), reader
                probes.add(await api.create(unique("probe"), delaySeconds=LATER))
                return any(e["taskId"] in probes for e in events)

            await eventually(subscribed, interval=0.2)
            started = time.monotonic()
            exit_code = await asyncio.to_thread(server.stop)
            stopped_after = time.monotonic() - started
            end = await asyncio.wait_for(reader, 10)
    finally:
        server.stop()
    assert end == {}  # the stream ended cleanly, without an error
    assert exit_code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert stopped_after < 10, f"{stopped_after:.1f}s (the grace period is 30s)"
    assert "Traceback" not in server.log()


# -- invalid input ---------------------------------------------------------------------------


def new(**fields: Any) -> dict[str, Any]:
    """A valid CreateTaskRequest (delayed: it stays QUEUED), with `fields` changed; None removes one."""
    body = {
        "name": "valid",
        "type": "sleep",
        "payload": {"parameters": {"seconds": "0"}},
        "delaySeconds": LATER,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def params(**parameters: str) -> dict[str, Any]:
    return {"parameters": parameters}


def key_params(key: str, value: str = "v") -> dict[str, Any]:
    return {"parameters": {key: value}}


def bad_key(key: str, name: str) -> Any:
    """A CreateTask case whose only fault is the parameter key `key`."""
    return pytest.param("CreateTask", new(payload=key_params(key)), f"payload.parameters[{key!r}]", id=name)


UPDATE = "UpdateTaskStatus"
REJECTED = [
    pytest.param("CreateTask", new(name=""), "name", id="name-empty"),
    pytest.param("CreateTask", new(name="   "), "name", id="name-blank"),
    pytest.param("CreateTask", new(name=None), "name", id="name-missing"),
    pytest.param("CreateTask", new(name="n" * 256), "name", id="name-256"),
    pytest.param("CreateTask", new(name="two\nlines"), "name", id="name-newline"),
    pytest.param("CreateTask", new(name="tab\there"), "name", id="name-tab"),
    pytest.param("CreateTask", new(name="del\x7f"), "name", id="name-del"),
    pytest.param("CreateTask", new(name="nul\x00"), "name", id="name-nul"),
    pytest.param("CreateTask", new(name="c1\x85control"), "name", id="name-c1-control"),
    pytest.param("CreateTask", new(type="no_such_type"), "type", id="type-unknown"),
    pytest.param("CreateTask", new(type=""), "type", id="type-empty"),
    pytest.param("CreateTask", new(payload=None), "payload", id="payload-missing"),
    bad_key("bad key", "key-space"),
    bad_key("clé", "key-unicode"),
    bad_key("", "key-empty"),
    bad_key("a.b", "key-dot"),
    bad_key("ab\n", "key-newline-at-end"),
    bad_key("k" * 256, "key-256"),
    pytest.param("CreateTask", new(payload=params(v="v" * 1025)), "payload.parameters['v']", id="value-1025"),
    pytest.param("CreateTask", new(payload=params(v="a\x00b")), "payload.parameters['v']", id="value-nul"),
    pytest.param("CreateTask", new(description="d" * 5001), "description", id="description-5001"),
    pytest.param("CreateTask", new(description="d\x00"), "description", id="description-nul"),
    pytest.param("CreateTask", new(priority=-1), "priority", id="priority-negative"),
    pytest.param("CreateTask", new(priority=1001), "priority", id="priority-1001"),
    pytest.param("CreateTask", new(maxRetries=11), "max_retries", id="max-retries-11"),
    pytest.param("CreateTask", new(maxRetries=-1), "max_retries", id="max-retries-negative"),
    pytest.param("CreateTask", new(timeoutSeconds=0), "timeout_seconds", id="timeout-zero"),
    pytest.param("CreateTask", new(timeoutSeconds=-5), "timeout_seconds", id="timeout-negative"),
    pytest.param("CreateTask", new(timeoutSeconds=86401), "timeout_seconds", id="timeout-86401"),
    pytest.param("CreateTask", new(timeoutSeconds="NaN"), "timeout_seconds", id="timeout-nan"),
    pytest.param("CreateTask", new(timeoutSeconds="Infinity"), "timeout_seconds", id="timeout-infinity"),
    pytest.param("CreateTask", new(idempotencyKey="i" * 256), "idempotency_key", id="idempotency-key-256"),
    pytest.param("CreateTask", new(idempotencyKey="a\nb"), "idempotency_key", id="idempotency-key-newline"),
    pytest.param("CreateTask", new(delaySeconds=-1), "delay_seconds", id="delay-negative"),
    pytest.param("CreateTask", new(delaySeconds=31_536_001), "delay_seconds", id="delay-too-long"),
    pytest.param("ListTasks", {"limit": -1}, "limit", id="limit-negative"),
    pytest.param("ListTasks", {"limit": 101}, "limit", id="limit-101"),
    pytest.param("ListTasks", {"offset": -1}, "offset", id="offset-negative"),
    pytest.param("ListTasks", {"status": 42}, "status", id="list-status-42"),
    pytest.param("ListTasks", {"type": "a\nb"}, "type", id="list-type-newline"),
    pytest.param("ListTasks", {"nameContains": "n" * 256}, "name_contains", id="name-contains-256"),
    pytest.param("GetTask", {"id": 0}, "id", id="get-id-0"),
    pytest.param("GetTask", {}, "id", id="get-id-unset"),
    pytest.param("GetTask", {"id": -5}, "id", id="get-id-negative"),
    pytest.param("GetTaskHistory", {"id": 0}, "id", id="history-id-0"),
    pytest.param("GetTaskHistory", {"id": -5}, "id", id="history-id-negative"),
    pytest.param("ListTaskExecutions", {"id": 0}, "id", id="executions-id-0"),
    pytest.param("CancelTask", {"id": -5}, "id", id="cancel-id-negative"),
    pytest.param("CancelTask", {"id": 1, "reason": "r" * 2001}, "reason", id="cancel-reason-2001"),
    pytest.param("RetryTask", {"id": 0}, "id", id="retry-id-0"),
    pytest.param("RetryTask", {"id": 1, "reason": "r" * 2001}, "reason", id="retry-reason-2001"),
    pytest.param(UPDATE, {"id": 0, "status": "CANCELLED"}, "id", id="update-id-0"),
    pytest.param(UPDATE, {"id": -5, "status": "CANCELLED"}, "id", id="update-id-negative"),
    pytest.param(UPDATE, {"id": 1, "status": 42}, "status", id="update-status-42"),
    pytest.param(UPDATE, {"id": 1, "status": 7, "message": "m" * 2001}, "message", id="message-2001"),
    pytest.param(UPDATE, {"id": 1, "status": 7, "message": "\x00"}, "message", id="message-nul"),
    pytest.param("CreateTasks", {"tasks": []}, "tasks", id="batch-empty"),
    pytest.param("CreateTasks", {}, "tasks", id="batch-unset"),
    pytest.param("CreateTasks", {"tasks": [new()] * 1001}, "tasks", id="batch-1001"),
    pytest.param("CreateTasks", {"tasks": [new(), new(name="")]}, "tasks[1].name", id="batch-second-name"),
    pytest.param("CreateTasks", {"tasks": [new(), new(), new(payload=key_params("x y"))]},
                 "tasks[2].payload.parameters['x y']", id="batch-third-key"),
    pytest.param("CreateTasks", {"tasks": [new(), new(type="no")]}, "tasks[1].type", id="batch-second-type"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "body", "field"), REJECTED)
async def test_invalid_input_is_rejected_naming_the_field(
    api: Api, method: str, body: Any, field: str
) -> None:
    before = await api.total()
    message = await api.fails(method, body, 400, "invalid_argument")
    assert message.startswith(f"{field}: "), message
    assert len(message) > len(field) + 2
    assert await api.total() == before  # nothing half-written


ACCEPTED = [
    pytest.param("CreateTask", new(name="n" * 255), 1, id="name-255"),
    pytest.param("CreateTask", new(name="Task 1"), 1, id="name-with-space"),
    pytest.param("CreateTask", new(name="Ünïcødé ✓"), 1, id="name-unicode"),
    pytest.param("CreateTask", new(payload=key_params("k" * 255)), 1, id="key-255"),
    pytest.param("CreateTask", new(payload=key_params("A-z_0-9")), 1, id="key-all-classes"),
    pytest.param("CreateTask", new(payload=params(v="v" * 1024)), 1, id="value-1024"),
    pytest.param("CreateTask", new(payload=params(v="two\nlines ✓")), 1, id="value-multiline"),
    pytest.param("CreateTask", new(payload={}), 1, id="payload-empty"),
    pytest.param("CreateTask", new(description="d" * 5000), 1, id="description-5000"),
    pytest.param("CreateTask", new(priority=0), 1, id="priority-0"),
    pytest.param("CreateTask", new(priority=1000), 1, id="priority-1000"),
    pytest.param("CreateTask", new(maxRetries=0), 1, id="max-retries-0"),
    pytest.param("CreateTask", new(maxRetries=10), 1, id="max-retries-10"),
    pytest.param("CreateTask", new(timeoutSeconds=0.001), 1, id="timeout-small"),
    pytest.param("CreateTask", new(timeoutSeconds=86400), 1, id="timeout-86400"),
    pytest.param("CreateTask", new(idempotencyKey="i" * 255), 1, id="idempotency-key-255"),
    pytest.param("CreateTask", new(delaySeconds=31_536_000), 1, id="delay-one-year"),
    pytest.param("CreateTask", new(unknownField=1), 1, id="unknown-field-ignored"),
    pytest.param("CreateTasks", {"tasks": [new()] * 1000}, 1000, id="batch-1000"),
    pytest.param("ListTasks", {"limit": 100}, 0, id="limit-100"),
    pytest.param("ListTasks", {"limit": 1, "offset": 1_000_000}, 0, id="offset-large"),
    pytest.param("ListTasks", {"nameContains": "n" * 255}, 0, id="name-contains-255"),
    pytest.param("ListTasks", {"status": "UNKNOWN"}, 0, id="list-status-unknown"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "body", "created"), ACCEPTED)
async def test_input_at_the_limits_is_accepted(api: Api, method: str, body: Any, created: int) -> None:
    if isinstance(body.get("idempotencyKey"), str):
        body = {**body, "idempotencyKey": unique("k")[:12] + body["idempotencyKey"][12:]}
    before = await api.total()
    answer = await api.ok(method, body)
    assert await api.total() == before + created
    if method != "CreateTask":
        return
    task = await api.get(answer["id"])
    sent = {"name": body["name"], "payload": body.get("payload") or {"parameters": {}}}
    for name in ("description", "priority", "maxRetries", "timeoutSeconds", "idempotencyKey"):
        if name in body:
            sent[name] = body[name]
    assert {k: task[k] for k in sent} == sent


BAD_BODIES = [
    pytest.param("application/json", b'{"id":', id="json-truncated"),
    pytest.param("application/json", b"not json at all", id="json-garbage"),
    pytest.param("application/json", b'{"id":"abc"}', id="json-wrong-type"),
    pytest.param("application/json", b'{"id":1.5}', id="json-fraction"),
    pytest.param("application/json", b'{"id":99999999999}', id="json-int32-overflow"),
    pytest.param("application/json", b"[1]", id="json-array"),
    pytest.param("application/json", b'"id"', id="json-string"),
    pytest.param("application/json", b"null", id="json-null"),
    pytest.param("application/json", b"", id="json-empty"),
    pytest.param("application/json", b'{"id":1,"id":2}', id="json-duplicate-key"),
    pytest.param("application/json", b"\xff\xfe", id="json-not-utf8"),
    pytest.param("application/proto", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", id="proto-garbage"),
    pytest.param("application/proto", b"\x08", id="proto-truncated"),
]


@pytest.mark.parametrize(("content_type", "content"), BAD_BODIES)
async def test_a_body_that_does_not_decode_is_invalid_argument(
    api: Api, content_type: str, content: bytes
) -> None:
    response = await api.http.post(
        f"{SERVICE}/GetTask", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "invalid_argument"
    assert error["message"].startswith("request body: not a valid GetTaskRequest"), error


async def test_a_create_body_that_does_not_decode_writes_nothing(api: Api) -> None:
    before = await api.total()
    for content in (
        b'{"name":"x","type":"sleep","payload":{"parameters":{"k":1}}',
        b'{"name":5}',
        b'{"name":"x","type":"sleep","payload":"parameters"}',  # a string where an object goes
        b'{"name":"x","type":"sleep","payload":{"parameters":"k"}}',
        b'"name"',
    ):
        response = await api.http.post(
            f"{SERVICE}/CreateTask", content=content, headers={"Content-Type": "application/json"}
        )
        assert (response.status_code, response.json()["code"]) == (400, "invalid_argument"), content
        assert response.json()["message"].startswith("request body: not a valid CreateTaskRequest: ")
    response = await api.http.post(
        f"{SERVICE}/CreateTasks", content=b'{"tasks":["name"]}', headers={"Content-Type": "application/json"}
    )
    assert response.json() == {
        "code": "invalid_argument",
        "message": "request body: not a valid CreateTasksRequest: tasks[0] must be a JSON object, not str",
    }
    response = await api.http.post(
        f"{SERVICE}/CreateTask", content=b"\x0a\x05ab", headers={"Content-Type": "application/proto"}
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_argument")
    assert await api.total() == before


async def test_an_unsupported_content_type_is_refused(api: Api) -> None:
    response = await api.http.post(
        f"{SERVICE}/GetStatus", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415


async def test_invalid_input_in_binary_proto(client: TaskManagementServiceClient, api: Api) -> None:
    before = await api.total()
    calls = [
        (client.list_tasks(pb.TaskListRequest(status=42)), "status: "),  # type: ignore[arg-type]
        (client.update_task_status(pb.UpdateTaskStatusRequest(id=1, status=42)), "status: "),  # type: ignore[arg-type]
        (client.create_task(pb.CreateTaskRequest(name="x", type="sleep")), "payload: "),
        (client.create_tasks(pb.CreateTasksRequest()), "tasks: "),
        (client.get_task(pb.GetTaskRequest(id=-1)), "id: "),
    ]
    for call, prefix in calls:
        with pytest.raises(ConnectError) as error:
            await call
        assert error.value.code == Code.INVALID_ARGUMENT
        assert error.value.message.startswith(prefix), error.value.message
    assert await api.total() == before


# -- not_found and failed_precondition -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GetTask", {"id": 987_654}),
        ("GetTaskHistory", {"id": 987_654}),
        ("UpdateTaskStatus", {"id": 987_654, "status": "CANCELLED"}),
        ("CancelTask", {"id": 987_654}),
        ("RetryTask", {"id": 987_654}),
        ("ListTaskExecutions", {"id": 987_654}),
    ],
)
async def test_an_unknown_id_is_not_found(api: Api, method: str, body: dict[str, Any]) -> None:
    assert await api.fails(method, body, 404, "not_found") == "task 987654 not found"


async def test_illegal_status_changes_are_failed_precondition(api: Api) -> None:
    prefix = unique("precondition")
    done = await api.create(f"{prefix} done")
    await api.wait_status(done, "SUCCEEDED")
    queued = await api.create(f"{prefix} queued", delaySeconds=LATER)
    history = {i: await api.history(i) for i in (done, queued)}

    message = await api.fails("CancelTask", {"id": done}, 400, "failed_precondition")
    assert (
        message == f"task {done} is SUCCEEDED; it can move to CANCELLED only from QUEUED, RUNNING, RETRYING"
    )
    message = await api.fails("RetryTask", {"id": queued}, 400, "failed_precondition")
    assert message.startswith(f"task {queued} is QUEUED; only a finished task")
    for status in ("RUNNING", "RETRYING", "UNKNOWN", "ALL"):
        body = {"id": queued, "status": status}
        message = await api.fails("UpdateTaskStatus", body, 400, "failed_precondition")
        assert message.startswith(f"status: {status} is set by workers"), message
    message = await api.fails(
        "UpdateTaskStatus", {"id": done, "status": "CANCELLED"}, 400, "failed_precondition"
    )
    assert message.startswith(f"task {done} is SUCCEEDED; it can move to CANCELLED only from")
    message = await api.fails(
        "UpdateTaskStatus", {"id": queued, "status": "SUCCEEDED"}, 400, "failed_precondition"
    )
    assert message == f"task {queued} is QUEUED; it can move to SUCCEEDED only from RUNNING"
    message = await api.fails(
        "UpdateTaskStatus", {"id": done, "status": "SUCCEEDED"}, 400, "failed_precondition"
    )
    assert message.startswith(f"task {done} is SUCCEEDED")

    # Nothing changed.
    assert ((await api.get(done))["status"], (await api.get(queued))["status"]) == ("SUCCEEDED", "QUEUED")
    assert {i: await api.history(i) for i in (done, queued)} == history


# -- idempotency -----------------------------------------------------------------------------


async def test_the_same_idempotency_key_returns_the_same_task(
    api: Api, client: TaskManagementServiceClient
) -> None:
    name, key = unique("idempotent"), unique("key")
    body = new(name=name, idempotencyKey=key)
    first = await api.ok("CreateTask", body)
    again = await api.ok("CreateTask", body)
    different = await api.ok("CreateTask", {**body, "name": f"{name} changed", "priority": 9})
    assert first == {"id": first["id"], "id64": str(first["id"]), "existing": False}
    assert again == different == {"id": first["id"], "id64": str(first["id"]), "existing": True}
    in_binary = await client.create_task(
        pb.CreateTaskRequest(name=name, type="sleep", payload=pb.Payload(), idempotency_key=key)
    )
    assert (in_binary.id, in_binary.existing) == (first["id"], True)
    batch = await api.ok("CreateTasks", {"tasks": [new(name=f"{name} fresh"), body]})
    assert batch["ids"][1] == first["id"]
    assert await api.listed(nameContains=name) == ([batch["ids"][0], first["id"]], 2)
    twice = new(name=f"{name} twice", idempotencyKey=f"{key}-2")
    batch = await api.ok("CreateTasks", {"tasks": [twice, twice]})  # the same key twice in one batch
    assert batch["ids"][0] == batch["ids"][1]
    assert await api.listed(nameContains=f"{name} twice") == ([batch["ids"][0]], 1)
    task = await api.get(first["id"])
    assert (task["name"], task["priority"], task["idempotencyKey"]) == (name, 0, key)


# -- CORS ------------------------------------------------------------------------------------


PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,connect-protocol-version",
}


async def test_cors_star_allows_any_origin(api: Api) -> None:
    origin = "http://dashboard.example:3000"
    response = await api.http.options(f"{SERVICE}/ListTasks", headers={"Origin": origin, **PREFLIGHT})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] in ("*", origin)
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"POST", "GET", "OPTIONS"} <= methods
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed_headers
    assert "connect-protocol-version" in allowed_headers

    response = await api.http.post(f"{SERVICE}/GetStatus", json={}, headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", origin)
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"connect-protocol-version", "grpc-status", "grpc-message", "connect-content-encoding"} <= exposed


async def test_cors_with_configured_origins_allows_only_those(idle_api: Api) -> None:
    allowed = await idle_api.http.options(
        f"{SERVICE}/ListTasks", headers={"Origin": "http://allowed.example", **PREFLIGHT}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://allowed.example"
    refused = await idle_api.http.options(
        f"{SERVICE}/ListTasks", headers={"Origin": "http://evil.example", **PREFLIGHT}
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    response = await idle_api.http.post(
        f"{SERVICE}/GetStatus", json={}, headers={"Origin": "http://evil.example"}
    )
    assert "access-control-allow-origin" not in response.headers
    response = await idle_api.http.post(
        f"{SERVICE}/GetStatus", json={}, headers={"Origin": "http://allowed.example"}
    )
    assert response.headers["access-control-allow-origin"] == "http://allowed.example"


# -- a server without workers ----------------------------------------------------------------


async def test_without_workers_tasks_stay_queued_and_count_in_queue_depth(idle_api: Api) -> None:
    async def depth() -> float:
        samples = metric_samples((await idle_api.http.get("/metrics")).text, "taskservice_queue_depth")
        assert [labels for labels, _ in samples] == [{}]
        return samples[0][1]

    assert (await idle_api.ok("ListWorkers"))["workers"] == []
    counts, depth_before = await idle_api.counts(), await depth()
    ids = (await idle_api.ok("CreateTasks", {"tasks": [new(delaySeconds=0) for _ in range(3)]}))["ids"]
    await idle_api.create(unique("later"), delaySeconds=LATER)  # queued, but not due
    assert [(await idle_api.get(i))["status"] for i in ids] == ["QUEUED"] * 3
    assert await idle_api.counts() == {**counts, "QUEUED": counts["QUEUED"] + 4}
    assert await depth() == depth_before + 3
    raw = (await idle_api.ok("GetStatus"))["statusCounts"]
    assert (raw["1"], raw["2"], raw["3"], raw["6"]) == ("0", "0", "0", "0")  # zeros are listed too


# -- health ----------------------------------------------------------------------------------


async def test_health(api: Api, server: Served) -> None:
    for body in ({}, {"service": ""}, {"service": "cloud.v1.TaskManagementService"}):
        response = await api.http.post("/grpc.health.v1.Health/Check", json=body)
        assert (response.status_code, response.json()) == (200, {"status": "SERVING"}), body
    response = await api.http.post("/grpc.health.v1.Health/Check", json={"service": "no.such.Service"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    async with HealthClient(server.url) as health:
        answer = await health.check(health_pb2.HealthCheckRequest(service="cloud.v1.TaskManagementService"))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    healthz = await api.http.get("/healthz")
    assert (healthz.status_code, healthz.text) == (200, "ok\n")
    readyz = await api.http.get("/readyz")
    assert (readyz.status_code, readyz.text) == (200, "ready\n")


# -- metrics ---------------------------------------------------------------------------------


def metric_samples(text: str, sample_name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample_name
    ]


def sample(text: str, sample_name: str, **labels: str) -> float:
    values = [v for found, v in metric_samples(text, sample_name) if found == labels]
    return values[0] if values else 0.0


async def test_metrics(api: Api) -> None:
    scrape = await api.http.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    before = scrape.text
    for _ in range(3):
        await api.fails("GetTask", {"id": 987_654}, 404, "not_found")
    await api.fails("ListTasks", {"limit": -1}, 400, "invalid_argument")
    task_id = await api.create(unique("metrics"))
    await api.wait_status(task_id, "SUCCEEDED")
    counts = await api.counts()

    async def run_time_seen() -> str | None:
        text = (await api.http.get("/metrics")).text
        runs = sample(text, "taskservice_task_run_seconds_count", type="sleep", outcome="succeeded")
        return text if runs >= 1 else None

    after: str = await eventually(run_time_seen)

    def change(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert change("taskservice_rpc_requests_total", method="GetTask", code="not_found") == 3
    assert change("taskservice_rpc_errors_total", method="GetTask", code="not_found") == 3
    assert change("taskservice_rpc_requests_total", method="ListTasks", code="invalid_argument") == 1
    assert change("taskservice_rpc_requests_total", method="CreateTask", code="ok") == 1
    assert change("taskservice_rpc_requests_total", method="GetStatus", code="ok") == 1
    assert change("taskservice_rpc_errors_total", method="GetStatus", code="ok") == 0
    assert change("taskservice_rpc_duration_seconds_count", method="CreateTask") == 1
    families = {f.name: f for f in text_string_to_metric_families(after)}
    assert families["taskservice_rpc_duration_seconds"].type == "histogram"
    assert families["taskservice_task_run_seconds"].type == "histogram"
    buckets = metric_samples(after, "taskservice_rpc_duration_seconds_bucket")
    assert any(labels == {"method": "GetTask", "le": "+Inf"} for labels, _ in buckets)
    tasks = {labels["status"]: value for labels, value in metric_samples(after, "taskservice_tasks")}
    assert set(tasks) == set(STATUS_NUMBERS)
    if await api.counts() == counts:  # nothing moved between the two looks
        assert tasks == {name: float(n) for name, n in counts.items()}
    assert metric_samples(after, "taskservice_queue_depth")[0][1] >= 0


async def test_connect_get_for_a_side_effect_free_method(api: Api) -> None:
    response = await api.http.get(f"{SERVICE}/GetStatus?encoding=json&message=%7B%7D&connect=v1")
    assert response.status_code == 200, response.text
    assert set(response.json()["exactStatusCounts"]) == {str(n) for n in STATUS_NUMBERS.values()}
    task_id = await api.create(unique("get"), delaySeconds=LATER)
    response = await api.http.get(
        f"{SERVICE}/GetTask",
        params={"encoding": "json", "message": json.dumps({"id": task_id}), "connect": "v1"},
    )
    assert (response.status_code, response.json()["id"]) == (200, task_id)
    # A method with side effects takes POST only.
    before = await api.total()
    body = json.dumps(new(name=unique("by get")))
    response = await api.http.get(
        f"{SERVICE}/CreateTask", params={"encoding": "json", "message": body, "connect": "v1"}
    )
    assert response.status_code == 405
    assert await api.total() == before
