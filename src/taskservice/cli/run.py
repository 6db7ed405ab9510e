"""The commands that run processes: the API server, a worker, migrations and the benchmark."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import click

from taskservice.cli.group import Command, Group, global_given, global_value

if TYPE_CHECKING:
    from taskservice.config import Settings


def load_settings_or_exit() -> Settings:
    """The settings; a wrong value ends the command with one line naming the variable."""
    from taskservice.config import ConfigError, get_settings

    try:
        return get_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def traced_settings_or_exit() -> Settings:
    """The settings of a process that may trace (server, worker, agent): as load_settings_or_exit, and
    tracing configured without `taskservice[otel]` installed ends it with one line saying so."""
    from taskservice import tracing
    from taskservice.config import ConfigError

    settings = load_settings_or_exit()
    try:
        tracing.require(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    return settings


def _queue_names(values: tuple[str, ...]) -> tuple[str, ...]:
    from taskservice.cli.queues import queue_names

    return queue_names(values)


def run_async(coroutine: Any) -> Any:
    """Run a coroutine on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


@click.command(cls=Command, structured_logs=True, default_log_level="info")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks run at once [default: WORKER_CONCURRENCY].",
)
@click.option(
    "--type",
    "-t",
    "task_types",
    multiple=True,
    help="Only run tasks of this type (repeatable; one this worker's task types include) "
    "[default: every type it has].",
)
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    callback=lambda ctx, param, value: _queue_names(value),
    help="Only run tasks of this queue (repeatable, or comma-separated: a,b) [default: every queue].",
)
@click.option(
    "--import",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Import this Python module, which declares task types with @task (repeatable; also TASK_MODULES).",
)
@click.option(
    "--kubernetes",
    is_flag=True,
    help="Be the Kubernetes agent (needs --address): turn each task of a container task type into a Task "
    "resource, which `task-cli controller` runs as a Job.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    concurrency: int | None,
    task_types: tuple[str, ...],
    queues: tuple[str, ...],
    modules: tuple[str, ...],
    kubernetes: bool,
) -> None:
    """Run a worker: claim tasks and run them until SIGTERM or Ctrl-C.

    With --address (or TASK_SERVICE_ADDRESS) it is an agent: it takes work from that API server
    over its dispatch stream and reports back to it, never touching PostgreSQL (it needs only the
    address, and --token when the server requires auth: an `agent` token). Without, it claims tasks
    straight from PostgreSQL (DATABASE_URL, or the embedded one).
    """
    from taskservice.worker.errors import UnknownTaskTypes
    from taskservice.worker.serve import TaskModuleError
    from taskservice.worker.supervisor import HelperDied

    settings = traced_settings_or_exit()
    if kubernetes:
        _serve_kubernetes(ctx, settings, concurrency, task_types, queues, modules)
        return
    try:
        if global_given(ctx, "address"):
            from taskservice.worker.serve import serve_agent

            address, token = global_value(ctx, "address"), global_value(ctx, "token")
            run_async(
                serve_agent(
                    settings, address, token, concurrency=concurrency, task_types=task_types,
                    modules=modules, queues=queues,
                )
            )  # fmt: skip
        else:
            from taskservice.worker.serve import serve as serve_worker

            run_async(
                serve_worker(
                    settings, concurrency=concurrency, task_types=task_types, modules=modules, queues=queues
                )
            )
    except (TaskModuleError, UnknownTaskTypes) as error:
        raise click.ClickException(str(error)) from None
    except HelperDied as error:
        raise click.ClickException(f"the worker stopped: {error}") from None


def _serve_kubernetes(
    ctx: click.Context,
    settings: Settings,
    concurrency: int | None,
    task_types: tuple[str, ...],
    queues: tuple[str, ...],
    modules: tuple[str, ...],
) -> None:
    """`serve --kubernetes`: the Kubernetes agent, serving the container task types it declares."""
    if not global_given(ctx, "address"):
        raise click.UsageError("--kubernetes needs --address (or TASK_SERVICE_ADDRESS): the API server")
    if queues:
        raise click.UsageError("--queue is not supported with --kubernetes")
    from taskservice.kubernetes import KubernetesMissing, NoCluster
    from taskservice.kubernetes.serve import NoContainerTypes, serve_kubernetes_agent, served_declarations
    from taskservice.plugins import Registry
    from taskservice.plugins.container_types import ContainerTypesFileError
    from taskservice.worker.serve import TaskModuleError, import_task_modules
    from taskservice.worker.supervisor import HelperDied

    try:
        import_task_modules([*settings.task_module_names, *modules])
        declarations = served_declarations(settings, Registry())
        unknown = sorted(set(task_types) - set(declarations))
        if unknown:
            known = ", ".join(sorted(declarations)) or "none"
            raise click.UsageError(
                f"--type {', '.join(unknown)}: not a container task type here (these are: {known})"
            )
        if task_types:
            declarations = {name: declarations[name] for name in task_types}
        address, token = global_value(ctx, "address"), global_value(ctx, "token")
        run_async(serve_kubernetes_agent(settings, address, token, declarations, concurrency))
    except (
        KubernetesMissing,
        NoCluster,
        NoContainerTypes,
        TaskModuleError,
        ContainerTypesFileError,
    ) as error:
        raise click.ClickException(str(error)) from None
    except HelperDied as error:
        raise click.ClickException(f"the agent stopped: {error}") from None


@click.command(cls=Command, structured_logs=True, default_log_level="info")
@click.pass_context
def controller(ctx: click.Context) -> None:
    """Run the Kubernetes controller: run each Task resource as a Job and report how it ended.

    It reports to the API server at --address (or TASK_SERVICE_ADDRESS) with --token, the Kubernetes
    agent's token (it speaks in the agent's name). Its namespace: TASK_KUBERNETES_NAMESPACE, else its
    Pod's. Several replicas elect one leader (a Lease named taskservice-controller); the others wait.
    """
    from taskservice.kubernetes import KubernetesMissing, NoCluster
    from taskservice.kubernetes.serve import ControllerStopped, run_controller

    settings = load_settings_or_exit()
    try:
        run_controller(settings, global_value(ctx, "address"), global_value(ctx, "token"))
    except (KubernetesMissing, NoCluster, ControllerStopped) as error:
        raise click.ClickException(str(error)) from None


@click.group(cls=Group)
def db() -> None:
    """The database: its URL (`db url`) and its schema (`db upgrade`)."""


def _upgrade() -> None:
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


@db.command(structured_logs=True)
def upgrade() -> None:
    """Apply every pending migration to DATABASE_URL, else the embedded PostgreSQL.

    Safe to run at any time, from several processes; the server and workers also do it at start.
    """
    _upgrade()


@click.command(cls=Command, structured_logs=True)
def migrate() -> None:
    """Create or upgrade the schema of DATABASE_URL, else the embedded PostgreSQL.

    The same as `db upgrade`. Run it before your own code enqueues tasks (taskservice.enqueue) on a
    database no server or worker has started on yet.
    """
    _upgrade()


@db.command(structured_logs=True)
def url() -> None:
    """Print the database URL the server and workers use (DATABASE_URL, else the embedded one's).

    For your own code and tools: psycopg, asyncpg and psql take it as printed; SQLAlchemy wants its
    driver in the scheme (postgresql+psycopg://..., postgresql+asyncpg://...). The embedded
    PostgreSQL listens on a local socket of this machine, while `task-cli up` (or a server or worker
    using it) runs.
    """
    from taskservice.db import embedded
    from taskservice.store.databases import database_url

    settings = load_settings_or_exit()
    configured = settings.configured_database_url
    if configured:
        click.echo(configured)
        return
    if embedded.running_pid(settings.embedded_data_dir) is None:
        raise click.ClickException(
            f"the embedded PostgreSQL ({settings.embedded_data_dir}) is not running: it runs while "
            "`task-cli up`, or a server or worker using it, does; start one and ask again"
        )
    click.echo(embedded.client_url(database_url(settings)))


@click.command(cls=Command, structured_logs=True)
@click.option("--host", default=None, help="Address to listen on [default: SERVER_HOST, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port [default: SERVER_PORT, 8080]."
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(0, 10_000),
    default=None,
    help="Tasks the server runs itself at once; 0: none [default: WORKER_CONCURRENCY].",
)
@click.pass_context
def server(ctx: click.Context, host: str | None, port: int | None, concurrency: int | None) -> None:
    """Run the API server (control plane) and the dashboard.

    With WORKER_CONCURRENCY (or --concurrency) > 0 it also runs tasks itself. The modules of TASK_MODULES
    are imported, so the server knows their task types' declarations and its own workers run them.
    """
    from taskservice.api.server import run_server
    from taskservice.auth.exposure import InsecureRefused
    from taskservice.worker.serve import TaskModuleError, import_task_modules

    settings = traced_settings_or_exit()
    if concurrency is not None:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
    host, port = host or settings.server_host, port or settings.server_port
    try:
        import_task_modules(settings.task_module_names)
        run_server(settings, host, port, global_value(ctx, "log_level"))
    except (InsecureRefused, TaskModuleError) as error:
        raise click.ClickException(str(error)) from None


@click.command(cls=Command, structured_logs=True)
@click.option("--quick", is_flag=True, help="A seconds-long smoke run with tiny sizes.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results here.")
@click.option(
    "--soak",
    "soak_minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="Instead: enqueue and drain at half the measured maximum for MINUTES, printing each minute.",
)
def bench(quick: bool, json_path: str | None, soak_minutes: float | None) -> None:
    """Measure throughput, latency, scale and memory on a fresh database.

    Every figure is shown beside a minimal SQL loop doing the same work in the same run, and our drain
    beside pgqueuer's when it is installed (see docs/performance.md).
    """
    from taskservice.bench import run_bench

    settings = load_settings_or_exit()
    if not run_async(run_bench(settings, quick=quick, json_path=json_path, soak_minutes=soak_minutes)):
        raise SystemExit(1)
