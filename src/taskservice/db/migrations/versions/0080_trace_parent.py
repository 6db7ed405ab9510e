"""Traces: a task keeps the W3C `traceparent` of whoever created it (docs/observability.md).

`tasks.trace_parent` is nullable with no default: adding it rewrites nothing, and a task created
without tracing keeps NULL. `new_task_v5` is `new_task_v4` with `trace_parent`: a new row type rather
than a changed one, so that the servers of the previous release keep creating tasks during a rolling
deploy (as 0040, 0050 and 0061). Schedules' tasks, workflows' steps and spawned children take theirs as
a parameter of the statement that creates them: their row types stay as they are.

Revision ID: 0080
Revises: 0071
Create Date: 2026-12-06
"""

from alembic import op

revision = "0080"
down_revision = "0071"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tasks ADD COLUMN trace_parent text;")
    op.execute(
        """
        CREATE TYPE new_task_v5 AS (
            name            text,
            type            text,
            payload         jsonb,
            description     text,
            priority        integer,
            max_retries     integer,
            timeout_seconds double precision,
            idempotency_key text,
            delay_seconds   double precision,
            queue           text,
            limit_key       text,
            run_at          timestamptz,
            trace_parent    text
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TYPE new_task_v5;")
    op.execute("ALTER TABLE tasks DROP COLUMN trace_parent;")
