"""Where the database is (embedded PostgreSQL or a configured server) and the connection pool to it."""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg
import psycopg
from psycopg import sql

from taskservice.config import Settings
from taskservice.db import embedded

SERVICE_DATABASE = "taskservice"


def database_url(settings: Settings) -> str:
    """The service database: the configured server, else the embedded one (started or joined)."""
    configured = settings.configured_database_url
    if configured:
        return configured
    server = embedded.server_url(settings.embedded_data_dir)
    ensure_database(server, SERVICE_DATABASE)
    return with_database(server, SERVICE_DATABASE)


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


def ensure_database(url: str, name: str) -> None:
    """Create database `name` on the server of `url` unless it exists (safe when two processes race)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        # Another process may create it between our look and our CREATE.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Nothing to undo when a connection goes back to the pool (asyncpg still rolls back an open
    transaction): pool connections never LISTEN, SET, lock advisory locks or keep cursors, so the
    default reset (`RESET ALL; UNLISTEN *; ...`) would only cost a round trip per query."""


async def create_pool(
    url: str, *, max_size: int, min_size: int = 1, command_timeout: float | None = None
) -> asyncpg.Pool[Any]:
    """A pool whose connections speak JSON for json/jsonb columns.

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
        **extra,
    )
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection[Any]:
    """One connection outside the pool (for LISTEN)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn
