"""The `task-cli` processes a run starts (the API server, workers): logged, measured, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

from taskservice.api.probe import ServerExited, free_port, wait_until_ready


class BenchTimeout(Exception):
    """A wait of the benchmark took longer than its bound."""


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Await `check()` until it is true; BenchTimeout after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise BenchTimeout(f"{what}: not done within {timeout:g}s")
        await asyncio.sleep(interval)


def child_env(database_url: str, *, unset_prefix: str = "", **extra: str) -> dict[str, str]:
    """This process's environment, pointed at the benchmark's database; without the variables whose
    names start with `unset_prefix` when given (the tracing scenario's drains without OTEL_*)."""
    inherited = {k: v for k, v in os.environ.items() if not (unset_prefix and k.startswith(unset_prefix))}
    return {**inherited, "DATABASE_URL": database_url, **extra}


class Child:
    """One `task-cli` subprocess, its output in `log_path`."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        command: list[str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        # `task-cli ARGS` unless another command is given (the peer scenario's pgqueuer consumers).
        command = command or [sys.executable, "-m", "taskservice.cli", "--log-level", "warning"]
        self.process = subprocess.Popen(
            [*command, *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.peak_rss = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def read_peak_rss(self) -> int:
        """The most memory the process has held so far (VmHWM), in bytes; also kept in `peak_rss`."""
        peak = 0
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
        if not peak:  # not Linux: the current size is the best we have
            with contextlib.suppress(psutil.Error):
                peak = psutil.Process(self.pid).memory_info().rss
        self.peak_rss = max(self.peak_rss, peak)
        return self.peak_rss

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def pause(self) -> None:
        """SIGSTOP: the peer scenario holds every consumer still until the queue is full."""
        if self.alive():
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGCONT)

    def terminate(self) -> None:
        if self.alive():
            self.read_peak_rss()
            self.process.send_signal(signal.SIGTERM)
            self.process.send_signal(signal.SIGCONT)  # a paused process must wake to stop

    def reap(self, grace: float) -> None:
        """Wait for the process to end; kill it after `grace` seconds."""
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def stop_all(children: list[Child], grace: float = 15.0) -> None:
    """SIGTERM every child at once, then wait for each (SIGKILL once `grace` is over)."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        child.reap(max(deadline - time.monotonic(), 0.1))


class ServerProcess(Child):
    """`task-cli server` on a free port, running no tasks itself (WORKER_CONCURRENCY=0)."""

    def __init__(self, database_url: str, log_dir: Path, **extra: str) -> None:
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        env = child_env(database_url, WORKER_CONCURRENCY="0", WORKER_COUNT="0", **extra)
        super().__init__("server", ["server", "--port", str(self.port)], env, log_dir)

    async def wait_ready(self, timeout: float) -> None:
        try:
            await asyncio.to_thread(wait_until_ready, self.address, self.process, timeout)
        except ServerExited as error:
            raise RuntimeError(f"{error}:\n{self.tail()}") from None
        except TimeoutError:
            raise BenchTimeout(f"the API server to start: not done within {timeout:g}s") from None
