"""A failed attempt keeps its traceback: `task_executions.traceback`, written by finish_attempts.

finish_attempts takes its rows as an array of a row type. Adding the field to `attempt_outcome`
itself would break the workers of the previous release during a rolling deploy: a row type takes
exactly as many fields as it has (a 10-field row into 11 fields is "wrong number of columns"), so
every outcome they report would be refused and their tasks run again once their leases expired. The
new statement uses a new type, `attempt_outcome_v2` (the old fields in the same order, then the
traceback); `attempt_outcome` stays for them until a later release drops it.

The column is nullable without a default: adding it rewrites nothing, and attempts made before it
have no traceback.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06
"""

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE task_executions ADD COLUMN traceback text;

        CREATE TYPE attempt_outcome_v2 AS (
            task_id       bigint,
            execution_id  bigint,
            status        smallint,
            retries       integer,
            lost_leases   integer,
            delay_seconds double precision,
            details       text,
            outcome       text,
            error         text,
            result        jsonb,
            traceback     text
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TYPE attempt_outcome_v2; ALTER TABLE task_executions DROP COLUMN traceback;")
