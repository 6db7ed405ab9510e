"""Workers say what kind they are: a worker claims from PostgreSQL, an agent is fed by a server.

Every existing row was a direct worker, so the default fills them. Adding a column with a constant
default rewrites nothing (PostgreSQL keeps the default in the catalog).

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE workers ADD COLUMN kind text NOT NULL DEFAULT 'worker'"
        " CHECK (kind IN ('worker', 'agent'))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE workers DROP COLUMN kind")
