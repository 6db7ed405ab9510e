"""What the agent tests share: a server without workers of its own, and agent processes beside it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from conftest import ServerProcess, subprocess_env
from taskservice.config import Settings

# An agent never connects to PostgreSQL: give it an address where nothing answers, to be sure.
NO_DATABASE = "postgresql://nobody:nothing@127.0.0.1:9/nowhere"
GATED_AGENT = str(Path(__file__).with_name("gated_agent.py"))


def agent_env(settings: Settings, gate_dir: Path | None = None, **extra: str) -> dict[str, str]:
    env = subprocess_env(settings, DATABASE_URL=NO_DATABASE, **extra)
    if gate_dir is not None:
        env["GATE_DIR"] = str(gate_dir)
    return env


class AgentProcess:
    """An agent process (`task-cli serve --address`, or the gated one; or the gated direct worker)
    with its log in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @classmethod
    def cli(cls, server: ServerProcess, env: dict[str, str], log_path: Path, *options: str) -> AgentProcess:
        args = [sys.executable, "-m", "taskservice.cli", "--log-level", "info", "--address", server.url]
        return cls([*args, "serve", *options], env, log_path)

    @classmethod
    def gated(cls, address: str, env: dict[str, str], log_path: Path, token: str = "") -> AgentProcess:
        return cls([sys.executable, GATED_AGENT, address, *([token] if token else [])], env, log_path)

    @classmethod
    def gated_worker(cls, env: dict[str, str], log_path: Path) -> AgentProcess:
        """A direct worker (PostgreSQL at DATABASE_URL) with the gated agent's task types."""
        return cls([sys.executable, GATED_AGENT, "--worker"], env, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


def wake_and_stop(paused: AgentProcess, other: AgentProcess | None) -> None:
    """The end of a pause test: wake the paused process (SIGCONT) and stop it and the one that took
    over (if started); each must exit cleanly."""
    paused.process.send_signal(signal.SIGCONT)
    assert paused.stop() == 0, paused.log()
    if other is not None:
        assert other.stop() == 0, other.log()
