"""run_query's sandbox on the server: a low-privilege role that may connect to the sandbox database only."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from taskservice.store.sql import named_statements

# Predefined roles that would let the sandbox role reach the server's files or run programs.
DANGEROUS_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")


@cache
def _queries() -> dict[str, str]:
    return named_statements(Path(__file__).with_name("sandbox.sql"))


def statement(name: str, **identifiers: str) -> sql.Composed | sql.SQL:
    """A statement of sandbox.sql, its `{...}` identifiers quoted."""
    text = sql.SQL(_queries()[name])
    return text.format(**{k: sql.Identifier(v) for k, v in identifiers.items()}) if identifiers else text


def limit_statement_time() -> str:
    """For asyncpg: `$1` is the statement timeout in milliseconds, for this transaction only."""
    return _queries()["limit_statement_time"]


class UnsafeRole(Exception):
    """The role exists and is no sandbox (a superuser, or a member of a dangerous role)."""


def _ensure(
    conn: psycopg.Connection[Any], done: Any, do: sql.Composed | sql.SQL, params: tuple[Any, ...] = ()
) -> None:
    """Run `do` unless `done` (a query of one boolean) says it is done; safe when processes race.

    A concurrent process doing the same may make `do` fail (duplicate role, "tuple concurrently
    updated"); that failure is ignored when `done` then holds.
    """

    def is_done() -> bool:
        row = conn.execute(done, params).fetchone()
        return bool(row and row[0])

    if is_done():
        return
    try:
        conn.execute(do)
    except psycopg.Error:
        if not is_done():
            raise


def prepare_role(service: str, sandbox: str, role: str, database: str) -> None:
    """Create `role` unless it exists, and let it connect to `database` (the sandbox) only.

    `service` and `sandbox` are URLs of the service's role on its own and on the sandbox database.
    Raises psycopg.errors.InsufficientPrivilege when the service's role may not do this, and UnsafeRole
    when the role exists but is no sandbox.
    """
    # A raw cursor takes the statements' $1 placeholders (the SQL is written for asyncpg too).
    with psycopg.connect(service, autocommit=True, cursor_factory=psycopg.RawCursor) as conn:
        _ensure(conn, statement("role_exists"), statement("create_role", role=role), (role,))
        # The role may have been made (or changed) by someone else.
        row = conn.execute(statement("role_is_unsafe"), (list(DANGEROUS_ROLES), role)).fetchone()
        if row and row[0]:
            raise UnsafeRole(
                f"the role {role} is a superuser, bypasses row-level security or is a member of one of "
                f"{', '.join(DANGEROUS_ROLES)}"
            )
        grant = statement("grant_connect", database=database, role=role)
        _ensure(conn, statement("role_may_connect"), grant, (database, role))
    with psycopg.connect(sandbox, autocommit=True, cursor_factory=psycopg.RawCursor) as conn:
        _ensure(conn, statement("public_cannot_create"), statement("revoke_public_create"))
