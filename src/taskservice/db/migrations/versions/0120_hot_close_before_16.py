"""Closing an attempt is a HOT update on PostgreSQL 14 and 15 too: there, no index on `finished_at`.

Before PostgreSQL 16 an update that changes any indexed column, a BRIN index's included, cannot be
HOT; closing an attempt sets `finished_at`, so on 15 every close wrote a new entry into each of the
attempts' indexes (four) where 16 and later update the row in place (issue 26: 0 of 20,000 closes
HOT on 15, and 2.6 more WAL records per task than on 18). Without the BRIN index, the dashboard's
windows of finished attempts (`type_stats`, `throughput_buckets`) read the attempts table whole on
those versions (docs/performance.md says what that costs at a million attempts). A database moved to
PostgreSQL 16 or later by `pg_upgrade` keeps this schema: `task-cli migrate` cannot see the move, so
the API server warns at start with the statement that puts the index back (api/lifespan.py).

Revision ID: 0120
Revises: 0110
Create Date: 2026-12-07
"""

from alembic import op

revision = "0120"
down_revision = "0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF current_setting('server_version_num')::integer < 160000 THEN
                DROP INDEX IF EXISTS idx_task_executions_finished_at;
            END IF;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE INDEX IF NOT EXISTS idx_task_executions_finished_at ON task_executions
            USING brin (finished_at) WITH (autosummarize = on);
        """
    )
