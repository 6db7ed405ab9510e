"""Old clients see only the statuses they know: a client built on the original's enum (0-5), in JSON
and in binary, against a real server with tasks in every status; and the exact twins say the rest."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from conftest import Served, eventually, serving
from taskservice.gen.cloud.v1 import task_pb2 as pb

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
ORIGINAL_NAMES = {"QUEUED", "RUNNING", "FAILED", "SUCCEEDED", "UNKNOWN", "ALL"}
LATER = 3600


def _original_file() -> descriptor_pb2.FileDescriptorProto:
    """cloud/v1/task.proto as the original's clients have it: no RETRYING, CANCELLED or field 40-49,
    in a package of its own (so that it lives beside ours in one process)."""
    proto = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = "old/v1/task.proto", "old.v1"
    for enum in proto.enum_type:
        kept = [v for v in enum.value if v.number <= 5]
        del enum.value[:]
        enum.value.extend(kept)
    for message in proto.message_type:
        kept_fields = [f for f in message.field if not 40 <= f.number <= 49]
        del message.field[:]
        message.field.extend(kept_fields)
        for field in [*message.field, *(f for nested in message.nested_type for f in nested.field)]:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(".cloud.v1.", ".old.v1.")
    del proto.service[:]
    return proto


POOL = descriptor_pool.DescriptorPool()
for dependency in pb.DESCRIPTOR.dependencies:
    dependency_proto = descriptor_pb2.FileDescriptorProto()
    dependency.CopyToProto(dependency_proto)
    POOL.Add(dependency_proto)
POOL.Add(_original_file())


def old(name: str) -> type[Message]:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"old.v1.{name}"))


def _known_only(value: Any, descriptor: Any) -> Any:
    """The JSON an old client keeps: fields its messages do not have are dropped (as protobuf does)."""
    if not isinstance(value, dict) or descriptor is None:
        return value
    fields = {f.json_name: f for f in descriptor.fields}
    out = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            continue
        kind = field.message_type
        if kind is not None and kind.GetOptions().map_entry:
            out[key] = item
        elif kind is not None and kind.full_name.startswith("old."):
            out[key] = (
                [_known_only(i, kind) for i in item] if isinstance(item, list) else _known_only(item, kind)
            )
        else:
            out[key] = item
    return out


def old_json(data: dict[str, Any], name: str) -> Message:
    """Decode as the original's client does; a status name it does not know fails the decode."""
    message = old(name)()
    json_format.ParseDict(_known_only(data, message.DESCRIPTOR), message)
    return message


def statuses_in(value: Any) -> list[str]:
    """Every value of a `status` key, however deep."""
    if isinstance(value, list):
        return [s for item in value for s in statuses_in(item)]
    if not isinstance(value, dict):
        return []
    found = [value["status"]] if "status" in value else []
    return found + [s for key, item in value.items() if key != "payload" for s in statuses_in(item)]


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("statuses")
    # A failed attempt waits long before its retry: the task stays RETRYING for the whole module.
    env = {"WORKER_COUNT": "2", "RETRY_BACKOFF_BASE": "3000", "RETRY_BACKOFF_MAX": "3000"}
    with serving(pg_server_url, template_database, folder, **env) as served:
        yield served


@pytest.fixture
async def http(server: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def call(http: httpx.AsyncClient, method: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(f"{SERVICE}/{method}", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def binary(http: httpx.AsyncClient, method: str, request: Message, answer: str) -> Message:
    response = await http.post(
        f"{SERVICE}/{method}",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/proto"},
    )
    assert response.status_code == 200, response.text
    return old(answer).FromString(response.content)


async def create(http: httpx.AsyncClient, name: str, **fields: Any) -> int:
    parameters = fields.pop("parameters", {"seconds": "0"})
    body = {"name": name, "type": "sleep", "payload": {"parameters": parameters}, **fields}
    return int((await call(http, "CreateTask", body))["id"])


async def exact_status(http: httpx.AsyncClient, task_id: int) -> str:
    status: str = (await call(http, "GetTask", {"id": task_id}))["exactStatus"]
    return status


@pytest.fixture(scope="module")
async def tasks(server: Served) -> dict[str, int]:
    """One task in each status, by its exact status's name."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        found = {
            "QUEUED": await create(http, "status queued", delaySeconds=LATER),
            "SUCCEEDED": await create(http, "status succeeded"),
            "FAILED": await create(http, "status failed", parameters={"fail_rate": "1"}, maxRetries=0),
            "RETRYING": await create(http, "status retrying", parameters={"fail_rate": "1"}, maxRetries=3),
            "RUNNING": await create(http, "status running", parameters={"seconds": "600"}),
            "CANCELLED": await create(http, "status cancelled", delaySeconds=LATER),
        }
        await call(http, "CancelTask", {"id": found["CANCELLED"]})
        for name, task_id in found.items():

            async def reached(task_id: int = task_id, name: str = name) -> bool:
                return await exact_status(http, task_id) == name

            await eventually(reached, 60)
        return found


async def test_the_exact_twins_say_the_exact_status(http: httpx.AsyncClient, tasks: dict[str, int]) -> None:
    shown_as = {"RETRYING": "QUEUED", "CANCELLED": "FAILED"}
    for name, task_id in tasks.items():
        task = await call(http, "GetTask", {"id": task_id})
        assert (task["exactStatus"], task["status"]) == (name, shown_as.get(name, name))
    history = (await call(http, "GetTaskHistory", {"id": tasks["RETRYING"]}))["history"]
    assert [h["exactStatus"] for h in history] == ["QUEUED", "RUNNING", "RETRYING"]
    assert [h["status"] for h in history] == ["QUEUED", "RUNNING", "QUEUED"]


async def test_an_old_json_client_sees_only_statuses_it_knows(
    http: httpx.AsyncClient, tasks: dict[str, int]
) -> None:
    responses: list[tuple[dict[str, Any], str]] = [
        (await call(http, "ListTasks", {"limit": 100}), "TaskList")
    ]
    for task_id in tasks.values():
        responses.append((await call(http, "GetTask", {"id": task_id}), "Task"))
        responses.append((await call(http, "GetTaskHistory", {"id": task_id}), "GetTaskHistoryResponse"))
    responses.append(
        (await call(http, "CancelTask", {"id": await create(http, "cancel me", delaySeconds=LATER)}), "Task")
    )
    seen = [s for data, _ in responses for s in statuses_in(data)]
    assert len(seen) > len(tasks) * 3
    assert set(seen) <= ORIGINAL_NAMES
    for data, name in responses:
        old_json(data, name)  # every status name decodes with the original's enum


async def test_an_old_binary_client_sees_no_6_or_7(http: httpx.AsyncClient, tasks: dict[str, int]) -> None:
    listed = await binary(http, "ListTasks", pb.TaskListRequest(limit=100), "TaskList")
    seen = [t.status for t in listed.tasks]  # type: ignore[attr-defined]
    for task_id in tasks.values():
        seen.append((await binary(http, "GetTask", pb.GetTaskRequest(id=task_id), "Task")).status)  # type: ignore[attr-defined]
        history = await binary(
            http, "GetTaskHistory", pb.GetTaskHistoryRequest(id=task_id), "GetTaskHistoryResponse"
        )
        seen.extend(h.status for h in history.history)  # type: ignore[attr-defined]
    assert len(seen) > len(tasks) * 3
    assert set(seen) <= set(range(6)), seen
    counts = await binary(http, "GetStatus", pb.GetStatusRequest(), "GetStatusResponse")
    assert set(counts.status_counts) <= set(range(6))  # type: ignore[attr-defined]


async def test_get_status_keeps_the_original_keys_and_adds_the_exact_counts(
    http: httpx.AsyncClient, tasks: dict[str, int]
) -> None:
    async def settled() -> dict[str, Any] | None:
        counts = await call(http, "GetStatus", {})
        total = int((await call(http, "ListTasks", {"limit": 1}))["total"])
        return counts if sum(int(n) for n in counts["exactStatusCounts"].values()) == total else None

    counts = await eventually(settled)
    original = {int(k): int(n) for k, n in counts["statusCounts"].items()}
    exact = {int(k): int(n) for k, n in counts["exactStatusCounts"].items()}
    assert set(original) == {pb.QUEUED, pb.RUNNING, pb.FAILED, pb.SUCCEEDED}
    assert set(exact) == {*original, pb.RETRYING, pb.CANCELLED, pb.WAITING}
    assert sum(original.values()) == sum(exact.values())
    assert original[pb.QUEUED] == exact[pb.QUEUED] + exact[pb.RETRYING] + exact[pb.WAITING]
    assert original[pb.FAILED] == exact[pb.FAILED] + exact[pb.CANCELLED]
    assert exact[pb.RETRYING] >= 1 and exact[pb.CANCELLED] >= 1  # noqa: PT018


async def test_our_clients_list_filter_takes_exact_statuses(
    http: httpx.AsyncClient, tasks: dict[str, int]
) -> None:
    """Our CLI, dashboard and Python client send `Task-Id-Width: 64`: their filters are exact."""
    for name in ("RETRYING", "CANCELLED", "QUEUED", "FAILED"):
        response = await http.post(
            f"{SERVICE}/ListTasks", json={"status": name, "limit": 100}, headers={"Task-Id-Width": "64"}
        )
        listed = response.json()
        assert {t["exactStatus"] for t in listed["tasks"]} == {name}
        assert tasks[name] in {int(t["id"]) for t in listed["tasks"]}
        assert int(listed["total"]) == len(listed["tasks"])


async def test_an_old_clients_list_filter_agrees_with_the_statuses_it_is_shown(
    http: httpx.AsyncClient, tasks: dict[str, int]
) -> None:
    """Shown RETRYING as QUEUED and CANCELLED as FAILED, an old client finds them filtering by those."""
    for name, also in (("QUEUED", "RETRYING"), ("FAILED", "CANCELLED")):
        listed = await call(http, "ListTasks", {"status": name, "limit": 100})
        assert {t["status"] for t in listed["tasks"]} == {name}
        assert {t["exactStatus"] for t in listed["tasks"]} == {name, also}
        assert {tasks[name], tasks[also]} <= {int(t["id"]) for t in listed["tasks"]}
        assert int(listed["total"]) == len(listed["tasks"])
        named = await call(http, "ListTasks", {"status": name, "nameContains": "status ", "limit": 100})
        assert {int(t["id"]) for t in named["tasks"]} == {tasks[name], tasks[also]}
        assert int(named["total"]) == 2
        binary_list = await binary(http, "ListTasks", pb.TaskListRequest(status=name, limit=100), "TaskList")
        assert tasks[also] in {t.id for t in binary_list.tasks}  # type: ignore[attr-defined]
    for name in ("RUNNING", "SUCCEEDED"):  # the others stay as they were
        listed = await call(http, "ListTasks", {"status": name, "limit": 100})
        assert {t["exactStatus"] for t in listed["tasks"]} == {name}


async def test_events_show_the_original_status_and_the_exact_one(
    http: httpx.AsyncClient, tasks: dict[str, int]
) -> None:
    body = struct.pack(">BI", 0, 2) + b"{}"
    headers = {"Content-Type": "application/connect+json"}
    events: list[dict[str, Any]] = []
    async with http.stream("POST", f"{SERVICE}/WatchEvents", content=body, headers=headers) as response:
        data = b""
        cancelled = None
        async for chunk in response.aiter_bytes():
            data += chunk
            while len(data) >= 5 and len(data) >= 5 + (length := struct.unpack(">I", data[1:5])[0]):
                event, data = json.loads(data[5 : 5 + length]), data[5 + length :]
                events.append(event)
                if event.get("keepalive") and cancelled is None:
                    cancelled = await create(http, "watched cancel", delaySeconds=LATER)
                    await call(http, "CancelTask", {"id": cancelled})
                if event.get("exactStatus") == "CANCELLED" and int(event["taskId"]) == cancelled:
                    break
            else:
                continue
            break
    mine = [e for e in events if not e.get("keepalive") and int(e["taskId"]) == cancelled]
    assert [(e["status"], e["exactStatus"]) for e in mine] == [("QUEUED", "QUEUED"), ("FAILED", "CANCELLED")]
    assert set(statuses_in(events)) <= ORIGINAL_NAMES
    for event in events:
        old_json(event, "TaskEvent")
