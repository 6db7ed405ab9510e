"""Concurrency and rate limits on task types and queues (migration 0050), and why a limited task waits.

The claim enforces them (claim_limited); this module sets them, lists them, and puts the tasks that
wait under a limit as it now stands (`rescope`): a new task is put under its limit when it is created,
a waiting one when its limit changes, in batches so that no statement holds many rows for long.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskservice.model import Rate
from taskservice.store import task_types
from taskservice.store.sql import query

if TYPE_CHECKING:
    from asyncpg import Record

    from taskservice.store.store import Connection, Pool

RESCOPE_BATCH = 1000


@dataclass(frozen=True)
class Limit:
    """A limit on a task type (`kind` "type") or a queue ("queue"): at most `concurrency` attempts
    running and `rate` starts, per value of `key` (a payload parameter; None: one count for all).
    `set_by` is None for a limit declared with its type, else who set it at run time."""

    kind: str
    name: str
    concurrency: int | None = None
    rate: Rate | None = None
    key: str | None = None
    set_by: str | None = None
    updated_at: datetime | None = None
    waiting: int = 0
    running: int = 0

    @property
    def scope(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def active(self) -> bool:
        return self.concurrency is not None or self.rate is not None


@dataclass(frozen=True)
class LimitWait:
    """Why a task under a limit waits: its key is at the concurrency limit, or out of starts."""

    limit: Limit
    key: str
    running: int
    recent_starts: int

    @property
    def at_concurrency(self) -> bool:
        return self.limit.concurrency is not None and self.running >= self.limit.concurrency

    @property
    def out_of_starts(self) -> bool:
        return self.limit.rate is not None and self.recent_starts >= self.limit.rate.count


def _limit(row: Record) -> Limit:
    rate = Rate(row["rate"], row["per_seconds"]) if row["rate"] is not None else None
    return Limit(
        kind=row["kind"], name=row["name"], concurrency=row["concurrency"], rate=rate, key=row["key"],
        set_by=row["set_by"], updated_at=row["updated_at"],
        waiting=row.get("waiting", 0) or 0, running=row.get("running", 0) or 0,
    )  # fmt: skip


def declared(declaration: Mapping[str, Any]) -> tuple[int | None, Rate | None, str | None]:
    """(concurrency, rate, key) a published declaration (TaskTypeSpec's JSON) asks for. A value this
    version cannot read (a newer worker's) counts as not asked for."""
    concurrency = declaration.get("concurrency")
    rate_text, key = declaration.get("rate_limit"), declaration.get("concurrency_key")
    try:
        rate = Rate.parse(rate_text) if isinstance(rate_text, str) and rate_text else None
    except ValueError:
        rate = None
    return (
        concurrency if isinstance(concurrency, int) and concurrency > 0 else None,
        rate,
        key if isinstance(key, str) and key else None,
    )


async def limits(conn: Pool | Connection) -> list[Limit]:
    return [_limit(row) for row in await conn.fetch(query("limits"))]


async def set_limit(
    pool: Pool,
    kind: str,
    name: str,
    changes: Mapping[str, Any],
    set_by: str | None,
    *,
    reset: bool = False,
) -> Limit:
    """Change the limit of a type or queue (`changes`: any of concurrency, rate and key, each None for
    none; the others stay as they are, read under the limit's lock), then put its waiting tasks under it.

    A limit declared with its type (`set_by` None) does not replace one set at run time, unless
    `reset` says to (ResetLimit: the declaration rules again)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(query("lock_limit"), kind, name)
            before = _limit(row) if row else Limit(kind, name)
            if set_by is None and before.set_by is not None and not reset:
                return before
            after = replace(before, **changes, set_by=set_by)
            concurrency, rate, key = after.concurrency, after.rate, after.key
            if row is not None and (before.concurrency, before.rate, before.key, before.set_by) == (
                after.concurrency, after.rate, after.key, after.set_by
            ):  # fmt: skip
                return before
            if row is None and not after.active:
                return before  # nothing to clear: no row, no task under it
            row = await conn.fetchrow(
                query("put_limit"), kind, name, concurrency, rate and rate.count, rate and rate.per_seconds,
                key, set_by,
            )  # fmt: skip
            assert row is not None
        if before.active != after.active or before.key != after.key:
            await rescope(conn, kind, name, rekey=before.key != after.key)
    return _limit(row)


async def reset_limit(pool: Pool, kind: str, name: str) -> Limit:
    """Drop what was set at run time: a type's limit becomes what its declaration last published asks
    for (none, if it asks for none or none was published); a queue's limit is cleared."""
    declaration = await task_types.declaration(pool, name) if kind == "type" else None
    concurrency, rate, key = declared(declaration or {})
    changes = {"concurrency": concurrency, "rate": rate, "key": key}
    return await set_limit(pool, kind, name, changes, None, reset=True)


async def rescope(conn: Pool | Connection, kind: str, name: str, *, rekey: bool) -> None:
    """Put the waiting tasks of a type or queue under its limit as it stands, in batches."""
    after = 0
    while True:
        last = await conn.fetchval(query("rescope_waiting"), kind, name, after, RESCOPE_BATCH, rekey)
        if last is None:
            return
        after = int(last)


async def declare_limits(pool: Pool, declarations: Mapping[str, Mapping[str, Any]]) -> None:
    """The limits task types declare (TaskTypeSpec JSON by type name), unless set at run time."""
    current = {limit.name: limit for limit in await limits(pool) if limit.kind == "type"}
    for name, declaration in declarations.items():
        concurrency, rate, key = declared(declaration)
        had = current.get(name)
        if had is None and concurrency is None and rate is None:
            continue
        if had is not None and had.set_by is not None:
            continue
        if had is not None and (had.concurrency, had.rate, had.key) == (concurrency, rate, key):
            continue
        await set_limit(pool, "type", name, {"concurrency": concurrency, "rate": rate, "key": key}, None)


async def waits(conn: Pool | Connection, task_ids: Sequence[int]) -> dict[int, LimitWait]:
    """Of waiting tasks `task_ids`, those under a limit their key has reached, with why."""
    found: dict[int, LimitWait] = {}
    for row in await conn.fetch(query("limit_waits"), list(task_ids)):
        wait = LimitWait(_limit(row), row["limit_key"] or "", int(row["running"]), int(row["recent_starts"]))
        if wait.at_concurrency or wait.out_of_starts:
            found[row["id"]] = wait
    return found


async def forget_idle_keys(conn: Pool | Connection, before: datetime, limit: int) -> int:
    """Delete the kept starts of up to `limit` keys that started nothing since `before`."""
    return int(await conn.fetchval(query("forget_idle_limit_keys"), before, limit))


@dataclass(frozen=True)
class LimitFigures:
    """A limit's figures for the metrics: tasks waiting, the keys they wait under and the most for one
    key; attempts running, and the keys at their concurrency limit."""

    scope: str
    waiting: int
    keys_waiting: int
    most_for_a_key: int
    running: int
    keys_at_limit: int


async def figures(conn: Pool | Connection) -> list[LimitFigures]:
    return [LimitFigures(**dict(row)) for row in await conn.fetch(query("limit_figures"))]
