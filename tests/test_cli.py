"""task-cli against a real server process: every command in every output format, errors, end2end, up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from conftest import ServerProcess, eventually, subprocess_env
from taskservice.api.probe import free_port
from taskservice.cli import cli
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Store

FORMATS = ("table", "json", "yaml")


def run(server: ServerProcess, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--address", server.url, *args], catch_exceptions=False)


def ok(server: ServerProcess, *args: str) -> str:
    result = run(server, *args)
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


def parsed(text: str, fmt: str) -> Any:
    return json.loads(text) if fmt == "json" else yaml.safe_load(text)


async def _succeeded_task(store: Store) -> int:
    task_id, _ = await store.create_task(NewTask("Send Newsletter", "sleep", {"seconds": "0"}))

    async def done() -> bool:
        return (await store.get_task(task_id)).status == Status.SUCCEEDED

    await eventually(done)
    return task_id


async def test_create_in_every_format(api_server: ServerProcess, store: Store) -> None:
    out = ok(api_server, "task", "create", "Send Newsletter", "--type", "send_email",
             "--parameter", "recipient=user@example.com", "--parameter", "subject=Weekly Update")  # fmt: skip
    assert out.startswith("Task created with ID: ")
    first = int(out.split(":")[1])
    for fmt in ("json", "yaml"):
        data = parsed(
            ok(api_server, "task", "c", "Task 1", "-t", "sleep", "-p", "seconds=0", "-d", "x", "-o", fmt), fmt
        )
        assert data["id"] > first
        assert data["existing"] is False
    task = await store.get_task(first)
    assert task.parameters == {"recipient": "user@example.com", "subject": "Weekly Update"}


async def test_get_history_and_attempts_in_every_format(api_server: ServerProcess, store: Store) -> None:
    task_id = await _succeeded_task(store)
    for fmt in FORMATS:
        for command in (("task", "get"), ("task", "show"), ("history",), ("h",), ("task", "attempts")):
            out = ok(api_server, *command, "--id", str(task_id), "-o", fmt)
            if fmt == "table":
                assert out.strip()
                continue
            data = parsed(out, fmt)
            if command[-1] in ("get", "show"):
                assert (data["id"], data["name"], data["status"]) == (task_id, "Send Newsletter", "SUCCEEDED")
                assert data["payload"] == {"parameters": {"seconds": "0"}}
            elif command[-1] == "attempts":
                assert [e["outcome"] for e in data["executions"]] == ["succeeded"]
            else:
                assert [h["details"] for h in data["history"]] == [
                    "Task is scheduled",
                    "Task started (Attempt 1)",
                    "Task completed successfully (Attempt 1)",
                ]
    table = ok(api_server, "task", "get", "-i", str(task_id))
    assert "Send Newsletter" in table
    assert "SUCCEEDED" in table
    assert "Task completed successfully (Attempt 1)" in ok(api_server, "history", "-i", str(task_id))


async def test_list_pages_filters_and_spellings(api_server: ServerProcess, store: Store) -> None:
    ids = [i for i, _ in await store.create_tasks(
        [NewTask(f"later {i}", "sleep", delay_seconds=3600) for i in range(5)]
    )]  # fmt: skip
    newest_first = sorted(ids, reverse=True)
    for fmt in ("json", "yaml"):
        data = parsed(ok(api_server, "task", "list", "-o", fmt, "--pageNumber", "2", "--pageCount", "2"), fmt)
        assert [t["id"] for t in data["tasks"]] == newest_first[2:4]
        assert int(data["total"]) == 5
    data = parsed(ok(api_server, "task", "ls", "-o", "json", "--offset", "1", "--limit", "3"), "json")
    assert [t["id"] for t in data["tasks"]] == newest_first[1:4]
    data = parsed(ok(api_server, "t", "l", "-o", "json", "-s", "queued", "-t", "sleep"), "json")
    assert len(data["tasks"]) == 5
    assert parsed(ok(api_server, "task", "list", "-o", "json", "-s", "FAILED"), "json")["tasks"] == []
    table = ok(api_server, "task", "list", "-n", "1", "-c", "2")
    assert "Tasks 1-2 of 5" in table
    assert "later 4" in table


async def test_status_in_every_format(api_server: ServerProcess, store: Store) -> None:
    await store.create_tasks([NewTask("q", "sleep", delay_seconds=3600)] * 2)
    for alias in ("status", "s", "stat"):
        assert "QUEUED" in ok(api_server, "task", alias)
    for fmt in ("json", "yaml"):
        data = parsed(ok(api_server, "task", "status", "-o", fmt), fmt)
        assert data["statusCounts"]["QUEUED"] == 2
        assert set(data["statusCounts"]) == {
            "QUEUED",
            "RUNNING",
            "FAILED",
            "SUCCEEDED",
            "RETRYING",
            "CANCELLED",
        }
        assert data["total"] == 2


async def test_cancel_retry_and_workers(api_server: ServerProcess, store: Store) -> None:
    task_id, _ = await store.create_task(NewTask("later", "sleep", delay_seconds=3600))
    assert ok(api_server, "task", "cancel", "-i", str(task_id), "-r", "not needed") == (
        f"Task {task_id} is now CANCELLED\n"
    )
    data = parsed(ok(api_server, "task", "retry", "-i", str(task_id), "-o", "json"), "json")
    assert data["status"] in ("QUEUED", "RUNNING", "SUCCEEDED")
    assert (await store.history(task_id))[1].details == "Task cancelled: not needed"
    for fmt in FORMATS:
        out = ok(api_server, "workers", "-o", fmt)
        if fmt != "table":
            [worker] = parsed(out, fmt)["workers"]
            assert worker["alive"] is True
            assert worker["concurrency"] == 4
        else:
            assert "alive" in out


def test_errors_are_one_line_on_stderr(api_server: ServerProcess, settings: Settings) -> None:
    cases = [
        (["task", "get", "--id", "99"], "Error: not_found: task 99 not found"),
        (["task", "create", "x", "-t", "nope"], "Error: invalid_argument: type: unknown task type 'nope'"),
        (
            ["task", "create", "x", "-t", "sleep", "-p", "bad key=1"],
            "Error: invalid_argument: payload.parameters",
        ),
    ]
    for args, expected in cases:
        result = subprocess.run(
            [sys.executable, "-m", "taskservice.cli", "--address", api_server.url, *args],
            capture_output=True, text=True, env=subprocess_env(settings), timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.startswith(expected), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
    unreachable = run(api_server, "--address", f"http://127.0.0.1:{free_port()}", "task", "status")
    assert unreachable.exit_code == 1
    assert "cannot reach the server" in unreachable.stderr


def test_end2end_reports_and_exits_zero(api_server: ServerProcess) -> None:
    out = ok(api_server, "end2end", "-n", "20", "-o", "json")
    summary = json.loads(out)
    assert (summary["tasks"], summary["succeeded"], summary["failed"], summary["unfinished"]) == (
        20,
        20,
        0,
        0,
    )
    assert summary["queue_to_start_p50_ms"] >= 0


def test_end2end_fails_when_tasks_do_not_finish(settings: Settings, tmp_path: Path) -> None:
    idle = ServerProcess(settings, tmp_path / "idle.log", WORKER_COUNT="0")  # nobody runs the tasks
    try:
        idle.wait_ready()
        result = run(idle, "end2end", "--count", "3", "--timeout", "1", "-o", "json")
        assert result.exit_code == 1
        assert "3 of 3 tasks did not finish within 1s" in result.stderr
        assert json.loads(result.stdout)["unfinished"] == 3
    finally:
        idle.stop()


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    # Outside pytest's private temp folders: as root, the server runs as another system user.
    path = Path(tempfile.mkdtemp(prefix="ts-up-"))
    yield path / "pg"
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_up_runs_everything_and_end2end_passes(embedded_dir: Path, tmp_path: Path) -> None:
    """The README's first command, end to end: `task-cli up` on a new embedded PostgreSQL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "DB_HOST")}
    env |= {"EMBEDDED_DATA_DIR": str(embedded_dir), "EMAIL_OUTBOX_DIR": str(tmp_path / "outbox")}
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [sys.executable, "-m", "taskservice.cli", "up", "--port", str(port), "--workers", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        import asyncio

        async def is_up() -> bool:
            return "Press Ctrl-C to stop." in (tmp_path / "up.log").read_text()

        asyncio.run(eventually(is_up, timeout=120))
        address = f"http://127.0.0.1:{port}"
        end2end = ["--address", address, "end2end", "-n", "100", "-o", "json"]
        result = subprocess.run(
            [sys.executable, "-m", "taskservice.cli", *end2end],
            env=env, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["succeeded"], summary["failed"]) == (100, 0)
        assert f"Dashboard  {address}/" in (tmp_path / "up.log").read_text()
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
        log.close()
    text = (tmp_path / "up.log").read_text()
    assert code == 0, text
    assert text.rstrip().endswith("Stopped.")
    assert "Traceback" not in text
