"""API tokens and dashboard sessions in PostgreSQL, found by the SHA-256 of their secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import asyncpg

from taskservice.store.sql import named_statements
from taskservice.store.store import Pool


@cache
def _queries() -> dict[str, str]:
    return named_statements(Path(__file__).parent / "auth.sql")


def _query(name: str) -> str:
    return _queries()[name]


class TokenNameTaken(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a token named {name!r} exists already; revoke it first or pick another name")
        self.name = name


class TokenNotFound(LookupError):
    def __init__(self, which: str) -> None:
        super().__init__(f"no live token {which}")


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    role: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


# Revoked tokens and ended sessions are announced here, at commit, to every server (auth/cache.py).
CREDENTIALS_CHANNEL = "taskservice_credentials"


@dataclass(frozen=True)
class Holder:
    """Who a secret belongs to: a token (`token_id` set) or a dashboard session; valid until `expires_at`."""

    name: str
    role: str
    token_id: int | None = None
    expires_at: datetime | None = None


class Credentials:
    """The tokens and sessions of the service; every replica reads the same rows."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def create_token(
        self, name: str, role: str, secret_hash: bytes, created_by: str, expires_in_seconds: float
    ) -> TokenRecord:
        try:
            row = await self.pool.fetchrow(
                _query("create_token"), name, role, secret_hash, created_by, expires_in_seconds
            )
        except asyncpg.UniqueViolationError as error:
            if "name" in str(error.constraint_name):
                raise TokenNameTaken(name) from None
            raise
        assert row is not None
        return TokenRecord(**dict(row))

    async def token_holder(self, secret_hash: bytes) -> Holder | None:
        row = await self.pool.fetchrow(_query("token_by_secret"), secret_hash)
        return None if row is None else Holder(row["name"], row["role"], row["id"], row["expires_at"])

    async def list_tokens(self, limit: int = 1000) -> list[TokenRecord]:
        return [TokenRecord(**dict(row)) for row in await self.pool.fetch(_query("list_tokens"), limit)]

    async def revoke_token(self, *, name: str = "", token_id: int = 0) -> TokenRecord:
        row = await self.pool.fetchrow(
            _query("revoke_token"), name or None, token_id or None, CREDENTIALS_CHANNEL
        )
        if row is None:
            raise TokenNotFound(f"named {name!r}" if name else f"with id {token_id}")
        return TokenRecord(**{k: v for k, v in row.items() if k != "_"})

    async def live_tokens(self, role: str | None = None) -> int:
        return int(await self.pool.fetchval(_query("live_token_count"), role))

    async def create_session(self, secret_hash: bytes, subject: str, role: str, seconds: float) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_query("delete_expired_sessions"))
            await conn.execute(_query("create_session"), secret_hash, subject, role, seconds)

    async def session_holder(self, secret_hash: bytes) -> Holder | None:
        row = await self.pool.fetchrow(_query("session_by_secret"), secret_hash)
        return None if row is None else Holder(row["subject"], row["role"], None, row["expires_at"])

    async def delete_session(self, secret_hash: bytes) -> None:
        await self.pool.execute(_query("delete_session"), secret_hash, CREDENTIALS_CHANNEL)
