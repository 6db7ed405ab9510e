"""Rendering results as a table (default), JSON or YAML; JSON/YAML use the API's proto3 JSON mapping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from rich import box
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "yaml")

output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(FORMATS, case_sensitive=False),
    default="table",
    show_default=True,
    help="Output format.",
)


def as_data(message: Message) -> dict[str, Any]:
    """A message as the API's JSON shows it (lowerCamelCase, enum names, every field)."""
    data: dict[str, Any] = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return data


def emit_data(data: Any, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    view = Table(*columns, box=box.SIMPLE_HEAD, title=title, title_justify="left", show_edge=False)
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    # Piped output keeps whole lines rather than wrapping at a guessed terminal width.
    console = Console() if Console().is_terminal else Console(width=250)
    console.print(view)


def key_values(pairs: Sequence[tuple[str, Any]]) -> None:
    table(("FIELD", "VALUE"), pairs)
