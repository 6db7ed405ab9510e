"""Vacuum of our hot tables: what autovacuum would do for them, and a VACUUM of one under a lock."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from taskservice.db.connect import connect
from taskservice.store.retention import LOCK_KEY
from taskservice.store.sql import query

if TYPE_CHECKING:
    from taskservice.store.store import Pool

# The tables the drain writes over and over (claim_tasks, claim_limited, finish_attempts, the count
# triggers, heartbeats) and retention deletes from: each update or delete leaves a dead row version.
# The only names a VACUUM is ever given (vacuum_table): never one from input.
HOT_TABLES = (
    "tasks",
    "task_executions",
    "task_history",
    "task_counts",
    "workers",
    "task_limits",
    "task_limit_keys",
)


@dataclass(frozen=True)
class TableVacuum:
    """One of our tables as autovacuum sees it."""

    table: str
    dead: int  # dead tuples (pg_stat_user_tables.n_dead_tup)
    autovacuum_at: float  # the dead tuples autovacuum vacuums it at (its threshold formula)
    autovacuum_enabled: bool  # the table's autovacuum_enabled storage parameter
    last_vacuum: datetime | None  # by autovacuum or anyone
    vacuuming: bool  # a VACUUM runs on it now


@dataclass(frozen=True)
class VacuumState:
    """The server's autovacuum switches and our hot tables' dead tuples, read at one time."""

    autovacuum: bool  # the server's `autovacuum` setting
    track_counts: bool  # without it, nothing is counted and autovacuum never acts
    naptime: float  # seconds between autovacuum's visits of a database
    tables: tuple[TableVacuum, ...]

    def autovacuum_runs_on(self, table: TableVacuum) -> bool:
        """Whether autovacuum would vacuum `table` at all."""
        return self.autovacuum and self.track_counts and table.autovacuum_enabled

    def warnings(self) -> list[str]:
        """What keeps autovacuum from vacuuming our tables, one sentence each (none: it does)."""
        found = []
        if not self.autovacuum:
            found.append("autovacuum is off for the server (autovacuum = off)")
        if not self.track_counts:
            found.append("track_counts is off: no dead tuples are counted, and autovacuum never acts")
        off = [t.table for t in self.tables if not t.autovacuum_enabled]
        if off:
            found.append(f"autovacuum is off for table(s) {', '.join(off)} (autovacuum_enabled = false)")
        return found


@dataclass(frozen=True)
class VacuumLimits:
    """How hard one VACUUM of the maintenance job may work: throttled as autovacuum is, and bounded."""

    cost_delay_ms: float = 2.0
    cost_limit: int = 2000
    timeout_seconds: float = 600.0


@dataclass(frozen=True)
class Vacuumed:
    """One VACUUM the maintenance job ran: of which table, with how many dead tuples before and after
    it, how long it took, and whether it finished (False: stopped by its statement_timeout)."""

    table: str
    dead_before: int
    dead_after: int
    seconds: float
    finished: bool


async def vacuum_state(pool: Pool) -> VacuumState:
    """The server's autovacuum switches and each of HOT_TABLES as autovacuum sees it."""
    async with pool.acquire() as conn:
        settings = await conn.fetchrow(query("vacuum_settings"))
        rows = await conn.fetch(query("vacuum_tables"), list(HOT_TABLES))
    assert settings is not None
    tables = tuple(TableVacuum(**dict(r)) for r in rows)
    return VacuumState(settings["autovacuum"], settings["track_counts"], settings["naptime"], tables)


def _vacuum_statement(table: str) -> str:
    if table not in HOT_TABLES:  # a programming error: the name comes from HOT_TABLES only
        raise ValueError(f"{table!r} is not one of our hot tables {HOT_TABLES}")
    return query("vacuum_table").format(table=f'"{table}"')


async def vacuum(url: str, table: TableVacuum, limits: VacuumLimits) -> Vacuumed | None:
    """VACUUM `table` on a connection of its own holding the retention lock for the session (VACUUM
    cannot run in a transaction, where retention takes it); None when another process holds the lock.
    A VACUUM that runs past `limits.timeout_seconds` is stopped (finished False): what it did stays."""
    statement = _vacuum_statement(table.table)
    conn = await connect(url)
    try:
        if not await conn.fetchval(query("try_maintenance_lock"), LOCK_KEY):
            return None
        try:
            await conn.fetchrow(
                query("vacuum_limits"),
                f"{limits.cost_delay_ms:g}",
                str(limits.cost_limit),
                str(max(1, round(limits.timeout_seconds * 1000))),
            )
            started = time.perf_counter()
            finished = True
            try:
                await conn.execute(statement)
            except asyncpg.QueryCanceledError:  # its statement_timeout
                finished = False
            seconds = time.perf_counter() - started
            left = await conn.fetchval(query("dead_tuples_left"), table.table)
            return Vacuumed(table.table, table.dead, int(left), seconds, finished)
        finally:
            with contextlib.suppress(Exception):  # else closing the session below releases it
                await conn.fetchval(query("maintenance_unlock"), LOCK_KEY)
    finally:
        try:
            await conn.close(timeout=5)
        except Exception:
            conn.terminate()  # the session, and any lock it held, end with the connection
