"""The `run_query` task type: one read-only SQL statement against a sandbox database."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import asyncpg
import psycopg

from taskservice.config import Settings, get_settings
from taskservice.db import connect
from taskservice.plugins import PermanentFailure

SANDBOX_DATABASE = "taskservice_sandbox"
FETCH_BATCH = 1000
# SQLSTATE classes of errors that are about the server's state, not the query: worth a retry.
# 08 connection exception, 40 transaction rollback, 53 insufficient resources,
# 57 operator intervention (57014 query_canceled is handled on its own), 58 system error.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


class QueryTimedOut(Exception):
    """The statement ran past QUERY_TIMEOUT; a later attempt may be quicker, so it is retried.

    Not a TimeoutError: the worker reads that as the whole attempt running out of time.
    """


JSONValue = None | bool | int | float | str | list["JSONValue"]


def _json_value(value: object) -> JSONValue:
    """A JSON-able form of one value from asyncpg: scalars as they are, arrays as lists, else str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # jsonb has no NaN or Infinity
    if isinstance(value, list | tuple | asyncpg.Record):
        return [_json_value(item) for item in value]
    if isinstance(value, bytes):
        return "\\x" + value.hex()  # as PostgreSQL writes bytea
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


class RunQuery:
    """Runs `query` in a READ ONLY transaction with a statement timeout; returns the first rows.

    The target is QUERY_DATABASE_URL, else the database `taskservice_sandbox` next to the service's own
    (created on first use). Every run has a connection of its own, so the plugin works on any event
    loop and no session state (`SET ...`) leaks from one task to the next.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._target: str | None = None

    async def run(self, parameters: dict[str, str]) -> dict[str, Any]:
        query: object = parameters.get("query")
        if not isinstance(query, str) or not query.strip():
            raise PermanentFailure("query is required: one SQL statement to run read-only")
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(await self._target_url())
        try:
            return await self._run(conn, query)
        finally:
            await conn.close()

    async def _target_url(self) -> str:
        if self._target is None:
            # database_url() may start the embedded server; ensure_database is sync psycopg.
            self._target = await asyncio.to_thread(self._resolve_target)
        return self._target

    def _resolve_target(self) -> str:
        if self.settings.query_database_url:
            return self.settings.query_database_url
        service = connect.database_url(self.settings)
        try:
            connect.ensure_database(service, SANDBOX_DATABASE)
        except psycopg.errors.InsufficientPrivilege as error:
            raise PermanentFailure(
                f"cannot create the sandbox database {SANDBOX_DATABASE!r} ({error}); "
                "create it, or set QUERY_DATABASE_URL"
            ) from None
        return connect.with_database(service, SANDBOX_DATABASE)

    async def _run(self, conn: asyncpg.Connection[asyncpg.Record], query: str) -> dict[str, Any]:
        settings = self.settings
        timeout_ms = max(1, round(settings.query_timeout * 1000))  # 0 would mean no timeout
        try:
            async with conn.transaction(readonly=True):
                # A SELECT, not SET LOCAL: it takes a snapshot, after which the transaction can no
                # longer be switched to READ WRITE (a bare `SET TRANSACTION READ WRITE` would be).
                await conn.execute("SELECT set_config('statement_timeout', $1, true)", str(timeout_ms))
                statement = await conn.prepare(query)
                columns = [attribute.name for attribute in statement.get_attributes()]
                rows: list[Sequence[JSONValue]] = []
                row_count = 0
                # A cursor keeps memory bounded: only the first rows are kept, the rest just counted.
                async for record in statement.cursor(prefetch=FETCH_BATCH):
                    row_count += 1
                    if len(rows) < settings.query_max_rows:
                        rows.append([_json_value(value) for value in record.values()])
        except asyncpg.exceptions.QueryCanceledError as error:
            raise QueryTimedOut(
                f"query canceled after QUERY_TIMEOUT={settings.query_timeout:g}s: {error}"
            ) from error
        except asyncpg.PostgresError as error:
            if str(error.sqlstate)[:2] in TRANSIENT_SQLSTATE_CLASSES:
                raise
            raise PermanentFailure(f"query failed: {error}") from None
        return {"row_count": row_count, "columns": columns, "rows": rows}
