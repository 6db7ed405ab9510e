"""Limits on what tasks carry and keep: payloads, results, list responses, a stuck database, plugins."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import psutil
import psycopg
import pytest

from conftest import Served, eventually, serving
from taskservice import model
from taskservice.config import Settings
from taskservice.plugins import PermanentFailure
from taskservice.plugins.email import SendEmail
from taskservice.plugins.query import QueryTimedOut, RunQuery
from taskservice.worker.runtime import stored_result

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("payload-limits")
    with serving(
        pg_server_url, template_database, folder, WORKER_COUNT="2", QUERY_TIMEOUT="20", DB_COMMAND_TIMEOUT="1"
    ) as s:
        yield s


@pytest.fixture
async def http(server: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


def rss(server: Served) -> int:
    return int(psutil.Process(server.process.process.pid).memory_info().rss)


def sleep_task(**fields: object) -> dict[str, object]:
    return {
        "name": "limits",
        "type": "sleep",
        "payload": {"parameters": {"seconds": "0"}},
        "delaySeconds": 3600,
        **fields,
    }


async def wait_done(http: httpx.AsyncClient, task_id: int) -> dict[str, object]:
    async def finished() -> dict[str, object] | None:
        task = (await http.post(f"{SERVICE}/GetTask", json={"id": task_id})).json()
        return task if task["status"] in ("SUCCEEDED", "FAILED") else None

    found: dict[str, object] = await eventually(finished, timeout=60)
    return found


async def test_a_51_mb_payload_is_refused_and_the_server_stays_small(
    http: httpx.AsyncClient, server: Served
) -> None:
    parameters = {f"p{i}": "v" * 1000 for i in range(50_000)}  # 50,000 parameters, ~51 MB
    body = json.dumps(sleep_task(payload={"parameters": parameters})).encode()
    assert len(body) > 50_000_000
    try:
        response = await http.post(
            f"{SERVICE}/CreateTask", content=body, headers={"Content-Type": "application/json"}
        )
    except httpx.WriteError:
        pass  # refused by its Content-Length and closed before we finished sending: fine too
    else:
        assert response.status_code == 413
        assert response.json()["code"] == "resource_exhausted"
    assert rss(server) < 300 * MiB


async def test_too_many_parameters_or_bytes_are_invalid_argument(http: httpx.AsyncClient) -> None:
    many = {f"p{i}": "v" for i in range(101)}
    response = await http.post(f"{SERVICE}/CreateTask", json=sleep_task(payload={"parameters": many}))
    assert response.json()["code"] == "invalid_argument"
    assert "MAX_PARAMETERS" in response.json()["message"]
    big = {f"p{i}": "v" * 1000 for i in range(70)}  # 70 KB of values
    response = await http.post(f"{SERVICE}/CreateTask", json=sleep_task(payload={"parameters": big}))
    assert response.json()["code"] == "invalid_argument"
    assert response.json()["message"].startswith("payload: ")
    assert "MAX_PAYLOAD_BYTES" in response.json()["message"]
    within = {f"p{i}": "v" * 600 for i in range(100)}
    response = await http.post(f"{SERVICE}/CreateTask", json=sleep_task(payload={"parameters": within}))
    assert response.status_code == 200, response.text


async def test_lists_cut_large_fields_and_say_so_get_task_is_whole(http: httpx.AsyncClient) -> None:
    parameters = {f"key{i:02}": "x" * 1000 for i in range(30)}
    created = await http.post(
        f"{SERVICE}/CreateTask",
        json=sleep_task(name="long-fields-task", description="d" * 5000, payload={"parameters": parameters}),
    )
    task_id = created.json()["id"]
    listed = (await http.post(f"{SERVICE}/ListTasks", json={"nameContains": "long-fields-task"})).json()[
        "tasks"
    ]
    [row] = [t for t in listed if t["id"] == task_id]
    assert row["truncated"] is True
    assert len(row["description"]) <= 256
    assert len(row["payload"]["parameters"]) == 20
    assert all(len(v) <= 256 for v in row["payload"]["parameters"].values())
    whole = (await http.post(f"{SERVICE}/GetTask", json={"id": task_id})).json()
    assert whole["truncated"] is False
    assert (whole["description"], whole["payload"]["parameters"]) == ("d" * 5000, parameters)


async def test_a_280_mb_query_result_is_cut_and_the_task_succeeds(
    http: httpx.AsyncClient, server: Served
) -> None:
    query = "SELECT repeat('x', 102400) AS big FROM generate_series(1, 2800)"  # 2,800 rows of 100 KB
    body = {"name": "huge result", "type": "run_query", "payload": {"parameters": {"query": query}}}
    task_id = (await http.post(f"{SERVICE}/CreateTask", json=body)).json()["id"]
    peak = 0

    async def finished() -> dict[str, object] | None:
        nonlocal peak
        peak = max(peak, rss(server))
        task = (await http.post(f"{SERVICE}/GetTask", json={"id": task_id})).json()
        return task if task["status"] in ("SUCCEEDED", "FAILED") else None

    task = await eventually(finished, timeout=60)
    assert task["status"] == "SUCCEEDED", task
    peak = max(peak, rss(server))
    assert peak < 300 * MiB, peak
    [listed] = (await http.post(f"{SERVICE}/ListTaskExecutions", json={"id": task_id})).json()["executions"]
    assert listed["resultTruncated"] is True  # over 4 KB: a preview in the list
    [whole] = (await http.post(f"{SERVICE}/ListTaskExecutions", json={"id": task_id, "attempt": 1})).json()[
        "executions"
    ]
    result = whole["result"]
    assert whole["resultTruncated"] is False
    assert result["row_count"] == 2800
    assert result["rows_cut"] is True
    assert 0 < len(result["rows"]) < 100
    assert len(json.dumps(result)) <= server.settings.max_result_bytes


async def test_a_stuck_database_is_unavailable_within_seconds(
    http: httpx.AsyncClient, server: Served
) -> None:
    """Another session holds a lock on tasks: the RPC gives up after DB_COMMAND_TIMEOUT=1."""
    task_id = (await http.post(f"{SERVICE}/CreateTask", json=sleep_task())).json()["id"]
    with psycopg.connect(server.settings.database_url) as locker:
        locker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        response = await http.post(f"{SERVICE}/GetTask", json={"id": task_id})
        waited = time.monotonic() - started
        locker.rollback()
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "unavailable"
    assert waited < 10  # seconds, not for as long as the database is stuck
    ok = await http.post(f"{SERVICE}/GetTask", json={"id": task_id})
    assert ok.status_code == 200


# -- in-process: the stored result, email headers, run_query's wall clock ----------------------


def test_a_large_result_is_kept_as_a_marked_preview() -> None:
    assert stored_result({"ok": "yes"}, 1024) == {"ok": "yes"}
    assert stored_result([1, 2, 3], 1024) == [1, 2, 3]
    kept = stored_result({"rows": ["x" * 1000] * 5000}, 64 * 1024)
    assert model.is_cut_result(kept)
    assert kept["limit_bytes"] == 64 * 1024
    assert kept["preview"].startswith('{"rows": ["xxx')
    assert len(json.dumps(kept)) < 64 * 1024


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "=?utf-8?q?hi=0D=0ABcc:_victim@evil.example?="),
        ("subject", "=?utf-8?b?aGkNCkJjYzogdmljdGltQGV2aWwuZXhhbXBsZQ==?="),
        ("subject", "hi\r\nBcc: victim@evil.example"),
        ("recipient", "=?utf-8?q?a@example.com=0ABcc:_victim@evil.example?="),
    ],
)
def test_email_headers_with_encoded_line_breaks_are_refused(
    settings: Settings, field: str, value: str
) -> None:
    parameters = {"recipient": "a@example.com", "subject": "hello", field: value}
    with pytest.raises(PermanentFailure, match="line breaks"):
        SendEmail(settings).run(parameters)
    assert not list(settings.email_outbox_dir.glob("*.eml")) if settings.email_outbox_dir.exists() else True


def test_an_encoded_subject_without_line_breaks_is_fine(settings: Settings) -> None:
    result = SendEmail(settings).run({"recipient": "a@example.com", "subject": "=?utf-8?q?caf=C3=A9?="})
    assert result["backend"] == "outbox"


async def test_a_streaming_cross_join_stops_at_query_timeout(settings: Settings) -> None:
    plugin = RunQuery(settings.model_copy(update={"query_timeout": 1.0}))
    query = "SELECT a.i, b.i FROM generate_series(1, 100000000) a(i), generate_series(1, 100000000) b(i)"
    started = time.monotonic()
    with pytest.raises(QueryTimedOut, match="QUERY_TIMEOUT=1s"):
        await asyncio.wait_for(plugin.run({"query": query}), 30)
    assert time.monotonic() - started < 10
