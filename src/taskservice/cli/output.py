"""Rendering results: a table for people (default), `wide` with every column, JSON or YAML for scripts.

JSON and YAML are the API's messages in the proto3 JSON mapping (lowerCamelCase keys in the order of
the message's fields, enum names, every field present). Tables show user data literally (escape.py),
colour statuses on a terminal (never when piped or when NO_COLOR is set), and show times as an age
(`5m`, like kubectl); `-o wide` adds the absolute times.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from taskservice.cli.escape import UNSAFE, json_escapes, literal

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor, FieldDescriptor
    from google.protobuf.message import Message
    from rich.console import Console
    from rich.text import Text

FORMATS = ("table", "wide", "json", "yaml")
FLEXIBLE_MIN = 12  # a cut column (name, worker) keeps this many characters at least, if it can

output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(FORMATS, case_sensitive=False),
    default="table",
    show_default=True,
    help="Output format: table, wide (every column, absolute times), json or yaml.",
)

STATUS_STYLES = {
    "QUEUED": "cyan",
    "RUNNING": "blue",
    "RETRYING": "yellow",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "magenta",
    "WAITING": "bright_black",
}


# The original's status fields show RETRYING as QUEUED and CANCELLED as FAILED, for its clients; ours
# shows the exact twin under the original's name (proto/cloud/v1/task.proto, "Statuses"). Likewise an
# int32 id field (`id`, `taskId`, `ids`) shows its 64-bit twin's value (beside the twin itself).
EXACT = {"status": "exactStatus", "statusCounts": "exactStatusCounts"}


def as_data(message: Message) -> dict[str, Any]:
    """A message as the API's JSON shows it (lowerCamelCase, enum names, every field), its keys in the
    order of the message's fields and map keys sorted, so the same message always prints the same;
    statuses exact; 64-bit integers as numbers (proto3 JSON writes them as strings, so `total` was a
    string in `task list` and a number in `task status`)."""
    from google.protobuf import json_format

    data: dict[str, Any] = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return _in_field_order(data, message.DESCRIPTOR)


_INT64_TYPES = frozenset({3, 4, 6, 16, 18})  # FieldDescriptor.TYPE_INT64, UINT64, FIXED64, SFIXED64, SINT64


def _number(field: FieldDescriptor | Any, value: Any) -> Any:
    """`value` of `field`, a 64-bit integer (or a list of them) as a number rather than a string."""
    if field.type not in _INT64_TYPES:
        return value
    if isinstance(value, list):
        return [int(item) for item in value]
    return int(value) if isinstance(value, str) else value


def _in_field_order(data: dict[str, Any], descriptor: Descriptor | Any) -> dict[str, Any]:
    if descriptor.full_name.startswith("google.protobuf."):
        return data  # well-known types (Value, Struct...) have JSON forms of their own
    ordered: dict[str, Any] = {}
    twins = {exact for exact in EXACT.values() if exact in data}
    for field in descriptor.fields:
        if field.json_name not in data or field.json_name in twins:
            continue
        value = data[EXACT[field.json_name] if EXACT.get(field.json_name) in twins else field.json_name]
        wide = descriptor.fields_by_name.get(f"{field.name}64")
        if wide is not None and wide.json_name in data:  # an int32 id holds 0 past 2^31: its twin the id
            value = _number(wide, data[wide.json_name])
        kind = field.message_type
        if kind is not None and kind.GetOptions().map_entry:
            value_field = kind.fields_by_name["value"]
            value_kind = value_field.message_type
            value = {
                key: _in_field_order(item, value_kind)
                if value_kind and isinstance(item, dict)
                else _number(value_field, item)
                for key, item in sorted(value.items())
            }
        elif kind is not None and isinstance(value, list):
            value = [_in_field_order(item, kind) if isinstance(item, dict) else item for item in value]
        elif kind is not None and isinstance(value, dict):
            value = _in_field_order(value, kind)
        else:
            value = _number(field, value)
        ordered[field.json_name] = value
    return ordered


def emit_data(data: Any, fmt: str) -> None:
    """Print `data` as JSON or YAML; the text round-trips to exactly `data`."""
    if fmt == "json":
        click.echo(json_escapes(json.dumps(data, indent=2, ensure_ascii=False)))
        return
    import yaml

    class Dumper(yaml.SafeDumper):
        """Quotes and escapes strings holding unsafe characters, which PyYAML would write raw."""

        def write_double_quoted(self, text: str, split: bool = True) -> None:
            if not UNSAFE.search(text):
                super().write_double_quoted(text, split)
                return
            allow_unicode, self.allow_unicode = self.allow_unicode, False  # escape all but ASCII
            try:
                super().write_double_quoted(text, split)
            finally:
                self.allow_unicode = allow_unicode

    def string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = '"' if UNSAFE.search(value) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, string)
    text = yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=1_000_000)
    click.echo(text.rstrip())


def is_machine(fmt: str) -> bool:
    return fmt in ("json", "yaml")


# -- tables ----------------------------------------------------------------------------------------


def _console() -> Console:
    """Stdout at the terminal's width (in colour unless NO_COLOR) or, piped, in whole lines."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        return Console(width=250)  # piped output keeps whole lines rather than wrapping at a guess
    if os.environ.get("NO_COLOR"):  # no-color.org; plain text, not just colourless bold and italics
        return Console(color_system=None)
    return console


def _print(renderable: Any, console: Console | None = None) -> None:
    console = console or _console()
    with console.capture() as captured:
        console.print(renderable)
    # Without the padding rich puts after the last column.
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def cell(value: Any, *, multiline: bool = False, cut: bool = False) -> Text:
    """A table cell showing `value` literally: no markup, no control characters; `cut`: one line, an
    ellipsis where it does not fit."""
    from rich.text import Text

    if isinstance(value, Text):
        return value
    text = "" if value is None else literal(str(value), multiline=multiline)
    return Text(text, no_wrap=True, overflow="ellipsis") if cut else Text(text)


def status_cell(name: str) -> Text:
    from rich.text import Text

    return Text(name, style=STATUS_STYLES.get(name, ""))


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    *,
    flexible: Sequence[str] = (),
    wrap: Sequence[str] = (),
) -> None:
    """Print a table that fits the terminal. Columns in `flexible` are cut with an ellipsis where they do
    not fit on a terminal: each but the last at a quarter of the width at most, the last taking what is
    left. Those in `wrap` wrap onto more lines. The others (ids, statuses, ages) are never cut: when
    they alone overflow the terminal, nothing is cut and the terminal wraps the lines."""
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table

    console = _console()
    cells = [
        [cell(value, cut=name in flexible) for name, value in zip(columns, row, strict=True)] for row in rows
    ]
    view = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", show_edge=False, pad_edge=False)
    naturals = {
        name: max([cell_len(name), *(row[i].cell_len for row in cells)]) for i, name in enumerate(columns)
    }
    last = [name for name in columns if name in wrap or (flexible and name == flexible[-1])]
    cut_to = {name: naturals[name] for name in columns if name not in flexible or name in last}

    def fits(share: int) -> bool:
        """Whether the table fits the terminal with each cut column but the last `share` wide at most."""
        for name in flexible:
            if name not in last:
                cut_to[name] = min(naturals[name], share)
        fixed = sum(width for name, width in cut_to.items() if name not in last)
        return (
            3 * (len(columns) - 1) + fixed + sum(min(naturals[n], cell_len(n)) for n in last) <= console.width
        )

    # Piped, nothing is cut at a guessed width. Nor when the columns never cut (ids, statuses, times) do
    # not fit the terminal (`-o wide` at 80 columns): rich would shrink every column, ids too; whole
    # lines, which the terminal wraps, keep the promise.
    shares = (max(FLEXIBLE_MIN, console.width // 4), FLEXIBLE_MIN, FLEXIBLE_MIN // 2)
    cut = console.is_terminal and any(fits(share) for share in shares)
    if not cut:
        console.width = max(console.width, 3 * (len(columns) - 1) + sum(naturals.values()))
    for name in columns:
        if name in last:
            view.add_column(name, overflow="fold")  # takes what the others leave
        elif name in flexible and cut:
            view.add_column(name, width=cut_to[name], no_wrap=True)
        else:
            view.add_column(name, width=naturals[name], no_wrap=True)
    for row in cells:
        view.add_row(*row)
    _print(view, console)


def key_values(pairs: Sequence[tuple[str, Any]]) -> None:
    """A two-column table of fields; values may span lines (descriptions, results)."""
    from rich import box
    from rich.table import Table

    view = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    view.add_column("FIELD", no_wrap=True)
    view.add_column("VALUE", overflow="fold")
    for name, value in pairs:
        view.add_row(cell(name), cell(value, multiline=True))
    _print(view)


# -- times -----------------------------------------------------------------------------------------

_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def parse_time(text: str) -> datetime | None:
    if not _TIME.match(text):
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def age(text: str, now: datetime | None = None) -> str:
    """How long ago the API time `text` was, kubectl style: 45s, 3m10s, 12m, 5h20m, 20h, 3d4h, 40d."""
    then = parse_time(text)
    if then is None:
        return ""
    return _span(max(0, int(((now or datetime.now(UTC)) - then).total_seconds())))


def _span(seconds: int) -> str:
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def when(text: str, now: datetime | None = None) -> str:
    """An API time with its age, `2026-12-01T07:00:13Z (5m ago)`, or how far ahead it is (a task's
    next run, a schedule's next tick): `2026-12-24T18:00:00Z (in 23d)`."""
    then = parse_time(text)
    if then is None:
        return text
    ahead = int((then - (now or datetime.now(UTC))).total_seconds())
    return f"{text} (in {_span(ahead)})" if ahead > 0 else f"{text} ({age(text, now)} ago)"
