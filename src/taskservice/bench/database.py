"""The benchmark's own database: created fresh on the configured or embedded server, dropped at the end."""

from __future__ import annotations

import os
import uuid
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from taskservice.config import Settings
from taskservice.db import migrate
from taskservice.db.connect import with_database
from taskservice.store.databases import database_url, ensure_database


class DatabaseUnavailable(Exception):
    """The benchmark cannot make its database; the message says why and what to do."""


class BenchDatabase:
    """`with BenchDatabase(settings) as db:` a migrated database `db.url` of this run's own.

    The server is DATABASE_URL's when set, else the embedded PostgreSQL (started if needed).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = f"taskservice_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.embedded = not settings.configured_database_url
        self.admin_url = ""
        self.url = ""

    def __enter__(self) -> BenchDatabase:
        try:
            self.admin_url = database_url(self.settings)
            ensure_database(self.admin_url, self.name)
        except psycopg.Error as error:
            raise DatabaseUnavailable(
                f"cannot create the benchmark's database: {error}\n"
                "It needs a server where it may CREATE DATABASE: DATABASE_URL with a role that has "
                "CREATEDB, or no DATABASE_URL for the embedded PostgreSQL."
            ) from None
        self.url = with_database(self.admin_url, self.name)
        try:
            migrate.upgrade(self.url)
        except BaseException:
            self.drop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.drop()

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def server_facts(self) -> dict[str, Any]:
        """What the figures depend on: the server's version and durability settings."""
        names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections")
        with psycopg.connect(self.url) as conn:
            values = [conn.execute("SELECT current_setting(%s)", (n,)).fetchone() for n in names]
        facts: dict[str, Any] = {n: (v[0] if v else None) for n, v in zip(names, values, strict=True)}
        facts["embedded"] = self.embedded
        return facts
