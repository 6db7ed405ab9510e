"""64-bit task ids: `tasks.id`, its sequence and every column that references a task become bigint.

`tasks.id` was `serial` (int32): at 15-20k tasks/s a busy installation would use up 2^31 ids in about a
day and a half, after which every CreateTask fails. History and execution ids were bigint already.

Changing a column's type rewrites its table (and its indexes) under an ACCESS EXCLUSIVE lock: workers
and servers wait for the upgrade, they do not fail. Nothing is lost: every int32 value is a bigint.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER SEQUENCE tasks_id_seq AS bigint;
        ALTER TABLE task_history ALTER COLUMN task_id TYPE bigint;
        ALTER TABLE task_executions ALTER COLUMN task_id TYPE bigint;
        ALTER TABLE tasks ALTER COLUMN id TYPE bigint;
        """
    )


def downgrade() -> None:
    # Only possible while every id still fits in 32 bits; PostgreSQL refuses otherwise ("out of range").
    op.execute(
        """
        ALTER TABLE tasks ALTER COLUMN id TYPE integer;
        ALTER TABLE task_history ALTER COLUMN task_id TYPE integer;
        ALTER TABLE task_executions ALTER COLUMN task_id TYPE integer;
        ALTER SEQUENCE tasks_id_seq AS integer;
        """
    )
