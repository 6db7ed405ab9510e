"""`task-cli up`: the whole system on one machine: PostgreSQL, the server with the dashboard, workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import click

from taskservice.api.probe import ServerExited, wait_until_ready
from taskservice.cli.main import cli, load_settings_or_exit
from taskservice.db import migrate
from taskservice.store.databases import database_url

READY_TIMEOUT = 60.0


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Children get their own process group: Ctrl-C reaches `up` alone, which stops them in order.
    return subprocess.Popen([sys.executable, "-m", "taskservice.cli", *args], env=env, start_new_session=True)


def _stop(children: list[subprocess.Popen[bytes]], grace: float) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace + 5
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@cli.command()
@click.option("--workers", "-w", type=click.IntRange(min=0), default=2, show_default=True,
              help="Worker processes to start.")  # fmt: skip
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Tasks each worker runs at once [default: WORKER_COUNT].")  # fmt: skip
@click.option("--host", default=None, help="Server address [default: SERVER_HOST, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Server port [default: SERVER_PORT]."
)
@click.pass_context
def up(ctx: click.Context, workers: int, concurrency: int | None, host: str | None, port: int | None) -> None:
    """Start everything here: PostgreSQL (embedded unless DATABASE_URL), server, dashboard, workers.

    Ctrl-C (or SIGTERM) stops it all cleanly: workers finish or put back their tasks.
    """
    settings = load_settings_or_exit()
    host, port = host or settings.server_host, port or settings.server_port
    click.echo("Starting PostgreSQL..." if settings.configured_database_url is None else "Connecting...")
    url = database_url(settings)  # this process holds the embedded server until it exits
    migrate.upgrade(url)
    env = {**os.environ, "DATABASE_URL": url, "WORKER_COUNT": "0"}
    level = ctx.obj["log_level"]
    server = _spawn(["--log-level", level, "server", "--host", host, "--port", str(port)], env)
    children = [server]
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        address = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        try:
            wait_until_ready(address, server, READY_TIMEOUT)
        except (ServerExited, TimeoutError) as error:
            raise click.ClickException(f"{error}; see its log above") from None
        # The server runs no tasks itself (WORKER_COUNT=0 above); each worker runs this many at once.
        per_worker = concurrency or settings.worker_count or 10
        worker_args = ["--log-level", level, "serve", "--concurrency", str(per_worker)]
        children += [_spawn(worker_args, env) for _ in range(workers)]
        click.echo(
            f"\ntaskservice is up.\n"
            f"  Dashboard  {address}/\n"
            f"  API        {address}/cloud.v1.TaskManagementService/<Method>\n"
            f"  Metrics    {address}/metrics\n"
            f"  Workers    {workers} process(es), {per_worker} tasks each\n\n"
            f"Try:        task-cli --address {address} end2end\n"
            f"More workers, here or on a machine that reaches this database:\n"
            f"            DATABASE_URL='{url}' task-cli serve\n\n"
            f"Press Ctrl-C to stop."
        )
        while not stopping:
            gone = [child for child in children if child.poll() is not None]
            if gone:
                raise click.ClickException(
                    f"process {gone[0].args!r} exited with code {gone[0].returncode}; stopping everything"
                )
            time.sleep(0.5)
        click.echo("\nStopping...")
    finally:
        _stop(children, settings.shutdown_grace)
    click.echo("Stopped.")
