"""`task-cli`: the command line of taskservice. Thin: parse, call, render; imports only what runs."""

from __future__ import annotations

from taskservice.cli.main import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="task-cli")
