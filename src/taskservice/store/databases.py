"""Which database the service uses (a configured server, else the embedded one), and creating one."""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql

from taskservice.config import Settings
from taskservice.db import embedded
from taskservice.db.connect import with_database
from taskservice.store.sql import query

SERVICE_DATABASE = "taskservice"


def database_url(settings: Settings) -> str:
    """The service database: the configured server, else the embedded one (started or joined)."""
    configured = settings.configured_database_url
    if configured:
        return configured
    server = embedded.server_url(settings.embedded_data_dir)
    ensure_database(server, SERVICE_DATABASE)
    return with_database(server, SERVICE_DATABASE)


def ensure_database(url: str, name: str) -> None:
    """Create database `name` on the server of `url` unless it exists (safe when two processes race)."""
    # A raw cursor takes the statements' own $1 placeholders (queries.sql is written for asyncpg).
    with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.RawCursor) as conn:
        if conn.execute(query("database_exists"), (name,)).fetchone():
            return
        # Another process may create it between our look and our CREATE.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL(query("create_database")).format(name=sql.Identifier(name)))
