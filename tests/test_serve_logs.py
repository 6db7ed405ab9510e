"""What `task-cli serve` says: what it is, what it runs, where it connects, when it stops; one format."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually, subprocess_env
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

# structlog's console lines: an ISO time in UTC, the level in brackets, the event.
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[(debug|info|warning|error) *\] \S")
# What HTTP and event-loop libraries say about their internals at debug.
INTERNALS = ("httpx", "httpcore", "h11", "asyncio", "Using selector", "connect_tcp", "send_request_headers")


def _with_password(url: str, password: str) -> str:
    """`url` with a password (the test servers trust their clients: it is sent and not needed)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0].partition(":")[0] or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc.rpartition('@')[2]}"))


async def _runs_one_task(store: Store) -> None:
    task_id, _ = await store.create_task(NewTask("logged", "sleep", {"seconds": "0"}))

    async def done() -> bool:
        return (await store.get_task(task_id)).status == Status.SUCCEEDED

    await eventually(done, timeout=60)


def _lines(process: AgentProcess) -> list[str]:
    text = process.log()
    lines = text.splitlines()
    assert lines, text
    assert all(LINE.match(line) for line in lines), text  # one format: structlog's and stdlib's alike
    for internal in INTERNALS:
        assert internal not in text, text
    return lines


def _about_the_worker(lines: list[str]) -> list[str]:
    """Without the warning a worker gives at start on a server whose autovacuum is off (the PostgreSQL
    15 test server's is: tests/test_maintenance.py checks it), which depends on the server."""
    return [line for line in lines if "autovacuum does not vacuum" not in line]


@pytest.mark.parametrize("level", ["default", "debug"])
async def test_a_worker_says_what_it_is_runs_and_connects_to(
    store: Store, settings: Settings, tmp_path: Path, level: str
) -> None:
    url = _with_password(settings.database_url, "s3cret-pw")
    flags = [] if level == "default" else ["--log-level", "debug"]
    worker = AgentProcess(
        [sys.executable, "-m", "taskservice.cli", "serve", "-c", "3", *flags],
        subprocess_env(settings, DATABASE_URL=url),
        tmp_path / "worker.log",
    )
    try:
        await _runs_one_task(store)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()
    lines = _lines(worker)
    [started] = [line for line in lines if "worker started" in line]
    assert re.search("database='?" + re.escape(url.replace(":s3cret-pw@", ":***@")), started), started
    assert "s3cret-pw" not in worker.log()
    assert "runs='run_query, send_email, sleep'" in started
    assert "concurrency=3" in started
    assert any("worker stopping: SIGTERM" in line for line in lines)
    assert "worker stopped" in lines[-1]
    debug = [line for line in lines if "[debug" in line]
    if level == "default":
        assert debug == []
        assert len(_about_the_worker(lines)) == 3, lines  # started, stopping, stopped: no line per task
    else:
        assert any("task started" in line for line in debug), lines


async def test_a_worker_logs_one_line_per_failed_attempt_at_its_default_level(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """What a developer reads first when a task fails: the attempt, its task and the exception's one
    line (issue 18), at `serve`'s default level, one line per failed attempt and none per success."""
    worker = AgentProcess(
        [sys.executable, "-m", "taskservice.cli", "serve", "-t", "sleep"],
        subprocess_env(settings),
        tmp_path / "worker.log",
    )
    try:
        task_id, _ = await store.create_task(
            NewTask("doomed", "sleep", {"seconds": "0", "fail_rate": "1"}, max_retries=1)
        )

        async def failed() -> bool:
            return (await store.get_task(task_id)).status == Status.FAILED

        await eventually(failed, timeout=60)
        await _runs_one_task(store)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()
    lines = _lines(worker)
    failures = [line for line in lines if "task attempt failed" in line or "task failed" in line]
    assert len(failures) == 2, lines  # the first attempt (retrying), the last (failed for good)
    assert "[info" in failures[0], failures
    assert "retrying" in failures[0], failures
    assert "[warning" in failures[1], failures
    for line in failures:
        assert f"task_id={task_id}" in line, line
        assert "RuntimeError: simulated failure (fail_rate=1)" in line, line
    assert len(_about_the_worker(lines)) == 5, lines  # started, two failed attempts, stopping, stopped


@pytest.mark.parametrize("level", ["default", "debug"])
async def test_an_agent_says_what_it_is_runs_and_connects_to(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path, level: str
) -> None:
    flags = [] if level == "default" else ["--log-level", "debug"]
    agent = AgentProcess(
        [
            sys.executable,
            "-m",
            "taskservice.cli",
            "--address",
            workerless_server.url,
            "serve",
            "-t",
            "sleep",
            *flags,
        ],
        agent_env(settings),
        tmp_path / "agent.log",
    )
    try:
        await _runs_one_task(store)
    finally:
        code = agent.stop()
    assert code == 0, agent.log()
    lines = _lines(agent)
    [started] = [line for line in lines if "agent started" in line]
    assert f"server={workerless_server.url}" in started
    assert "runs=sleep" in started
    assert "database" not in started
    assert any("agent stopping: SIGTERM" in line for line in lines)
    assert "agent stopped" in lines[-1]
    if level == "debug":
        assert any("[debug" in line and "task started" in line for line in lines), lines
    else:
        assert not any("[debug" in line for line in lines), lines


async def test_an_agent_whose_token_is_not_checked_says_so_once(
    workerless_server: ServerProcess, store: Store, settings: Settings, tmp_path: Path
) -> None:
    agent = AgentProcess(
        [
            sys.executable,
            "-m",
            "taskservice.cli",
            "--address",
            workerless_server.url,
            "--token",
            "tsk_x",
            "serve",
        ],
        agent_env(settings),
        tmp_path / "agent.log",
    )
    try:
        await _runs_one_task(store)
        await _runs_one_task(store)
    finally:
        code = agent.stop()
    assert code == 0, agent.log()
    told = [line for line in _lines(agent) if "the token was not checked" in line]
    assert len(told) == 1, agent.log()
    assert f"the server at {workerless_server.url} runs with auth off" in told[0]
    assert "[warning" in told[0]
