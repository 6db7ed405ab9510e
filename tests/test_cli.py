"""task-cli against a real server process: every command in every output format, errors, end2end, up."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from conftest import ServerProcess, eventually, subprocess_env
from taskservice.api.probe import free_port
from taskservice.cli import cli
from taskservice.cli.group import Group
from taskservice.cli.main import COMMANDS
from taskservice.cli.output import age, parse_time, when
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

FORMATS = ("table", "wide", "json", "yaml")


def run(server: ServerProcess, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--address", server.url, *args], catch_exceptions=False)


def ok(server: ServerProcess, *args: str) -> str:
    result = run(server, *args)
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


def parsed(text: str, fmt: str) -> Any:
    return json.loads(text) if fmt == "json" else yaml.safe_load(text)


def task_cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """task-cli as a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "taskservice.cli", *args],
        capture_output=True, text=True, env=subprocess_env(settings, **env), timeout=120, check=False,
    )  # fmt: skip


async def _succeeded_task(store: Store, name: str = "Send Newsletter") -> int:
    task_id, _ = await store.create_task(NewTask(name, "sleep", {"seconds": "0"}))

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
            if fmt in ("table", "wide"):
                assert "Send Newsletter" in out or "succeeded" in out.lower()
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
    assert re.search(r"Result\s+\{\"slept\": 0\.0\}", table)  # the last attempt's result
    assert "Task completed successfully (Attempt 1)" in ok(api_server, "history", "-i", str(task_id))


async def test_get_shows_the_last_error_of_a_failed_task(api_server: ServerProcess, store: Store) -> None:
    task_id, _ = await store.create_task(NewTask("Flaky", "sleep", {"fail_rate": "1"}, max_retries=0))
    await eventually(lambda: _status_is(store, task_id, Status.FAILED))
    table = ok(api_server, "task", "get", "-i", str(task_id))
    assert re.search(r"Last error\s+RuntimeError: simulated failure \(fail_rate=1\)", table)


async def _status_is(store: Store, task_id: int, status: Status) -> bool:
    return (await store.get_task(task_id)).status == status


async def test_list_pages_filters_and_spellings(api_server: ServerProcess, store: Store) -> None:
    ids = [i for i, _ in await store.create_tasks(
        [NewTask(f"later {i}", "sleep", delay_seconds=3600) for i in range(5)]
    )]  # fmt: skip
    newest_first = sorted(ids, reverse=True)
    for fmt in ("json", "yaml"):
        data = parsed(ok(api_server, "task", "list", "-o", fmt, "--pageNumber", "2", "--pageCount", "2"), fmt)
        assert [t["id"] for t in data["tasks"]] == newest_first[2:4]
        assert data["total"] == 5  # a number, as in `task status -o json`
    data = parsed(ok(api_server, "task", "ls", "-o", "json", "--offset", "1", "--limit", "3"), "json")
    assert [t["id"] for t in data["tasks"]] == newest_first[1:4]
    for status in ("queued", "QUEUED", "Queued", "all", "ALL"):
        data = parsed(ok(api_server, "t", "l", "-o", "json", "-s", status, "-t", "sleep"), "json")
        assert len(data["tasks"]) == 5, status
    assert parsed(ok(api_server, "task", "list", "-o", "json", "-s", "failed"), "json")["tasks"] == []
    table = ok(api_server, "task", "list", "-n", "1", "-c", "2")
    assert "Tasks 1-2 of 5" in table
    assert "later 4" in table
    header = table.splitlines()[1].split()
    assert header == ["ID", "NAME", "TYPE", "STATUS", "RETRIES", "AGE", "DESCRIPTION"]
    wide = ok(api_server, "task", "list", "-o", "wide")
    assert "CREATED" in wide
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", wide)  # absolute times, whole
    oldest = parsed(ok(api_server, "task", "list", "-o", "json", "--sort-by", "created_asc"), "json")
    assert [t["id"] for t in oldest["tasks"]] == sorted(ids)
    by_name = parsed(ok(api_server, "t", "l", "-o", "json", "--sort-by", "name_desc", "-c", "2"), "json")
    assert [t["name"] for t in by_name["tasks"]] == ["later 4", "later 3"]


async def test_empty_pages_say_so(api_server: ServerProcess, store: Store) -> None:
    assert ok(api_server, "task", "list") == "No tasks\n"
    await store.create_task(NewTask("only", "sleep", delay_seconds=3600))
    assert ok(api_server, "task", "list", "--pageNumber", "2", "--pageCount", "20") == (
        "No tasks from 21 on (1 in all)\n"
    )
    assert ok(api_server, "task", "list", "--offset", "1") == "No tasks from 2 on (1 in all)\n"
    assert "Tasks 1-1 of 1" in ok(api_server, "task", "list")


async def test_64_bit_integers_are_numbers_in_json(api_server: ServerProcess, store: Store) -> None:
    """proto3 JSON writes int64 as strings; the CLI's JSON has numbers, so `total` is one type."""
    task_id = await _succeeded_task(store)
    listed = parsed(ok(api_server, "task", "list", "-o", "json"), "json")
    assert listed["total"] == 1
    assert listed["tasks"][0]["id64"] == task_id
    counted = parsed(ok(api_server, "task", "status", "-o", "json"), "json")
    assert counted["total"] == 1
    got = parsed(ok(api_server, "task", "get", "-i", str(task_id), "-o", "yaml"), "yaml")
    assert got["id64"] == task_id
    attempts = parsed(ok(api_server, "task", "attempts", "-i", str(task_id), "-o", "json"), "json")
    assert attempts["executions"][0]["taskId64"] == task_id
    assert isinstance(attempts["executions"][0]["id"], int)


async def test_a_running_attempt_says_running(api_server: ServerProcess, store: Store) -> None:
    long, _ = await store.create_task(NewTask("long", "sleep", {"seconds": "300"}))
    await eventually(lambda: _status_is(store, long, Status.RUNNING))
    try:
        for fmt in ("table", "wide"):
            [row] = [
                line
                for line in ok(api_server, "task", "attempts", "-i", str(long), "-o", fmt).splitlines()
                if line.startswith("1 ")
            ]
            assert re.search(r"\srunning\s+running(\s|$)", row), row  # DURATION, then OUTCOME
            assert "0.000s" not in row
    finally:
        await store.set_status(long, Status.CANCELLED)


async def test_json_keys_are_in_field_order_whatever_is_set(api_server: ServerProcess, store: Store) -> None:
    """The same message prints its keys in the same order, defaults or not (no reordering by value)."""
    await store.create_task(NewTask("plain", "sleep", delay_seconds=3600))
    await store.create_task(
        NewTask("busy", "sleep", {"b": "2", "a": "1"}, description="d", priority=5, delay_seconds=3600)
    )
    tasks = parsed(ok(api_server, "task", "list", "-o", "json"), "json")["tasks"]
    assert list(tasks[0]) == list(tasks[1])
    assert list(tasks[0])[:5] == ["id", "name", "type", "status", "retries"]
    busy = next(t for t in tasks if t["name"] == "busy")
    assert list(busy["payload"]["parameters"]) == ["a", "b"]  # map keys sorted


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
            "WAITING",
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
        if fmt in ("json", "yaml"):
            [worker] = parsed(out, fmt)["workers"]
            assert worker["alive"] is True
            assert worker["concurrency"] == 4
        else:
            assert "alive" in out


async def test_cancel_retry_and_delete_many_ask_first(api_server: ServerProcess, store: Store) -> None:
    prefix = f"bulk {os.getpid()}"
    created = await store.create_tasks(
        [NewTask(f"{prefix} {i}", "sleep", delay_seconds=3600) for i in range(5)]
    )
    ids = [task_id for task_id, _ in created]
    other, _ = await store.create_task(NewTask("elsewhere", "sleep", delay_seconds=3600))
    select = ("--status", "queued,retrying", "--name-contains", prefix.upper())

    def invoke(*args: str, answer: str = "") -> Result:
        return CliRunner().invoke(cli, ["--address", api_server.url, "task", *args], input=answer)

    declined = invoke("cancel", *select, answer="n\n")
    assert declined.exit_code == 1
    assert "Cancel 5 tasks? [y/N]" in declined.stderr
    assert {(await store.get_task(i)).status for i in ids} == {Status.QUEUED}  # nothing changed
    accepted = invoke("cancel", *select, "-r", "not needed", answer="y\n")
    assert (accepted.exit_code, accepted.stdout) == (0, "Cancelled 5 tasks.\n")
    assert {(await store.get_task(i)).status for i in ids} == {Status.CANCELLED}
    assert (await store.history(ids[0]))[-1].details == "Task cancelled: not needed"
    assert (await store.get_task(other)).status == Status.QUEUED
    assert ok(api_server, "task", "cancel", *select) == "No tasks to cancel.\n"

    two = ("-i", str(ids[0]), "-i", str(ids[1]))
    assert ok(api_server, "task", "retry", *two, "--yes") == "Retried 2 tasks.\n"
    delete = ("task", "delete", "--status", "cancelled", "--name-contains", prefix, "--yes", "-o", "json")
    assert parsed(ok(api_server, *delete), "json") == {"count": 3}
    assert ok(api_server, "task", "delete", "-i", str(other), "-y") == "Deleted 0 tasks.\n"  # not finished
    asked = invoke("cancel", "--type", "sleep", "--name-contains", "elsewhere")  # no answer: no
    assert asked.exit_code == 1
    assert "Cancel 1 task? [y/N]" in asked.stderr
    assert (await store.get_task(other)).status == Status.QUEUED

    for args in (("cancel",), ("delete", "--reason", "x"), ("retry", "-i", "1", "--status", "failed")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
    wrong = invoke("cancel", "--status", "queued,done")
    assert wrong.exit_code == 2
    assert "'done' is not a task status; one of queued, running, failed, succeeded, retrying, cancelled" in (
        wrong.stderr
    )


def test_bulk_counts_read_as_numbers() -> None:
    from taskservice.cli.tasks import _tasks

    assert [_tasks(n) for n in (0, 1, 1234)] == ["0 tasks", "1 task", "1,234 tasks"]


async def test_workers_say_which_tasks_they_run(api_server: ServerProcess, store: Store) -> None:
    long, _ = await store.create_task(NewTask("long", "sleep", {"seconds": "300"}))
    await eventually(lambda: _status_is(store, long, Status.RUNNING))
    [row] = [line for line in ok(api_server, "workers").splitlines() if "alive" in line]
    assert row.split()[-1] == str(long)
    assert row.split()[3] == "1/4"
    await store.set_status(long, Status.CANCELLED)


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
        result = task_cli(settings, "--address", api_server.url, *args)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.startswith(expected), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = run(api_server, "--address", nowhere, "task", "status")
    assert unreachable.exit_code == 1
    # One line that names the address once, why, and what to do.
    assert unreachable.stderr.strip() == (
        f"Error: cannot reach the server at {nowhere} ([Errno 111] Connection refused); "
        "is `task-cli server` running?"
    )


def test_usage_errors_exit_2(settings: Settings) -> None:
    for args in (["task", "get"], ["task", "list", "-s", "sleeping"], ["nope"], ["task", "create", "x"]):
        result = task_cli(settings, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Usage:" in result.stderr


# -- global flags, as the original's cobra CLI took them --------------------------------------------


def test_global_flags_go_anywhere_on_the_line(api_server: ServerProcess, settings: Settings) -> None:
    address = api_server.url.removeprefix("http://")  # no scheme: http:// is added
    elsewhere = f"127.0.0.1:{free_port()}"
    for args in (
        ["--address", address, "task", "list"],
        ["task", "--address", address, "list"],
        ["task", "list", "--address", address],
        ["t", "l", "--address", f"http://{address}/"],
        ["--address", elsewhere, "task", "list", "--address", address],  # the innermost wins
    ):
        result = task_cli(settings, *args, "-o", "json")
        assert result.returncode == 0, (args, result.stderr)
        assert "tasks" in json.loads(result.stdout)
    quiet = task_cli(settings, "task", "list", "--address", address)
    debug = task_cli(settings, "task", "list", "--log-level", "debug", "--address", address)
    assert debug.returncode == quiet.returncode == 0
    assert "DEBUG" in debug.stderr
    assert "ListTasks" in debug.stderr
    assert quiet.stderr == ""
    env_address = task_cli(settings, "task", "status", TASK_SERVICE_ADDRESS=address)
    assert env_address.returncode == 0, env_address.stderr


async def test_a_token_the_server_does_not_check_is_warned_about_once(
    api_server: ServerProcess, store: Store, settings: Settings
) -> None:
    """The test server runs on loopback with auth off: it says it did not check the token sent."""
    task_id = await _succeeded_task(store)
    # `task get` makes two calls (the task, its attempts): one warning.
    told = task_cli(
        settings, "--address", api_server.url, "--token", "tsk_x", "task", "get", "-i", str(task_id)
    )
    assert told.returncode == 0, told.stderr
    assert told.stderr == (
        f"Warning: the server at {api_server.url} runs with auth off: the token (--token or "
        "TASK_SERVICE_TOKEN) was not checked\n"
    )
    assert "Send Newsletter" in told.stdout
    from_env = task_cli(settings, "--address", api_server.url, "task", "status", TASK_SERVICE_TOKEN="tsk_x")
    assert from_env.stderr.count("was not checked") == 1
    untold = task_cli(settings, "--address", api_server.url, "task", "get", "-i", str(task_id))
    assert untold.stderr == ""


# -- start-up: client commands import only what they use ----------------------------------------------

HEAVY = ("alembic", "sqlalchemy", "asyncpg", "psycopg", "structlog", "pydantic", "pydantic_settings",
         "connectrpc", "httpx", "uvicorn", "starlette", "taskservice.store", "taskservice.api",
         "taskservice.worker", "taskservice.db")  # fmt: skip


def _imported(settings: Settings, *args: str) -> set[str]:
    result = task_cli(settings, *args, PYTHONPROFILEIMPORTTIME="1")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    return {line.split("|")[2].strip() for line in lines if line.startswith("import time:")}


def test_client_commands_import_only_what_they_use(api_server: ServerProcess, settings: Settings) -> None:
    for args in (["--help"], ["task", "list", "--address", api_server.url], ["task", "--help"]):
        imported = _imported(settings, *args)
        assert "taskservice.cli.main" in imported  # the measurement works
        loaded = sorted(m for m in imported if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
        assert loaded == [], (args, loaded)


def test_the_lazy_command_table_matches_the_commands() -> None:
    assert isinstance(cli, Group)
    for name, entry in COMMANDS.items():
        command = entry.load()
        assert isinstance(command, click.Command)
        assert (command.help or "").splitlines()[0] == entry.help, name


def test_help_lists_every_command_with_its_aliases(settings: Settings) -> None:
    out = task_cli(settings, "--help").stdout
    for name in COMMANDS:
        assert re.search(rf"^  {name}\b", out, re.MULTILINE), name
    assert "task (t)" in out
    assert "history (h, log)" in out


def test_create_help_lists_the_servers_task_types(api_server: ServerProcess, settings: Settings) -> None:
    out = task_cli(settings, "--address", api_server.url, "task", "create", "--help").stdout
    assert f"Task types registered at {api_server.url}" in out
    assert re.search(r"run_query, send_email, sleep", out)
    assert 'task-cli task create "Send Newsletter" --type send_email' in " ".join(out.split())
    offline = task_cli(settings, "--address", f"127.0.0.1:{free_port()}", "task", "create", "--help").stdout
    assert "installed here" in offline
    assert "sleep" in offline


# -- time columns ---------------------------------------------------------------------------------


def test_age_is_kubectl_style() -> None:
    now = parse_time("2026-12-01T07:00:13Z")
    assert now is not None
    cases = {
        "2026-12-01T07:00:13Z": "0s",
        "2026-12-01T07:00:00Z": "13s",
        "2026-12-01T06:58:13Z": "2m",
        "2026-12-01T06:56:03Z": "4m10s",
        "2026-12-01T06:30:13Z": "30m",
        "2026-12-01T03:30:13Z": "3h30m",
        "2026-11-30T20:00:13Z": "11h",
        "2026-11-28T05:00:13Z": "3d2h",
        "2026-10-01T07:00:13Z": "61d",
        "2026-12-01T07:05:00Z": "0s",  # a clock behind the server's: never negative
        "": "",
    }
    for then, expected in cases.items():
        assert age(then, now) == expected, then


def test_when_says_how_long_ago_or_how_far_ahead() -> None:
    now = parse_time("2026-12-01T07:00:13Z")
    assert when("2026-12-01T06:56:03Z", now) == "2026-12-01T06:56:03Z (4m10s ago)"
    assert when("2026-12-01T07:00:13Z", now) == "2026-12-01T07:00:13Z (0s ago)"
    assert when("2026-12-24T18:00:00Z", now) == "2026-12-24T18:00:00Z (in 23d)"  # a task's --at
    assert when("2026-12-01T07:00:43Z", now) == "2026-12-01T07:00:43Z (in 30s)"
    assert when("", now) == ""


# -- colours --------------------------------------------------------------------------------------


def _in_a_terminal(settings: Settings, *args: str, **env: str) -> str:
    """Run task-cli with a real pseudo-terminal of 80 columns as its output; what it wrote there."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    environment = subprocess_env(settings)
    for name in ("NO_COLOR", "COLUMNS", "FORCE_COLOR"):
        environment.pop(name, None)
    environment |= env
    process = subprocess.Popen([sys.executable, "-m", "taskservice.cli", *args], stdin=secondary,
                               stdout=secondary, stderr=secondary, env=environment)  # fmt: skip
    os.close(secondary)
    output = b""
    try:
        while select.select([primary], [], [], 60)[0]:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            output += chunk
    finally:
        process.wait(30)
        os.close(primary)
    assert process.returncode == 0, output
    return output.decode()


SGR = re.compile(r"\x1b\[[0-9;]*m")


async def test_statuses_are_coloured_on_a_terminal_only(
    api_server: ServerProcess, store: Store, settings: Settings
) -> None:
    long_name = "A task with a long name " * 4
    task_id = await _succeeded_task(store, long_name)
    args = ("--address", api_server.url, "task", "list")
    colour = _in_a_terminal(settings, *args)
    assert re.search(r"\x1b\[[0-9;]*32m" + "SUCCEEDED", colour)  # green
    plain = SGR.sub("", colour)
    lines = plain.splitlines()
    assert all(len(line) <= 80 for line in lines), plain  # fits 80 columns
    [row] = [line for line in lines if line.startswith(str(task_id))]
    assert "SUCCEEDED" in row  # the status is never cut; the name is
    assert "…" in row
    assert re.search(r"\s\d+s(\s|$)", row)  # nor the age
    assert not SGR.search(_in_a_terminal(settings, *args, NO_COLOR="1"))
    piped = ok(api_server, "task", "list")
    assert not SGR.search(piped)
    assert long_name.strip() in piped  # piped output is not cut at a guessed width


async def test_wide_never_cuts_ids_or_statuses_at_80_columns(
    api_server: ServerProcess, store: Store, settings: Settings
) -> None:
    name = "A task with a long name " * 4
    task_id, _ = await store.create_task(
        NewTask(name, "sleep", {"seconds": "300"}, description="described " * 10)
    )
    await eventually(lambda: _status_is(store, task_id, Status.RUNNING))
    try:
        wide = SGR.sub(
            "", _in_a_terminal(settings, "--address", api_server.url, "task", "list", "-o", "wide")
        )
        attempts = SGR.sub(
            "", _in_a_terminal(settings, "--address", api_server.url, "task", "attempts", "-i",
                               str(task_id), "-o", "wide")
        )  # fmt: skip
    finally:
        await store.set_status(task_id, Status.CANCELLED)
    lines = wide.splitlines()
    header = next(line for line in lines if line.startswith("ID "))
    assert header.split() == ["ID", "NAME", "TYPE", "STATUS", "RETRIES", "ATTEMPTS", "PRIORITY",
                              "CREATED", "UPDATED", "WORKER", "DESCRIPTION"]  # fmt: skip
    # The terminal wraps what does not fit; joined, the row is whole: the id, the status, the name.
    text = re.sub(r"\s+", " ", wide)
    assert re.search(rf"(^| ){task_id} {re.escape(name.strip())} sleep RUNNING ", text), wide
    assert "…" not in wide
    assert "RUNNING" in attempts or "running" in attempts
    assert "…" not in attempts


# -- end2end ----------------------------------------------------------------------------------------


def test_end2end_reports_and_exits_zero(api_server: ServerProcess) -> None:
    out = ok(api_server, "end2end", "-n", "20", "-o", "json")
    summary = json.loads(out)
    assert (summary["tasks"], summary["succeeded"], summary["failed"], summary["unfinished"]) == (
        20,
        20,
        0,
        0,
    )
    assert summary["queueToStartP50Ms"] >= 0
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]*", key) for key in summary)  # the API's lowerCamelCase


def test_end2end_progress_keeps_its_total_visible_at_80_columns(
    api_server: ServerProcess, settings: Settings
) -> None:
    out = SGR.sub("", _in_a_terminal(settings, "--address", api_server.url, "end2end", "-n", "10"))
    assert re.search(r"end2end \w+ +10/10", out)


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


# -- up ---------------------------------------------------------------------------------------------


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
    # Each worker's concurrency by its newer name: up's server (told WORKER_COUNT=0) must not see two.
    env = {k: v for k, v in env.items() if k.upper() != "WORKER_COUNT"} | {"WORKER_CONCURRENCY": "3"}
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
        banner = (tmp_path / "up.log").read_text()
        assert f"Dashboard  {address}/" in banner
        assert "Workers    2 process(es), 3 tasks each" in banner
        # The database URL for the user's own code and tools, as `task-cli db url` prints it.
        db_url = subprocess.run(
            [sys.executable, "-m", "taskservice.cli", "db", "url"],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        assert db_url.startswith("postgresql://postgres@/taskservice?host=")
        assert f"             {db_url}\n" in banner
        # The commands it suggests work as printed: the script's full path, this server's address.
        [suggested] = [line.strip() for line in banner.splitlines() if line.strip().endswith(" end2end")]
        command = [*suggested.split()[:-1], "end2end", "-n", "100", "-o", "json"]
        assert Path(command[0]).is_absolute()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["succeeded"], summary["failed"]) == (100, 0)
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
        log.close()
    text = (tmp_path / "up.log").read_text()
    assert code == 0, text
    assert text.rstrip().endswith("Stopped.")
    assert "Traceback" not in text


async def test_server_concurrency_flag_overrides_the_setting(settings: Settings, tmp_path: Path) -> None:
    """The image's `server --concurrency 0` needs no WORKER_COUNT preset to collide with a worker's."""
    server = ServerProcess(
        settings, tmp_path / "server.log", args=("--concurrency", "3"), WORKER_CONCURRENCY="4"
    )
    try:
        server.wait_ready()

        async def own_worker() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                reply = await http.post("/cloud.v1.TaskManagementService/ListWorkers", json={})
            return [w["concurrency"] for w in reply.json().get("workers", []) if w.get("alive")]

        assert await eventually(own_worker, timeout=60) == [3]
    finally:
        server.stop()
