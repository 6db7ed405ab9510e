"""The `task-cli` command group, its global flags, and the commands that run processes."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from taskservice import logs
from taskservice.config import ConfigError, Settings, get_settings


class AliasedGroup(click.Group):
    """A group whose commands may also be called by their aliases (`task s` for `task status`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}

    def add_alias(self, command: str, *aliases: str) -> None:
        for alias in aliases:
            self.aliases[alias] = command

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest


def add_alias(group: click.Group, command: str, *aliases: str) -> None:
    """Let `command` of `group` (an AliasedGroup) also be called by `aliases`."""
    assert isinstance(group, AliasedGroup)
    group.add_alias(command, *aliases)


def load_settings_or_exit() -> Settings:
    """The settings; a wrong value ends the command with one line naming the variable."""
    try:
        return get_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def run_async(coroutine: Any) -> Any:
    """Run a coroutine on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS, case_sensitive=False),
    default="error",
    show_default=True,
    help="Logging level (logs go to stderr).",
)
@click.option(
    "--address",
    default="http://127.0.0.1:8080",
    show_default=True,
    envvar="TASK_SERVICE_ADDRESS",
    help="Control plane address.",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str, address: str) -> None:
    """Task Service: create, inspect and run tasks."""
    logs.configure(log_level)
    ctx.obj = {"address": address.rstrip("/"), "log_level": log_level}


@cli.command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks run at once [default: WORKER_COUNT].",
)
@click.option(
    "--type",
    "-t",
    "task_types",
    multiple=True,
    help="Only run tasks of this type (repeatable) [default: every type].",
)
def serve(concurrency: int | None, task_types: tuple[str, ...]) -> None:
    """Run a worker: claim tasks from PostgreSQL and run them until SIGTERM or Ctrl-C."""
    from taskservice.worker.serve import serve as serve_worker

    settings = load_settings_or_exit()
    run_async(serve_worker(settings, concurrency=concurrency, task_types=task_types))


@cli.group()
def db() -> None:
    """The database schema."""


@db.command()
def upgrade() -> None:
    """Apply every pending migration (safe to run at any time, from several processes)."""
    from taskservice.db import migrate
    from taskservice.store.databases import database_url

    url = database_url(load_settings_or_exit())
    before = migrate.current_revision(url)
    migrate.upgrade(url)
    after = migrate.current_revision(url)
    if before == after:
        click.echo(f"database is up to date (revision {after})")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to {after}")


@cli.command()
@click.option("--host", default=None, help="Address to listen on [default: SERVER_HOST, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port [default: SERVER_PORT, 8080]."
)
@click.pass_context
def server(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the API server (control plane); with WORKER_COUNT > 0 it also runs tasks itself."""
    from taskservice.api.server import run_server

    settings = load_settings_or_exit()
    run_server(settings, host or settings.server_host, port or settings.server_port, ctx.obj["log_level"])


@cli.command()
@click.option("--quick", is_flag=True, help="A seconds-long smoke run with tiny sizes.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results here.")
@click.option(
    "--soak",
    "soak_minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="Instead: enqueue and drain at half the measured maximum for MINUTES, printing each minute.",
)
def bench(quick: bool, json_path: str | None, soak_minutes: float | None) -> None:
    """Measure throughput, latency, scale and memory on a fresh database (see docs/performance.md)."""
    from taskservice.bench import run_bench

    settings = load_settings_or_exit()
    if not run_async(run_bench(settings, quick=quick, json_path=json_path, soak_minutes=soak_minutes)):
        raise SystemExit(1)
