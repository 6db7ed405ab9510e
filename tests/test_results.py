"""A task's return value read back: whole through ListTaskExecutions for one attempt (what a client's
result() reads), a preview in lists, and task-cli showing it (`task get`, `task attempts --attempt`)."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from conftest import ServerProcess, eventually
from taskservice.cli import cli

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
BIG = 5000  # characters: over what a list shows of a result (LIST_RESULT_MAX, 4 KB)


def _cli(server: ServerProcess, *arguments: str) -> str:
    result = CliRunner().invoke(cli, ["--address", server.url, *arguments], terminal_width=200)
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


async def test_a_large_result_is_whole_for_one_attempt_and_in_task_get(api_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as http:
        query = f"SELECT repeat('x', {BIG}) AS v"
        body = {"name": "big result", "type": "run_query", "payload": {"parameters": {"query": query}}}
        task_id = (await http.post(f"{SERVICE}/CreateTask", json=body)).json()["id"]

        async def succeeded() -> bool:
            task = (await http.post(f"{SERVICE}/GetTask", json={"id": task_id})).json()
            assert task["status"] in ("QUEUED", "RUNNING", "SUCCEEDED"), task
            return bool(task["status"] == "SUCCEEDED")

        await eventually(succeeded)
        listed = (await http.post(f"{SERVICE}/ListTaskExecutions", json={"id": task_id})).json()
        [preview] = listed["executions"]
        assert preview["resultTruncated"] is True
        one = {"id": task_id, "attempt": 1}
        [whole] = (await http.post(f"{SERVICE}/ListTaskExecutions", json=one)).json()["executions"]
        assert (whole["resultTruncated"], whole["result"]["rows"]) == (False, [["x" * BIG]])

    shown = _cli(api_server, "task", "get", "-i", str(task_id))
    words = " ".join(shown.split())  # the table wraps long values
    assert '"rows": [["xxxx' in words  # the result itself, not the list's preview of it
    assert '"preview"' not in words
    assert f"more characters: task attempts -i {task_id} --attempt 1 -o json)" in words
    out = json.loads(_cli(api_server, "task", "attempts", "-i", str(task_id), "--attempt", "1", "-o", "json"))
    [attempt] = out["executions"]
    assert attempt["result"]["rows"] == [["x" * BIG]]
