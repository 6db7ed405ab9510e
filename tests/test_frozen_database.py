"""A frozen PostgreSQL (SIGSTOP) against a real server process: every call answers in time, then it recovers.

The PostgreSQL frozen here is an embedded one of this test's own, never the shared test server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from conftest import ServerProcess, eventually
from taskservice.config import Settings
from taskservice.db import embedded

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
COMMAND_TIMEOUT = 3.0
MARGIN = 2.0  # the server's own work and this machine's load, beside the deadline
CALLS: list[tuple[str, dict[str, object]]] = [
    ("GetStatus", {}),
    ("ListTasks", {"limit": 5}),
    ("GetTask", {"id": 1}),
    ("CreateTask", {"name": "frozen", "type": "sleep", "payload": {"parameters": {}}}),
] * 6  # more calls than the pool has connections: some wait for one


@pytest.fixture
def own_database_server(
    settings: Settings, tmp_path: Path, short_tmp: Path
) -> Iterator[tuple[ServerProcess, Path]]:
    """A server process on an embedded PostgreSQL of its own, with a short deadline and a small pool."""
    data_dir = short_tmp / "pgdata"
    server = ServerProcess(
        settings, tmp_path / "server.log",
        DATABASE_URL="", EMBEDDED_DATA_DIR=str(data_dir), WORKER_COUNT="0",
        DB_COMMAND_TIMEOUT=str(COMMAND_TIMEOUT), DB_POOL_MAX_CONNS="3",
    )  # fmt: skip
    try:
        server.wait_ready(timeout=120)
        yield server, data_dir
    finally:
        server.stop()
        pid = embedded.running_pid(data_dir)  # normally stopped by the server as it left; else now
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                os.kill(pid, signal.SIGINT)  # a fast shutdown, of this test's own PostgreSQL
                psutil.Process(pid).wait(60)


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The postmaster of `data_dir` and its children (backends and helpers)."""
    pid = embedded.running_pid(data_dir)
    assert pid is not None, f"no PostgreSQL runs in {data_dir}"
    postmaster = psutil.Process(pid)
    assert Path(postmaster.cwd()).resolve() == data_dir.resolve()  # ours, never the shared server
    return [postmaster, *postmaster.children(recursive=True)]


async def timed_call(http: httpx.AsyncClient, method: str, body: dict[str, object]) -> tuple[float, int, str]:
    started = time.monotonic()
    reply = await http.post(f"{SERVICE}/{method}", json=body)
    code = reply.json().get("code", "ok") if reply.status_code != 200 else "ok"
    return time.monotonic() - started, reply.status_code, code


async def test_every_call_answers_unavailable_in_time_while_postgres_is_frozen(
    own_database_server: tuple[ServerProcess, Path],
) -> None:
    server, data_dir = own_database_server
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        assert (await http.post(f"{SERVICE}/GetStatus", json={})).status_code == 200
        frozen = postgres_processes(data_dir)
        try:
            for process in frozen:
                os.kill(process.pid, signal.SIGSTOP)
            for _ in range(2):  # a first wave, then another while the first's work still hangs
                results = await asyncio.gather(*(timed_call(http, m, b) for m, b in CALLS))
                for (method, _), (seconds, status, code) in zip(CALLS, results, strict=True):
                    assert (status, code) == (503, "unavailable"), (method, status, code)
                    assert seconds < COMMAND_TIMEOUT + MARGIN, (method, seconds)
        finally:
            for process in frozen:
                with contextlib.suppress(psutil.NoSuchProcess):
                    os.kill(process.pid, signal.SIGCONT)

        async def serves_again() -> bool:
            reply = await http.post(f"{SERVICE}/GetStatus", json={})
            return reply.status_code == 200

        await eventually(serves_again, timeout=60)
    assert "Traceback" not in server.log()
