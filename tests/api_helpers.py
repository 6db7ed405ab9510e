"""What the API tests share: a JSON client as the dashboard and curl make calls, and small helpers."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import eventually

SERVICE = "/cloud.v1.TaskManagementService"

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

STATUS_NUMBERS = {
    "QUEUED": 0, "RUNNING": 1, "FAILED": 2, "SUCCEEDED": 3, "RETRYING": 6, "CANCELLED": 7, "WAITING": 8,
}  # fmt: skip

TASK_FIELDS = {
    "id", "name", "type", "status", "retries", "priority", "createdAt", "payload", "description",
    "maxRetries", "attempts", "updatedAt", "timeoutSeconds", "runAt", "workerId", "idempotencyKey",
    "truncated",
    "waitingReason",  # QUEUED or RETRYING with no live worker for its type; else empty
    "id64",  # the 64-bit twin of id: proto3 JSON writes an int64 as a string
    "exactStatus",  # the twin of status, RETRYING and CANCELLED included
    "queue",  # the queue it waits in (issue 21)
    "limitKey", "limitScope",  # the limit it counts under and its key there (issue 21); empty: none
    "scheduleId", "scheduleTick",  # the schedule and tick that created it (issue 22); 0 and empty: none
    "dependencies", "workflowId", "step", "spawnedBy",  # a workflow step's (issue 23); empty: none
    "traceId",  # the trace its attempts continue (issue 24); empty: none
    "lastWorkerId", "lastAttemptSeconds", "lastError",  # its current or last attempt's (issue 24)
    "baseImage", "entrypoint", "args", "env",  # a container task's: the original's later fields 11-14
    "resourceRequests", "resourceLimits", "serviceAccount",  # and ours (issue 25); empty for a plugin's
}  # fmt: skip

LATER = 3600  # delaySeconds that keeps a task QUEUED for the whole module

FAST = {"seconds": "0"}

FAILING = {"seconds": "0", "fail_rate": "1"}

LONG = {"seconds": "60"}


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
    """JSON calls over plain HTTP, as the dashboard makes them (`Task-Id-Width: 64`: exact status
    filters); `old=True` as the original's clients and curl do (api/ids.py)."""

    def __init__(self, http: httpx.AsyncClient, *, old: bool = False) -> None:
        self.http = http
        self.headers = {} if old else {"Task-Id-Width": "64"}

    async def post(self, method: str, body: Any) -> httpx.Response:
        return await self.http.post(f"{SERVICE}/{method}", json=body, headers=self.headers)

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


def unique(label: str) -> str:
    """A name prefix of this test's own, so filters see only this test's tasks."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


def parse_time(text: str) -> datetime:
    assert TIME.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def recent(text: str) -> bool:
    return abs((datetime.now(UTC) - parse_time(text)).total_seconds()) < 120


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


def metric_samples(text: str, sample_name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample_name
    ]
