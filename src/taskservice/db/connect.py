"""Connections to PostgreSQL: URLs of a server's other databases and users, the pool, one-off connections."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg


def with_database(url: str, name: str) -> str:
    """The same server as `url`, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def with_user(url: str, user: str) -> str:
    """The same server and database as `url`, logging in as `user` with no password.

    Only the user changes: host, port, socket directory (`?host=...`) and other options stay; a
    password, in the authority or in the query string, is dropped, as is a `user` option there.
    """
    parts = urlsplit(url)
    host_port = parts.netloc.rpartition("@")[2]
    query = parts.query
    options = parse_qsl(query, keep_blank_values=True)
    if any(key in ("user", "password") for key, _ in options):
        query = urlencode([(key, value) for key, value in options if key not in ("user", "password")])
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host_port}", query=query))


def without_password(url: str) -> str:
    """`url` fit for a log line or a banner: its password, in the authority or the query, as `***`."""
    parts = urlsplit(url)
    userinfo, at, host_port = parts.netloc.rpartition("@")
    if at and ":" in userinfo and userinfo.partition(":")[2]:
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host_port}")
    options = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in options):
        query = urlencode([(key, "***" if key == "password" else value) for key, value in options], safe="/*")
        parts = parts._replace(query=query)
    return urlunsplit(parts)


_JSONB_VERSION = b"\x01"  # jsonb's binary format: a version byte, then the JSON text


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + json.dumps(value).encode()


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    # Binary, not text: a row type holding jsonb (store/queries.sql's new_task, attempt_outcome_v2) can
    # only be sent in binary, and asyncpg uses a type's one codec everywhere.
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=lambda v: json.dumps(v).encode(), decoder=json.loads, schema="pg_catalog",
        format="binary",
    )  # fmt: skip


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Nothing to undo when a connection goes back to the pool (asyncpg still rolls back an open
    transaction): pool connections never LISTEN, SET, lock advisory locks or keep cursors, so the
    default reset (`RESET ALL; UNLISTEN *; ...`) would only cost a round trip per query."""


# Every statement of the store is written for an ordered index scan (queues, pages, lookups by key).
# On a table that was never analyzed (a fresh deployment's first burst, until autovacuum's first
# ANALYZE) the planner guesses instead: it fetched every due task through a bitmap scan and sorted
# them for each claim of 100 (5.4 ms with 20,000 due, against 0.09 ms in index order). Without bitmap
# scans it keeps the index order whatever the statistics say (tests/test_plans.py guards the plans).
SESSION_SETTINGS = {"enable_bitmapscan": "off"}


async def create_pool(
    url: str, *, max_size: int, min_size: int = 1, command_timeout: float | None = None
) -> asyncpg.Pool[Any]:
    """A pool whose connections speak JSON for json/jsonb columns and plan in index order.

    `command_timeout` (seconds) bounds each call and each new connection: a stuck database then
    raises TimeoutError within seconds rather than holding the caller for as long as it is stuck.
    """
    extra: dict[str, Any] = {}
    if command_timeout is not None:
        extra = {"command_timeout": command_timeout, "timeout": command_timeout}
    pool = await asyncpg.create_pool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=SESSION_SETTINGS,
        **extra,
    )
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection[Any]:
    """One connection outside the pool (for LISTEN)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn
