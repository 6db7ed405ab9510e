"""The SQL explains itself: status numbers tied to model.Status, one NOTIFY channel, no parallel arrays."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taskservice.model import Status
from taskservice.store import NOTIFY_CHANNEL
from taskservice.store.sql import named_statements, queries

SRC = Path(__file__).parent.parent / "src" / "taskservice"
SQL_FILES = [SRC / "store" / "queries.sql", SRC / "bench" / "queries.sql"]
# `3 /*SUCCEEDED*/`: a status number followed by its name.
NAMED_NUMBER = re.compile(r"\b(\d+)(?:::smallint)?\s*/\*\s*([A-Z]+)\s*\*/")
# A number compared with a status (or chosen as one) that does not say which it is.
BARE_STATUS = re.compile(r"\bstatus\s*(?:=|<>|!=|IN\s*\()\s*\d+(?!(?:::smallint)?\s*/\*)", re.IGNORECASE)


def code(text: str) -> str:
    """The statement without its `--` comments (they may name statuses in prose)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_status_number_says_its_name_and_matches_the_model(path: Path) -> None:
    statements = named_statements(path)
    named = 0
    for name, text in statements.items():
        for number, status in NAMED_NUMBER.findall(code(text)):
            assert Status[status].value == int(number), f"{name}: {number} is not {status}"
            named += 1
        bare = BARE_STATUS.findall(code(text).replace("\n", " "))
        assert not bare, f"{name}: status numbers without their names: {bare}"
    assert named > 10  # the check ran over real statements


def test_a_drifted_number_would_be_caught() -> None:
    assert NAMED_NUMBER.findall("WHERE status = 1 /*RUNNING*/") == [("1", "RUNNING")]
    assert BARE_STATUS.findall("WHERE status = 1 AND x") != []
    assert BARE_STATUS.findall("WHERE status IN (0 /*QUEUED*/, 6 /*RETRYING*/)") == []
    with pytest.raises(AssertionError):
        assert Status["RUNNING"].value == 3


def test_the_notify_channel_is_named_once() -> None:
    """Every statement that notifies takes the channel as a parameter; only waker.py names it."""
    for path in SQL_FILES:
        text = path.read_text()
        assert NOTIFY_CHANNEL not in text, path
        for name, statement in named_statements(path).items():
            for call in re.findall(r"pg_notify\(([^,]+),", statement):
                assert call.strip().startswith("$"), f"{name}: pg_notify({call}, ...)"
    quoted = re.compile(rf"[\"']{NOTIFY_CHANNEL}[\"']")
    python = [p for p in SRC.rglob("*.py") if "gen" not in p.parts and quoted.search(p.read_text())]
    assert [p.relative_to(SRC).as_posix() for p in python] == ["store/waker.py"]


def test_no_statement_takes_parallel_arrays() -> None:
    """Many rows go in as one array of a row type (new_task_v2, attempt_outcome_v2) or one JSON array,
    not as N arrays unnested side by side (a claim's owners, types and queues are separate sets)."""
    for name, text in queries().items():
        for call in re.findall(r"unnest\(([^)]*)\)", text):
            arrays = re.findall(r"\$\d+::\w+\[\]|CAST\(\$\d+ AS [\w ]+\[\]\)", call)
            assert len(arrays) <= 1, f"{name} unnests {len(arrays)} arrays side by side: {call}"
