"""The API as the wire contract and the README show it: every field, the defaults, JSON and binary."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from api_helpers import (
    FAST,
    LATER,
    SERVICE,
    STATUS_NUMBERS,
    TASK_FIELDS,
    TIME,
    Api,
    new,
    parse_time,
    recent,
    unique,
)
from conftest import Served, eventually
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient


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


async def test_readme_example_send_newsletter_is_accepted_and_sent(api: Api, shared_server: Served) -> None:
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
    assert path.parent == shared_server.settings.email_outbox_dir
    mail = message_from_bytes(await asyncio.to_thread(path.read_bytes))
    assert (mail["To"], mail["Subject"], mail["Message-ID"]) == (
        "user@example.com", "Weekly Update", result["message_id"],
    )  # fmt: skip


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
        "waitingReason": "",  # the server's workers run `sleep`
        "queue": "default",  # neither the request nor the type's declaration named one
        "limitKey": "",  # its type and queue have no limit
        "limitScope": "",
        "scheduleId": "0",  # no schedule created it (proto3 JSON writes an int64 as a string)
        "scheduleTick": "",
        "dependencies": [],  # it waits for no task: not a workflow step
        "workflowId": "0",
        "step": "",
        "spawnedBy": "0",
        "traceId": "",  # the server does not trace (docs/observability.md)
        "lastWorkerId": "",  # no attempt yet (issue 24)
        "lastAttemptSeconds": 0.0,
        "lastError": "",
        "baseImage": "",  # `sleep` is a plugin, not a container task type (issue 25)
        "entrypoint": "",
        "args": [],
        "env": {},
        "resourceRequests": {},
        "resourceLimits": {},
        "serviceAccount": "",
    }
    assert recent(task["createdAt"])
    assert recent(task["updatedAt"])
    delay = (parse_time(task["runAt"]) - parse_time(task["createdAt"])).total_seconds()
    assert LATER - 2 <= delay <= LATER + 2


async def test_unset_fields_take_the_servers_defaults(api: Api, shared_server: Served) -> None:
    task = await api.get(await api.create(unique("defaults"), delaySeconds=LATER))
    assert (task["maxRetries"], task["timeoutSeconds"]) == (
        shared_server.settings.max_retries, shared_server.settings.task_time_out,
    )  # fmt: skip
    assert (task["priority"], task["description"], task["idempotencyKey"]) == (0, "", "")


async def test_list_task_types(api: Api) -> None:
    types = (await api.ok("ListTaskTypes"))["types"]
    assert {"send_email", "run_query", "sleep"} <= set(types)
    assert types == sorted(types)


async def test_every_rpc_in_binary_proto(connect_client: TaskManagementServiceClient, api: Api) -> None:
    prefix = unique("binary")
    created = await connect_client.create_task(
        pb.CreateTaskRequest(
            name=f"{prefix} one", type="sleep", payload=pb.Payload(parameters=FAST), priority=3, max_retries=0
        )
    )
    assert created.existing is False
    task = await connect_client.get_task(pb.GetTaskRequest(id=created.id))
    assert (task.id, task.name, task.type, task.priority, task.max_retries) == (
        created.id, f"{prefix} one", "sleep", 3, 0,
    )  # fmt: skip
    assert dict(task.payload.parameters) == FAST
    assert TIME.match(task.created_at)

    async def succeeded() -> pb.Task | None:
        task = await connect_client.get_task(pb.GetTaskRequest(id=created.id))
        return task if task.status == pb.SUCCEEDED else None

    task = await eventually(succeeded)
    assert (
        await connect_client.get_task(pb.GetTaskRequest(id=created.id), use_get=True)
    ) == task  # Connect GET
    history = (await connect_client.get_task_history(pb.GetTaskHistoryRequest(id=created.id))).history
    assert [h.status for h in history] == [pb.QUEUED, pb.RUNNING, pb.SUCCEEDED]
    assert history[0].details == "Task is scheduled"
    [execution] = (
        await connect_client.list_task_executions(pb.ListTaskExecutionsRequest(id=created.id))
    ).executions
    assert (execution.task_id, execution.attempt, execution.outcome) == (created.id, 1, "succeeded")
    assert execution.result.struct_value["slept"] == 0.0

    batch = await connect_client.create_tasks(
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
    assert [(await connect_client.get_task(pb.GetTaskRequest(id=i))).name for i in batch.ids] == [
        f"{prefix} batch 0", f"{prefix} batch 1",
    ]  # fmt: skip

    listed = await connect_client.list_tasks(pb.TaskListRequest(name_contains=prefix))
    assert ([t.id for t in listed.tasks], listed.total) == ([*batch.ids[::-1], created.id], 3)
    listed = await connect_client.list_tasks(
        pb.TaskListRequest(name_contains=prefix, status=pb.QUEUED)
    )  # 0, set
    assert [t.id for t in listed.tasks] == batch.ids[::-1]
    listed = await connect_client.list_tasks(
        pb.TaskListRequest(name_contains=prefix, status=pb.ALL, limit=1, offset=2)
    )
    assert ([t.id for t in listed.tasks], listed.total) == ([created.id], 3)
    listed = await connect_client.list_tasks(pb.TaskListRequest(name_contains=prefix, type="send_email"))
    assert (list(listed.tasks), listed.total) == ([], 0)

    counts = (await connect_client.get_status(pb.GetStatusRequest())).exact_status_counts
    assert set(counts) == set(STATUS_NUMBERS.values())
    assert {n: counts[number] for n, number in STATUS_NUMBERS.items()} == await api.counts()

    await connect_client.update_task_status(
        pb.UpdateTaskStatusRequest(id=batch.ids[0], status=pb.CANCELLED, message="binary cancel")
    )
    assert (await connect_client.get_task(pb.GetTaskRequest(id=batch.ids[0]))).exact_status == pb.CANCELLED
    cancelled = await connect_client.cancel_task(pb.CancelTaskRequest(id=batch.ids[1], reason="binary"))
    assert (cancelled.id, cancelled.exact_status) == (batch.ids[1], pb.CANCELLED)
    retried = await connect_client.retry_task(pb.RetryTaskRequest(id=batch.ids[1]))
    assert (retried.status, retried.retries) == (pb.QUEUED, 0)

    async def retried_ran() -> bool:
        return (await connect_client.get_task(pb.GetTaskRequest(id=batch.ids[1]))).status == pb.SUCCEEDED

    await eventually(retried_ran)  # a retried task is due at once

    workers = (await connect_client.list_workers(pb.ListWorkersRequest())).workers
    assert execution.worker_id in [w.id for w in workers if w.alive]
    types = (await connect_client.list_task_types(pb.ListTaskTypesRequest())).types
    assert {"send_email", "run_query", "sleep"} <= set(types)

    with pytest.raises(ConnectError) as missing:
        await connect_client.get_task(pb.GetTaskRequest(id=987_654))
    assert (missing.value.code, missing.value.message) == (Code.NOT_FOUND, "task 987654 not found")
    with pytest.raises(ConnectError) as invalid:
        await connect_client.create_task(pb.CreateTaskRequest(name="", type="sleep", payload=pb.Payload()))
    assert invalid.value.code == Code.INVALID_ARGUMENT
    assert invalid.value.message.startswith("name: ")


async def test_json_through_the_generated_client(shared_server: Served) -> None:
    async with TaskManagementServiceClient(shared_server.url, proto_json=True) as client:
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
