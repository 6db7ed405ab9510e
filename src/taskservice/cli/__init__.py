"""`task-cli`: the command line of taskservice. Thin: parse, call, render."""

from __future__ import annotations

from taskservice.cli import tasks  # noqa: F401  (registers the task commands)
from taskservice.cli.main import cli


def main() -> None:
    cli(prog_name="task-cli")
