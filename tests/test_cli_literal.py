"""User data through every command and format of task-cli: printed literally, never interpreted.

A table of hostile strings (rich markup, terminal escape sequences, carriage returns, bells, bidi
overrides, zero-width characters, C1 controls, line breaks) goes into names, descriptions, parameters,
errors and results; every command that shows them must show them literally in tables (control
characters as visible escapes) and exactly in JSON and YAML, never sending a control character out.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import ServerProcess, eventually
from taskservice.cli import cli
from taskservice.cli.escape import UNSAFE, literal
from taskservice.model import Status
from taskservice.store import Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

HOSTILE = [
    "[/]",
    "Deploy [prod] now",
    "[bold red]loud[/bold red]",
    "[link=http://evil.example]click[/link]",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;pwned\x07title",
    "\x1b[2J\x1b[Hclear",
    "before\rafter",
    "bell\x07bell",
    "back\x08space",
    "\u202egnp.exe",
    "zero\u200bwidth\u2066iso\u2069",
    "c1\x9b31mcsi",
    "line1\nline2",
    "tab\there",
    "café 🎉 日本",
]
TEXT_FORMATS = ("table", "wide")
DATA_FORMATS = ("json", "yaml")


def cli_out(server: ServerProcess, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--address", server.url, *args], catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output, result.stderr)
    assert not UNSAFE.search(result.stderr), result.stderr
    return result.stdout


def parse(text: str, fmt: str) -> Any:
    return json.loads(text) if fmt == "json" else yaml.safe_load(text)


def assert_shown_literally(out: str, value: str, *, multiline: bool = False) -> None:
    assert not UNSAFE.search(out), f"a control character reached the output: {out!r}"
    for part in literal(value, multiline=multiline).split("\n"):
        assert part in out, f"{value!r} is not shown literally (as {part!r}) in:\n{out}"


def _name(value: str) -> str:
    """Names may not hold control characters (the API refuses them): those strings go elsewhere."""
    return value if not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value) else "hostile"


async def _settled(store: Store, task_id: int) -> bool:
    return (await store.get_task(task_id)).status in (Status.SUCCEEDED, Status.FAILED)


@pytest.fixture
async def hostile_tasks(api_server: ServerProcess, store: Store) -> list[tuple[str, int, int, int]]:
    """For each string: a sleep task holding it (name, description, parameter), a run_query task whose
    error holds it, and one whose result holds it; all finished."""
    made = []
    for value in HOSTILE:
        out = cli_out(api_server, "task", "create", _name(value), "-t", "sleep", "-d", value,
                      "-p", f"text={value}", "-o", "json")  # fmt: skip
        plain = json.loads(out)["id"]
        out = cli_out(api_server, "task", "create", "q", "-t", "run_query", "--max-retries", "0",
                      "-p", f'query=SELECT "{value}"', "-o", "json")  # fmt: skip
        failing = json.loads(out)["id"]
        out = cli_out(api_server, "task", "create", "r", "-t", "run_query",
                      "-p", f"query=SELECT $q${value}$q$ AS v", "-o", "json")  # fmt: skip
        result = json.loads(out)["id"]
        made.append((value, plain, failing, result))
    for _, *ids in made:
        for task_id in ids:
            await eventually(lambda task_id=task_id: _settled(store, task_id))
    return made


async def test_hostile_strings_through_every_command_and_format(
    api_server: ServerProcess, store: Store, hostile_tasks: list[tuple[str, int, int, int]]
) -> None:
    listed = {
        fmt: cli_out(api_server, "task", "list", "-c", "100", "-o", fmt)
        for fmt in (*TEXT_FORMATS, *DATA_FORMATS)
    }
    for fmt in DATA_FORMATS:
        assert not UNSAFE.search(listed[fmt])
    for value, plain, failing, result in hostile_tasks:
        assert (await store.get_task(failing)).status == Status.FAILED, value
        assert (await store.get_task(result)).status == Status.SUCCEEDED, value
        for fmt in TEXT_FORMATS:
            if _name(value) == value:
                assert_shown_literally(listed[fmt], value)
        for fmt in DATA_FORMATS:
            [task] = [t for t in parse(listed[fmt], fmt)["tasks"] if t["id"] == plain]
            assert (task["name"], task["description"], task["payload"]["parameters"]["text"]) == (
                _name(value), value, value,
            )  # fmt: skip

        # One task: every field that holds user data.
        for fmt in TEXT_FORMATS:
            out = cli_out(api_server, "task", "get", "-i", str(plain), "-o", fmt)
            assert_shown_literally(out, value, multiline=True)  # the description keeps its lines
            assert_shown_literally(out, f"text={value}", multiline=True)
        for fmt in DATA_FORMATS:
            out = cli_out(api_server, "task", "get", "-i", str(plain), "-o", fmt)
            assert not UNSAFE.search(out)
            assert parse(out, fmt)["description"] == value

        # The error of a failed attempt, in the history and the attempts.
        for command in (("history",), ("task", "attempts")):
            for fmt in TEXT_FORMATS:
                out = cli_out(api_server, *command, "-i", str(failing), "-o", fmt)
                assert_shown_literally(" ".join(out.split()), " ".join(literal(value).split()))
            for fmt in DATA_FORMATS:
                out = cli_out(api_server, *command, "-i", str(failing), "-o", fmt)
                assert not UNSAFE.search(out)
                data = parse(out, fmt)
                texts = (
                    [h["details"] for h in data["history"]]
                    if command == ("history",)
                    else [e["error"] for e in data["executions"]]
                )
                assert any(value in text for text in texts), (value, texts)

        # The result of a successful attempt.
        for fmt in TEXT_FORMATS:
            out = cli_out(api_server, "task", "get", "-i", str(result), "-o", fmt)
            assert_shown_literally(out, json.dumps(value, ensure_ascii=False)[1:-1], multiline=True)
        for fmt in DATA_FORMATS:
            out = cli_out(api_server, "task", "attempts", "-i", str(result), "-o", fmt)
            assert not UNSAFE.search(out)
            assert parse(out, fmt)["executions"][0]["result"]["rows"] == [[value]]
