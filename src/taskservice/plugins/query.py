"""The `run_query` task type: one read-only SQL statement against a sandbox database."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar

import asyncpg
import psycopg

from taskservice.config import Settings
from taskservice.db import connect
from taskservice.plugins import PermanentFailure, context, simulated
from taskservice.plugins.context import TaskContext
from taskservice.plugins.declare import ParameterSpec, TaskTypeSpec
from taskservice.store import databases, sandbox

SANDBOX_DATABASE = "taskservice_sandbox"
# The role run_query logs in as on the sandbox database: READ ONLY is no security boundary on its own
# (a superuser can still `COPY ... TO PROGRAM` or `pg_read_file()` in a read-only transaction).
SANDBOX_ROLE = "taskservice_sandbox"
FETCH_BATCH = 1000  # rows per fetch at most
BATCH_BYTES = 4 * 1024 * 1024  # and about this many bytes: fetches shrink when rows are large
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


def _sandbox_role_needed(role: str, detail: str) -> str:
    return (
        "run_query needs QUERY_DATABASE_URL pointing at a low-privilege role, or permission to create "
        f"the {role} role and to log in as it without a password (server said: {detail})"
    )


class RunQuery:
    """Runs `query` in a READ ONLY transaction with a statement timeout; returns the first rows.

    The target is QUERY_DATABASE_URL, else the database `taskservice_sandbox` next to the service's own
    (created on first use). Every run has a connection of its own, so the plugin works on any event
    loop and no session state (`SET ...`) leaks from one task to the next.

    A read-only transaction does not stop a privileged role from running programs or reading the
    server's files (`COPY ... TO PROGRAM`, `pg_read_file()`), so the sandbox is queried as the role
    `taskservice_sandbox`, not as the service's own (often a superuser): on first use the service
    creates that role (NOSUPERUSER, NOCREATEDB, NOCREATEROLE, NOINHERIT, NOREPLICATION, NOBYPASSRLS,
    no password) and lets it connect to the sandbox database. That needs the service's role to have
    CREATEROLE (or the role to exist already) and the server to let the role log in without a
    password from where the service runs (as the embedded server does). Otherwise set
    QUERY_DATABASE_URL. The role in QUERY_DATABASE_URL is the operator's choice and is used as it is:
    it should be a low-privilege role (not a superuser, not a member of pg_execute_server_program,
    pg_read_server_files or pg_write_server_files) that can read only what queries may see.
    """

    sandbox_role: ClassVar[str] = SANDBOX_ROLE  # the role's name; a subclass may pick another
    spec: ClassVar[TaskTypeSpec] = TaskTypeSpec(
        description="Run one read-only SQL statement against the sandbox database; returns the first rows.",
        parameters=(
            ParameterSpec(
                name="query", required=True, description="One SQL statement, run in a READ ONLY transaction."
            ),
        ),
    )

    def __init__(self, settings: Settings | None = None) -> None:
        # None: the worker's settings, from the attempt's context.
        self.settings = settings
        self._target: tuple[Settings, str] | None = None  # the target URL, for the settings it was for

    async def run(self, parameters: dict[str, str], ctx: TaskContext | None = None) -> dict[str, Any]:
        settings = context.settings_for("run_query", self.settings, ctx)
        simulated.check_real_parameters(self.spec, "run_query", parameters)
        query: object = parameters.get("query")
        if not isinstance(query, str) or not query.strip():
            raise PermanentFailure("query is required: one SQL statement to run read-only")
        target = await self._target_url(settings)
        try:
            conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(target)
        except (
            asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # 28...: no such role, bad password
            asyncpg.exceptions.InsufficientPrivilegeError,  # no CONNECT on the database
        ) as error:
            if settings.query_database_url:
                raise
            raise PermanentFailure(
                _sandbox_role_needed(self.sandbox_role, f"cannot log in as {self.sandbox_role}: {error}")
            ) from None
        try:
            return await self._run(settings, conn, query)
        finally:
            await conn.close()

    async def _target_url(self, settings: Settings) -> str:
        if self._target is None or self._target[0] is not settings:
            # database_url() may start the embedded server; ensure_database is sync psycopg.
            self._target = (settings, await asyncio.to_thread(self._resolve_target, settings))
        return self._target[1]

    def _resolve_target(self, settings: Settings) -> str:
        if settings.query_database_url:
            return settings.query_database_url
        service = databases.database_url(settings)
        try:
            databases.ensure_database(service, SANDBOX_DATABASE)
        except psycopg.errors.InsufficientPrivilege as error:
            raise PermanentFailure(
                f"cannot create the sandbox database {SANDBOX_DATABASE!r} ({error}); "
                "create it, or set QUERY_DATABASE_URL"
            ) from None
        target = connect.with_database(service, SANDBOX_DATABASE)
        try:
            sandbox.prepare_role(service, target, self.sandbox_role, SANDBOX_DATABASE)
        except psycopg.errors.InsufficientPrivilege as error:
            raise PermanentFailure(_sandbox_role_needed(self.sandbox_role, str(error))) from None
        except sandbox.UnsafeRole as error:
            raise PermanentFailure(
                f"{error}: run_query will not use it; make it an ordinary role, or set QUERY_DATABASE_URL "
                "to a low-privilege role"
            ) from None
        return connect.with_user(target, self.sandbox_role)

    async def _run(
        self, settings: Settings, conn: asyncpg.Connection[asyncpg.Record], query: str
    ) -> dict[str, Any]:
        timeout_ms = max(1, round(settings.query_timeout * 1000))  # 0 would mean no timeout
        try:
            # statement_timeout bounds each statement, but a cursor's rows come in many short
            # FETCHes: the wall-clock bound stops a query that streams for ever.
            async with asyncio.timeout(settings.query_timeout), conn.transaction(readonly=True):
                await conn.execute(sandbox.limit_statement_time(), str(timeout_ms))
                statement = await conn.prepare(query)
                columns = [attribute.name for attribute in statement.get_attributes()]
                rows, row_count, rows_cut = await self._read(settings, await statement.cursor())
        except (TimeoutError, asyncpg.exceptions.QueryCanceledError) as error:
            raise QueryTimedOut(
                f"query canceled after QUERY_TIMEOUT={settings.query_timeout:g}s: {error or 'still running'}"
            ) from error
        except asyncpg.PostgresError as error:
            if str(error.sqlstate)[:2] in TRANSIENT_SQLSTATE_CLASSES:
                raise
            raise PermanentFailure(f"query failed: {error}") from None
        result: dict[str, Any] = {"row_count": row_count, "columns": columns, "rows": rows}
        if rows_cut:
            result["rows_cut"] = True  # fewer rows kept than QUERY_MAX_ROWS: they were too large
        return result

    async def _read(self, settings: Settings, cursor: Any) -> tuple[list[Sequence[JSONValue]], int, bool]:
        """(kept rows, rows in all, whether rows were dropped for size): memory stays bounded, the first
        QUERY_MAX_ROWS rows are kept while they fit in half of MAX_RESULT_BYTES, the rest counted."""
        budget = settings.max_result_bytes // 2
        rows: list[Sequence[JSONValue]] = []
        row_count = kept_bytes = seen_bytes = 0
        rows_cut, batch = False, 1  # the first fetch tells how large rows are
        while records := await cursor.fetch(batch):
            for record in records:
                row_count += 1
                size = sum(len(v) if isinstance(v, str | bytes) else 8 for v in record.values()) + 8
                seen_bytes += size
                if len(rows) < settings.query_max_rows and not rows_cut:
                    if kept_bytes + size <= budget:
                        rows.append([_json_value(value) for value in record.values()])
                        kept_bytes += size
                    else:
                        rows_cut = True
            batch = max(1, min(FETCH_BATCH, BATCH_BYTES * row_count // max(seen_bytes, 1)))
        return rows, row_count, rows_cut
