"""The command classes of `task-cli`: global flags anywhere on the line, aliases, commands loaded lazily.

The original CLI (cobra) took its global flags (`--address`, `--log-level`) before or after the
subcommand: `task-cli task list --log-level debug`. Click only knows a group's options before the
subcommand, so every command and group here carries the global options too; the innermost one given
on the line wins. Subcommands are imported only when they run, so `task-cli --help` and client
commands start without loading the server, the database layer or the worker.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_ADDRESS = "http://127.0.0.1:8080"
_GLOBALS = "taskservice.globals"
_GIVEN = "taskservice.globals.given"


def normalize_address(address: str) -> str:
    """The original's rule: an address without a scheme is plain HTTP; no trailing slash."""
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = f"http://{address}"
    return address


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a global flag's value on the root context; one given on the line beats an outer default."""
    if param.name is None:
        return value
    kept: dict[str, Any] = ctx.find_root().meta.setdefault(_GLOBALS, {})
    given: set[str] = ctx.find_root().meta.setdefault(_GIVEN, set())
    source = ctx.get_parameter_source(param.name)
    if source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
        kept[param.name] = value
        given.add(param.name)
    elif param.name not in kept:
        kept[param.name] = value
    return value


def _global_options() -> list[click.Option]:
    return [
        click.Option(
            ["--address"],
            default=DEFAULT_ADDRESS,
            show_default=True,
            envvar="TASK_SERVICE_ADDRESS",
            help="Control plane address [env: TASK_SERVICE_ADDRESS].",
            expose_value=False,
            is_eager=True,  # known to `--help`, which prints the server's task types
            callback=_remember,
        ),
        click.Option(
            ["--token"],
            default="",
            envvar="TASK_SERVICE_TOKEN",
            help="API token, sent as a bearer token [env: TASK_SERVICE_TOKEN].",
            expose_value=False,
            is_eager=True,  # known to `--help`, which prints the server's task types
            callback=_remember,
        ),
        click.Option(
            ["--log-level"],
            type=click.Choice(LOG_LEVELS, case_sensitive=False),
            default="error",
            show_default=True,
            help="Logging level (logs go to stderr).",
            expose_value=False,
            is_eager=True,  # known to `--help`, which prints the server's task types
            callback=_remember,
        ),
    ]


def global_value(ctx: click.Context, name: str) -> Any:
    """The value of the global flag `name` (address, token, log_level) for this command line."""
    value = ctx.find_root().meta.get(_GLOBALS, {}).get(name)
    if name == "address":
        return normalize_address(value or DEFAULT_ADDRESS)
    if name == "log_level":
        return (value or "error").lower()
    return value or ""


def global_given(ctx: click.Context, name: str) -> bool:
    """Whether the global flag `name` was given (on the line or by its environment variable)."""
    return name in ctx.find_root().meta.get(_GIVEN, set())


class Command(click.Command):
    """A leaf command: takes the global flags too, and sets up logging before it runs."""

    def __init__(
        self, *args: Any, structured_logs: bool = False, default_log_level: str = "error", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())
        # Commands that run the server or workers log through structlog (logs.configure); the others
        # through the standard library only, which starts much faster.
        self.structured_logs = structured_logs
        # A long-running process may say more than a client command by default (`serve`: info).
        self.default_log_level = default_log_level

    def invoke(self, ctx: click.Context) -> Any:
        given = global_given(ctx, "log_level")
        level = global_value(ctx, "log_level") if given else self.default_log_level
        if self.structured_logs:
            from taskservice import logs

            logs.configure(level)
        else:
            logging.basicConfig(
                stream=sys.stderr,
                level=level.upper(),
                format="%(asctime)s %(levelname)s %(name)s %(message)s",
            )
        return super().invoke(ctx)


@dataclass(frozen=True)
class Lazy:
    """A subcommand imported only when it runs: `module:attribute`, with the help line `--help` shows."""

    target: str
    help: str
    aliases: tuple[str, ...] = ()

    def load(self) -> click.Command:
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


class Group(click.Group):
    """A group with aliases (`task s` is `task status`), lazy subcommands and the global flags."""

    command_class = Command
    group_class = type  # subgroups are Groups too

    def __init__(self, *args: Any, lazy: dict[str, Lazy] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())
        self.lazy = dict(lazy or {})
        self.aliases: dict[str, str] = {
            alias: name for name, entry in self.lazy.items() for alias in entry.aliases
        }

    def add_alias(self, command: str, *aliases: str) -> None:
        for alias in aliases:
            self.aliases[alias] = command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = self.aliases.get(cmd_name, cmd_name)
        if name not in self.commands and name in self.lazy:
            self.add_command(self.lazy[name].load(), name)
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, from the lazy table's help lines: listing them imports nothing."""
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            entry = self.lazy.get(name)
            if entry is not None and name not in self.commands:
                help_line = entry.help
            else:
                command = self.commands[name]
                if command.hidden:
                    continue
                help_line = command.get_short_help_str(limit=formatter.width)
            aliases = sorted(alias for alias, target in self.aliases.items() if target == name)
            rows.append((name + (f" ({', '.join(aliases)})" if aliases else ""), help_line))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def add_alias(group: click.Group, command: str, *aliases: str) -> None:
    """Let `command` of `group` (a Group) also be called by `aliases`."""
    assert isinstance(group, Group)
    group.add_alias(command, *aliases)
