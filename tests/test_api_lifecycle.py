"""A task's life through the API: runs, retries, status changes, cancel and retry, idempotency."""

from __future__ import annotations

from api_helpers import (
    FAILING,
    FAST,
    LATER,
    LONG,
    TASK_FIELDS,
    TIME,
    Api,
    metric_samples,
    new,
    parse_time,
    recent,
    unique,
)
from conftest import eventually
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient


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


async def test_illegal_status_changes_are_failed_precondition(api: Api) -> None:
    prefix = unique("precondition")
    done = await api.create(f"{prefix} done")
    await api.wait_status(done, "SUCCEEDED")
    queued = await api.create(f"{prefix} queued", delaySeconds=LATER)
    history = {i: await api.history(i) for i in (done, queued)}

    message = await api.fails("CancelTask", {"id": done}, 400, "failed_precondition")
    assert (
        message == f"task {done} is SUCCEEDED; it can move to CANCELLED only from QUEUED, RUNNING, RETRYING,"
        " WAITING"
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


async def test_the_same_idempotency_key_returns_the_same_task(
    api: Api, connect_client: TaskManagementServiceClient
) -> None:
    name, key = unique("idempotent"), unique("key")
    body = new(name=name, idempotencyKey=key)
    first = await api.ok("CreateTask", body)
    again = await api.ok("CreateTask", body)
    different = await api.ok("CreateTask", {**body, "name": f"{name} changed", "priority": 9})
    assert first == {"id": first["id"], "id64": str(first["id"]), "existing": False}
    assert again == different == {"id": first["id"], "id64": str(first["id"]), "existing": True}
    in_binary = await connect_client.create_task(
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
