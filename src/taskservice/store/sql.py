"""Named SQL statements (`-- name: <name>` blocks): the store's `queries.sql`, loaded once."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_STORE_QUERIES = Path(__file__).parent / "queries.sql"


def named_statements(path: Path) -> dict[str, str]:
    """Every statement of the file at `path`, by name."""
    parts = _NAME.split(path.read_text())
    return {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def queries() -> dict[str, str]:
    """Every statement of the store, by name."""
    return named_statements(_STORE_QUERIES)


def query(name: str) -> str:
    return queries()[name]
