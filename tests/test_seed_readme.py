"""Every `task-cli ...` line of the seed README, run as written against a real server.

The lines are read from the seed README itself. The only changes: the server runs on a port of the
test's own (given by TASK_SERVICE_ADDRESS, and in place of 127.0.0.1:8080 where a line names it), ids
are those of real tasks, and the syntax lines' placeholders (`[task name]`, `[flags]`) get values.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ServerProcess, eventually, subprocess_env
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

# A copy of the original Task Service's README (the project's spec), kept with the tests.
SEED_README = Path(__file__).with_name("data") / "seed-README.txt"
PLACEHOLDERS = {
    "[task name]": "'Seed task'",
    "[task type]": "sleep",
    "[key=value]": "seconds=0",
    "[flags]": "",
}


def seed_lines() -> list[str]:
    """The README's command lines that run task-cli (`./bin/task-cli` is our installed task-cli)."""
    text = SEED_README.read_text()
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if re.match(r"^(\./bin/)?task-cli\s", line)]


def test_the_seed_readme_has_the_lines_we_run() -> None:
    """So the test below cannot pass by finding nothing."""
    lines = seed_lines()
    assert len(lines) >= 20, lines
    assert "./bin/task-cli serve  --log-level debug" in lines
    assert "task-cli task list --log-level debug" in lines
    assert "./bin/task-cli task l --address http://127.0.0.1:8080" in lines


def as_run(line: str, server: ServerProcess, task_id: int) -> list[str]:
    for placeholder, value in PLACEHOLDERS.items():
        line = line.replace(placeholder, value)
    line = line.replace("[task ID]", str(task_id)).replace("--id 123", f"--id {task_id}")
    line = line.replace("http://127.0.0.1:8080", server.url)
    args = shlex.split(line)
    assert args[0] in ("task-cli", "./bin/task-cli")
    return [sys.executable, "-m", "taskservice.cli", *args[1:]]


async def _a_finished_task(store: Store) -> int:
    task_id, _ = await store.create_task(NewTask("Seed README", "sleep", {"seconds": "0"}))

    async def done() -> bool:
        return (await store.get_task(task_id)).status == Status.SUCCEEDED

    await eventually(done)
    return task_id


@pytest.mark.slow
async def test_every_seed_readme_line_runs_as_written(
    api_server: ServerProcess, store: Store, settings: Settings
) -> None:
    task_id = await _a_finished_task(store)
    env = subprocess_env(settings, TASK_SERVICE_ADDRESS=api_server.url)
    for line in seed_lines():
        args = as_run(line, api_server, task_id)
        if args[3] == "serve":
            await _runs_as_a_worker_until_stopped(args, env, store, line)
            continue
        result = await asyncio.to_thread(
            subprocess.run, args, capture_output=True, text=True, env=env, timeout=240, check=False
        )
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        assert "Traceback" not in result.stderr, line
        assert result.stdout.strip(), line
        if "--log-level debug" in line:
            assert "DEBUG" in result.stderr, line


async def _runs_as_a_worker_until_stopped(
    args: list[str], env: dict[str, str], store: Store, line: str
) -> None:
    before = len(await store.list_workers())
    worker = subprocess.Popen(  # noqa: ASYNC220 (it runs beside the test until stopped)
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:

        async def registered() -> bool:
            assert worker.poll() is None, f"{line} exited early"
            return len(await store.list_workers()) > before

        await eventually(registered, timeout=60)
        worker.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(worker.communicate, timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, f"{line}\n{output}"
    # The seed's worker is an agent of the server at TASK_SERVICE_ADDRESS. An info line: --log-level
    # debug after `serve` took effect.
    assert "agent started" in output, line
