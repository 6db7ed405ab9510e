"""Bad input through the API: invalid_argument naming the field and the rule, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from api_helpers import (
    SERVICE,
    Api,
    new,
    unique,
)
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient


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
    pytest.param("ListTasks", {"status": "NOPE"}, "status", id="list-status-unknown-name"),
    pytest.param(UPDATE, {"id": 1, "status": "NOPE"}, "status", id="update-status-unknown-name"),
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
    pytest.param("CreateTask", new(name="a\x00"), "name", id="name-nul"),
    pytest.param("CreateTask", new(description="a\x00"), "description", id="description-nul"),
    pytest.param("CreateTask", new(idempotencyKey="a\x00"), "idempotency_key", id="idempotency-key-nul"),
    pytest.param("CreateTask", new(payload=params(v="a\x00")), "payload.parameters['v']", id="value-nul"),
    pytest.param("CreateTask", new(payload=key_params("a\x00")), "payload.parameters['a\\x00']",
                 id="key-nul"),
    pytest.param("ListTasks", {"type": "a\x00"}, "type", id="list-type-nul"),
    pytest.param("ListTasks", {"nameContains": "a\x00"}, "name_contains", id="name-contains-nul"),
    pytest.param("CancelTask", {"id": 1, "reason": "\x00"}, "reason", id="cancel-reason-nul"),
    pytest.param("CreateTasks", {"tasks": [new(), new(name="\x00")]}, "tasks[1].name", id="batch-nul"),
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


async def test_invalid_input_in_binary_proto(connect_client: TaskManagementServiceClient, api: Api) -> None:
    before = await api.total()
    calls = [
        (connect_client.list_tasks(pb.TaskListRequest(status=42)), "status: "),  # type: ignore[arg-type]
        (connect_client.update_task_status(pb.UpdateTaskStatusRequest(id=1, status=42)), "status: "),  # type: ignore[arg-type]
        (connect_client.create_task(pb.CreateTaskRequest(name="x", type="sleep")), "payload: "),
        (connect_client.create_tasks(pb.CreateTasksRequest()), "tasks: "),
        (connect_client.get_task(pb.GetTaskRequest(id=-1)), "id: "),
        (connect_client.list_tasks(pb.TaskListRequest(name_contains="a\x00")), "name_contains: must not"),
        (connect_client.cancel_task(pb.CancelTaskRequest(id=1, reason="\x00")), "reason: must not"),
    ]
    for call, prefix in calls:
        with pytest.raises(ConnectError) as error:
            await call
        assert error.value.code == Code.INVALID_ARGUMENT
        assert error.value.message.startswith(prefix), error.value.message
    assert await api.total() == before


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
