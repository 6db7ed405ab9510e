"""Reading tasks through the API: ListTasks (order, filters, pages) and GetStatus (counts)."""

from __future__ import annotations

from api_helpers import (
    FAILING,
    FAST,
    LATER,
    LONG,
    STATUS_NUMBERS,
    Api,
    metric_samples,
    unique,
)
from conftest import eventually


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
            "WAITING": 0,
        }
        assert (await api.listed(limit=1))[1] == sum(after.values())
        for name, count in after.items():
            assert (await api.listed(status=name, limit=1))[1] == count, name
    finally:
        await api.ok("CancelTask", {"id": running})
    assert (await api.counts())["CANCELLED"] == after["CANCELLED"] + 1
