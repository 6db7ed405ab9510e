"""AUTH_CACHE_SECONDS: credentials kept a while, forgotten at every revocation or logout, anywhere."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import ServerProcess, eventually
from taskservice.auth.cache import CredentialCache
from taskservice.auth.tokens import issue
from taskservice.config import Settings
from taskservice.db.connect import create_pool
from taskservice.store import CREDENTIALS_CHANNEL, Credentials, Holder, Pool

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

NOW = datetime(2026, 12, 1, 7, 0, 13, tzinfo=UTC)
ALICE = Holder("alice", "viewer", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache(ttl: float = 60.0) -> tuple[CredentialCache, Clock]:
    clock = Clock()
    kept = CredentialCache(ttl, max_entries=2, clock=clock, wall_clock=lambda: NOW)
    kept.heard()  # the invalidation line is connected
    return kept, clock


def test_a_holder_is_kept_for_the_ttl_then_looked_up_again() -> None:
    kept, clock = cache()
    kept.keep(b"a", ALICE, kept.generation())
    assert kept.get(b"a") == ALICE
    clock.now = 59.9
    assert kept.get(b"a") == ALICE
    clock.now = 60.0
    assert kept.get(b"a") is None


def test_never_past_the_tokens_own_expiry() -> None:
    kept, _ = cache()
    kept.keep(b"a", Holder("bob", "viewer", 2, NOW), kept.generation())
    assert kept.get(b"a") is None
    kept.keep(b"b", Holder("bob", "viewer", 2, NOW + timedelta(seconds=1)), kept.generation())
    assert kept.get(b"b") is not None


def test_a_revocation_heard_forgets_everything_and_a_lookup_begun_before_it_is_not_kept() -> None:
    kept, _ = cache()
    kept.keep(b"a", ALICE, kept.generation())
    before = kept.generation()  # a lookup starts...
    kept.heard()  # ...a token is revoked somewhere...
    kept.keep(b"b", ALICE, before)  # ...and its (maybe stale) answer comes back
    assert kept.get(b"a") is None
    assert kept.get(b"b") is None


def test_nothing_is_kept_while_the_line_is_down_or_with_no_ttl() -> None:
    kept, _ = cache()
    kept.keep(b"a", ALICE, kept.generation())
    kept.lost()
    assert kept.get(b"a") is None
    kept.keep(b"a", ALICE, kept.generation())
    assert kept.get(b"a") is None
    kept.heard()
    kept.keep(b"a", ALICE, kept.generation())
    assert kept.get(b"a") == ALICE
    off, _ = cache(ttl=0)
    off.keep(b"a", ALICE, off.generation())
    assert off.get(b"a") is None


def test_the_oldest_go_first_past_the_limit() -> None:
    kept, _ = cache()
    for key in (b"a", b"b", b"c"):
        kept.keep(key, ALICE, kept.generation())
    assert (kept.get(b"a"), kept.get(b"b"), kept.get(b"c")) == (None, ALICE, ALICE)


async def _viewer_token(database_url: str) -> str:
    pool = await create_pool(database_url, max_size=1)
    try:
        _, secret = await issue(Credentials(pool), "cached-viewer", "viewer", 0, "tests")
        return secret
    finally:
        await pool.close()


async def test_a_server_with_a_cache_forgets_a_token_when_a_revocation_is_announced(
    settings: Settings, tmp_path: Path
) -> None:
    secret = await _viewer_token(settings.database_url)
    server = ServerProcess(
        settings, tmp_path / "cached.log", WORKER_COUNT="0", AUTH_REQUIRED="true", AUTH_CACHE_SECONDS="3600"
    )
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(timeout=30) as http:
            status = f"{server.url}/cloud.v1.TaskManagementService/GetStatus"
            viewer = {"Authorization": f"Bearer {secret}"}

            async def answer() -> int:
                return (await http.post(status, json={}, headers=viewer)).status_code

            # Kept once its line is listening (it connects as the server starts).
            await eventually(lambda: _listening(pool))
            assert await answer() == 200
            # Revoked behind the server's back, without the announcement: the kept answer is used...
            await pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'cached-viewer'")
            assert await answer() == 200
            # ...until a revocation is announced, as every revoke and logout does.
            await pool.execute("SELECT pg_notify($1, '')", CREDENTIALS_CHANNEL)

            async def refused() -> bool:
                return await answer() == 401

            await eventually(refused, timeout=10)
    finally:
        await pool.close()
        server.stop()


async def _listening(pool: Pool) -> bool:
    count = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %'"
    )
    return bool(count)
