"""`task-cli`: the command line of taskservice. Thin: parse, call, render."""

from __future__ import annotations

from taskservice.cli import end2end, tasks, tokens, up  # noqa: F401  (they register their commands)
from taskservice.cli.main import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="task-cli")
