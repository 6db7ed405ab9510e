"""Queue wait: an attempt keeps when its task was due (`task_executions.due_at`).

The claim copies the task's `run_at` (when it became due: its creation, its delay or its retry's
backoff) onto the attempt it starts, so the metrics read the wait (`started_at - due_at`) at scrape
time from the attempt alone: the task's `run_at` moves on when the attempt ends. Adding a nullable
column rewrites nothing; attempts started before this migration (or by the claims of the previous
release during a rolling deploy) keep NULL and show no wait.

`claim_limited` (0050) is replaced by the same function with `due_at`: its text is 0050's, with the
two places that carry it changed (checked here, so that a change to 0050 cannot go unnoticed).

Revision ID: 0090
Revises: 0080
Create Date: 2026-12-06
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0090"
down_revision = "0080"
branch_labels = None
depends_on = None

_EDITS = (
    (
        "SELECT r.id, r.attempt,\n",
        "SELECT r.id, r.attempt, r.run_at,\n",
    ),
    (
        "INSERT INTO task_executions (task_id, attempt, worker_id, started_at, lease_expires_at)\n"
        "            SELECT s.id, s.attempt, claim_owners[took + s.slot], stamp,\n",
        "INSERT INTO task_executions (task_id, attempt, worker_id, started_at, lease_expires_at, due_at)\n"
        "            SELECT s.id, s.attempt, claim_owners[took + s.slot], stamp,\n",
    ),
    (
        "stamp + make_interval(secs => claim_lease)\n              FROM slotted s\n",
        "stamp + make_interval(secs => claim_lease), s.run_at\n              FROM slotted s\n",
    ),
)


def _original() -> str:
    """0050's claim_limited (alembic loads each migration by its path: so is this one)."""
    spec = importlib.util.spec_from_file_location(
        "_migration_0050", Path(__file__).with_name("0050_limits.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.CLAIM_LIMITED)


def claim_limited_with_due_at() -> str:
    text = _original()
    for old, new in _EDITS:
        if text.count(old) != 1:
            raise RuntimeError(f"0090: claim_limited of 0050 changed; cannot find {old!r}")
        text = text.replace(old, new)
    return text.replace("CREATE FUNCTION claim_limited", "CREATE OR REPLACE FUNCTION claim_limited")


def upgrade() -> None:
    op.execute("ALTER TABLE task_executions ADD COLUMN due_at timestamptz;")
    op.execute(claim_limited_with_due_at())


def downgrade() -> None:
    op.execute(
        _original().replace("CREATE FUNCTION claim_limited", "CREATE OR REPLACE FUNCTION claim_limited")
    )
    op.execute("ALTER TABLE task_executions DROP COLUMN due_at;")
