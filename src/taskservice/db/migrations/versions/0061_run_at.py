"""Absolute run times: a new task may say when it may start (`run_at`) instead of a delay.

`new_task_v4` is `new_task_v3` with `run_at`: the statement that creates tasks starts a task at
`greatest(now() + delay, run_at)`, by the database's clock, so a time in the past runs now and no
server's clock skew moves it. A new row type rather than a changed one, so that the servers of the
previous release keep creating tasks during a rolling deploy (as 0040 and 0050).

Revision ID: 0061
Revises: 0060
Create Date: 2026-12-06
"""

from alembic import op

revision = "0061"
down_revision = "0060"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TYPE new_task_v4 AS (
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
            run_at          timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TYPE new_task_v4;")
