"""The Python client's connections: tokens and roles, and kept-alive connections the server closed."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import taskservice
from conftest import ServerProcess, serving, subprocess_env
from taskservice import TaskStatus
from taskservice.api.probe import free_port
from taskservice.auth.tokens import issue
from taskservice.client.asynchronous import AsyncClient
from taskservice.client.sync import Client
from taskservice.client.wire import CallRetry
from taskservice.config import Settings
from taskservice.db.connect import create_pool
from taskservice.store import Credentials
from test_tls import self_signed

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)


async def _tokens(database_url: str) -> dict[str, str]:
    pool = await create_pool(database_url, max_size=2)
    try:
        credentials = Credentials(pool)
        return {role: (await issue(credentials, f"client-{role}", role, 0, "tests"))[1]
                for role in ("viewer", "operator")}  # fmt: skip
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def auth_server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("client-auth")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="1", AUTH_REQUIRED="true") as s:
        yield s.url, asyncio.run(_tokens(s.settings.database_url))


def test_a_token_is_sent_and_its_role_is_enforced(auth_server: tuple[str, dict[str, str]]) -> None:
    url, tokens = auth_server
    with Client(url) as anonymous, pytest.raises(taskservice.Unauthenticated) as refused:
        anonymous.get_status()
    assert refused.value.code == "unauthenticated"
    with Client(url, token=tokens["viewer"]) as viewer:
        assert TaskStatus.QUEUED in viewer.get_status()
        with pytest.raises(taskservice.PermissionDenied):
            viewer.create_task(name="x", type="sleep")
    with Client(url, token=tokens["operator"]) as operator:
        handle = operator.create_task(name="by operator", type="sleep", parameters={"seconds": "0"})
        assert handle.wait(timeout=60) == {"slept": 0.0}  # the event stream carries the token too


async def test_the_async_client_sends_its_token(auth_server: tuple[str, dict[str, str]]) -> None:
    url, tokens = auth_server
    async with AsyncClient(url, token=tokens["operator"]) as operator:
        handle = await operator.create_task(name="async operator", type="sleep", parameters={"seconds": "0"})
        assert await handle.wait(timeout=60) == {"slept": 0.0}
    async with AsyncClient(url, token="tsk_not_a_token") as stranger:
        with pytest.raises(taskservice.Unauthenticated):
            await stranger.list_tasks()


async def test_calls_after_the_server_restarted_take_a_new_connection(
    settings: Settings, tmp_path: Path
) -> None:
    """A restart closes every kept-alive connection: the next call of any kind, a create included,
    goes through on a new one (nothing had reached the server on the old)."""
    first = ServerProcess(settings, tmp_path / "first.log", WORKER_COUNT="0")
    first.wait_ready()
    sync_client, async_client = Client(first.url), AsyncClient(first.url)
    try:
        sync_client.get_status()
        await async_client.get_status()  # both hold a kept-alive connection now
        first.stop()
        second = ServerProcess(settings, tmp_path / "second.log", port=first.port, WORKER_COUNT="0")
        try:
            second.wait_ready()
            made = sync_client.create_task(name="after restart", type="sleep")
            made_async = await async_client.create_task(name="after restart, async", type="sleep")
            assert sync_client.get_task(made.id).name == "after restart"
            assert (await async_client.get_task(made_async.id)).name == "after restart, async"
        finally:
            second.stop()
    finally:
        sync_client.close()
        await async_client.close()


@pytest.fixture
def tls_server(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    """A server process serving HTTPS with a self-signed certificate; its URL and a context trusting it."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = subprocess_env(settings, WORKER_COUNT="1", TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key))
    trusted = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskservice.cli", "server", "--port", str(port)], env=env, stdout=log,
            stderr=log,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:  # until it answers (a condition polled with a deadline)
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if httpx.get(f"{url}/readyz", verify=trusted, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the TLS server did not become ready"
                time.sleep(0.1)
            yield url, trusted
        finally:
            process.terminate()
            process.wait(30)


def test_https_with_the_servers_certificate(tls_server: tuple[str, ssl.SSLContext]) -> None:
    url, trusted = tls_server
    with Client(url, tls=trusted) as client:
        handle = client.create_task(name="over tls", type="sleep", parameters={"seconds": "0"})
        assert handle.wait(timeout=60) == {"slept": 0.0}  # the event stream over TLS too
    with (
        Client(url, retry=CallRetry(attempts=1)) as untrusting,
        pytest.raises(taskservice.Unavailable, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        untrusting.get_status()


async def test_async_https_with_the_servers_certificate(tls_server: tuple[str, ssl.SSLContext]) -> None:
    url, trusted = tls_server
    async with AsyncClient(url, tls=trusted) as client:
        handle = await client.create_task(name="over tls", type="sleep", parameters={"seconds": "0"})
        assert await handle.wait(timeout=60) == {"slept": 0.0}
    async with AsyncClient(url, retry=CallRetry(attempts=1)) as untrusting:
        with pytest.raises(taskservice.Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.get_status()
