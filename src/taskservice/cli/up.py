"""`task-cli up`: the whole system on one machine: PostgreSQL, the server with the dashboard, workers."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import click

from taskservice.cli.client import Api
from taskservice.cli.group import DEFAULT_ADDRESS, Command, global_value
from taskservice.cli.run import load_settings_or_exit
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.protocol.errors import TaskServiceError

READY_TIMEOUT = 60.0


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Children get their own process group: Ctrl-C reaches `up` alone, which stops them in order.
    return subprocess.Popen([sys.executable, "-m", "taskservice.cli", *args], env=env, start_new_session=True)


def _signal_all(children: list[subprocess.Popen[bytes]], signum: int) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signum)


def _wait_all(children: list[subprocess.Popen[bytes]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def task_cli_command() -> str:
    """How to run task-cli as this process was run: the full path of the venv's script, when there is one."""
    script = Path(sys.executable).parent / "task-cli"
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m taskservice.cli"


def _running_tasks(address: str) -> int | None:
    client = Api(address, timeout=2.0)
    try:
        counts = client.call("GetStatus", pb.GetStatusRequest(), pb.GetStatusResponse).status_counts
        return int(counts.get(pb.RUNNING, 0))
    except TaskServiceError:
        return None
    finally:
        client.close()


def _banner(address: str, workers: int, per_worker: int, embedded: bool, data_dir: Path, url: str) -> str:
    cli = task_cli_command()
    flag = "" if address == DEFAULT_ADDRESS else f" --address {address}"
    if embedded:
        database = f"embedded PostgreSQL, data in {data_dir}"
        elsewhere = (
            "Workers on other machines need a PostgreSQL they can reach; the embedded one listens on a\n"
            "local socket only. Run the server with DATABASE_URL set to a PostgreSQL server, and\n"
            "`task-cli serve` on each machine with the same DATABASE_URL."
        )
    else:
        database = "the PostgreSQL server of DATABASE_URL"
        elsewhere = "Workers on other machines: `task-cli serve` there, with the same DATABASE_URL."
    return (
        f"\ntaskservice is up.\n"
        f"  Dashboard  {address}/\n"
        f"  API        {address}/cloud.v1.TaskManagementService/<Method>\n"
        f"  Metrics    {address}/metrics\n"
        f"  Workers    {workers} process(es), {per_worker} tasks each\n"
        f"  Database   {database}\n"
        f"             {url}\n"
        f"             (for your code and tools, on this machine: `task-cli db url` prints it)\n\n"
        f"Try, in another terminal:\n"
        f"  {cli}{flag} end2end\n"
        f"  {cli}{flag} task list\n"
        f"More workers on this machine:\n"
        f"  {cli} serve\n"
        f"{elsewhere}\n"
        f"{_agents_elsewhere(cli, address)}\n\n"
        f"Press Ctrl-C to stop."
    )


def _agents_elsewhere(cli: str, address: str) -> str:
    """How to add agents on other machines: they need this server's address and a token, no database."""
    port = urlsplit(address).port
    return (
        "Agents on other machines need only this server's address, no database: start with\n"
        "`up --host 0.0.0.0` (the server then requires tokens), make an agent token here:\n"
        f"  {cli} token create --name agent --role agent\n"
        "and on each machine run:\n"
        f"  task-cli --address http://<this machine>:{port} --token <agent token> serve"
    )


def _shown_url(url: str, embedded: bool) -> str:
    """The database URL the banner shows: the embedded one's as `db url` prints it, else no password."""
    from taskservice.db.connect import without_password
    from taskservice.db.embedded import client_url

    return client_url(url) if embedded else without_password(url)


@click.command(cls=Command, structured_logs=True)
@click.option("--workers", "-w", type=click.IntRange(min=0), default=2, show_default=True,
              help="Worker processes to start.")  # fmt: skip
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Tasks each worker runs at once [default: WORKER_CONCURRENCY].")  # fmt: skip
@click.option("--host", default=None, help="Server address [default: SERVER_HOST, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Server port [default: SERVER_PORT]."
)
@click.pass_context
def up(ctx: click.Context, workers: int, concurrency: int | None, host: str | None, port: int | None) -> None:
    """Start everything here: PostgreSQL, server, dashboard, workers.

    PostgreSQL is the embedded one unless DATABASE_URL is set. Ctrl-C (or SIGTERM) stops it all
    cleanly: workers finish or put back their tasks; a second Ctrl-C puts them back at once.
    """
    from taskservice.api.probe import ServerExited, wait_until_ready
    from taskservice.db import migrate
    from taskservice.store.databases import database_url

    settings = load_settings_or_exit()
    host, port = host or settings.server_host, port or settings.server_port
    embedded = settings.configured_database_url is None
    click.echo("Starting PostgreSQL..." if embedded else "Connecting to PostgreSQL...")
    url = database_url(settings)  # this process holds the embedded server until it exits
    migrate.upgrade(url)
    # Both names of the setting: one the caller set (or a .env) must not disagree with the other.
    env = {**os.environ, "DATABASE_URL": url, "WORKER_CONCURRENCY": "0", "WORKER_COUNT": "0"}
    level = global_value(ctx, "log_level")
    server = _spawn(["--log-level", level, "server", "--host", host, "--port", str(port)], env)
    children = [server]
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # the second one: workers put their tasks back at once
            _signal_all(children[1:], signal.SIGINT)
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    address = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    try:
        try:
            wait_until_ready(address, server, READY_TIMEOUT)
        except (ServerExited, TimeoutError) as error:
            raise click.ClickException(f"{error}; see its log above") from None
        # The server runs no tasks itself (WORKER_CONCURRENCY=0 above); each worker runs this many at once.
        per_worker = concurrency or settings.worker_concurrency or 10
        worker_args = ["--log-level", level, "serve", "--concurrency", str(per_worker)]
        children += [_spawn(worker_args, env) for _ in range(workers)]
        shown = _shown_url(url, embedded)
        click.echo(_banner(address, workers, per_worker, embedded, settings.embedded_data_dir, shown))
        while not stopping:
            gone = [child for child in children if child.poll() is not None]
            if gone:
                raise click.ClickException(
                    f"process {gone[0].args!r} exited with code {gone[0].returncode}; stopping everything"
                )
            time.sleep(0.5)
        running = _running_tasks(address)
        grace = f"{settings.shutdown_grace:g} s"
        if running:
            click.echo(
                f"\nStopping: waiting up to {grace} for {running} running task(s) to finish; "
                "Ctrl-C again puts them back in the queue now..."
            )
        else:
            click.echo("\nStopping...")
    finally:
        _signal_all(children, signal.SIGTERM)
        _wait_all(children, settings.shutdown_grace + 5)
    click.echo("Stopped.")
