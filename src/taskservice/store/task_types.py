"""Task type declarations in PostgreSQL (published by whoever runs a type), and the installation's id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskservice.store.sql import query

if TYPE_CHECKING:
    from taskservice.store.store import Connection, Pool


async def register_task_types(conn: Pool | Connection, declarations: Mapping[str, Mapping[str, Any]]) -> None:
    """Upsert declarations (task type name -> the JSON of its TaskTypeSpec): the last one published
    wins, so a worker started with a new version of a type declares it anew."""
    if declarations:
        await conn.execute(query("register_task_types"), {k: dict(v) for k, v in declarations.items()})


async def declaration(conn: Pool | Connection, name: str) -> dict[str, Any] | None:
    """The declaration of task type `name` last published (None: none was)."""
    found: dict[str, Any] | None = await conn.fetchval(query("task_type_declaration"), name)
    return found


async def declarations_changed(conn: Pool | Connection) -> datetime | None:
    """When a published declaration last changed (the schedulers keep declared schedules then)."""
    return await conn.fetchval(query("task_types_changed"))  # type: ignore[no-any-return]


async def declarations(conn: Pool | Connection) -> dict[str, Any]:
    """Every task type's published declaration (JSON), by name."""
    return {row["name"]: row["declaration"] for row in await conn.fetch(query("declarations"))}


async def container_declarations(conn: Pool | Connection) -> dict[str, dict[str, Any]]:
    """The published declarations of container task types (with a "container"), by name."""
    return {row["name"]: row["declaration"] for row in await conn.fetch(query("container_declarations"))}


async def live_task_types(conn: Pool | Connection, within_seconds: float) -> dict[str, dict[str, Any] | None]:
    """The task types that workers heard from within `within_seconds` run, with their declarations
    (None: the type declares nothing)."""
    rows = await conn.fetch(query("live_task_types"), within_seconds)
    return {row["type"]: row["declaration"] for row in rows}


async def installation_id(conn: Pool | Connection) -> str:
    """This database's random id, made by migration 0020."""
    return str(await conn.fetchval(query("installation_id")))
