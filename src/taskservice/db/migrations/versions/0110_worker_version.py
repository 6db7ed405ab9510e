"""Workers say which release of taskservice they run (`workers.version`), for the worker page.

Nullable: workers and agents of an earlier release register without it (NULL: not said).

Revision ID: 0110
Revises: 0100
Create Date: 2026-12-07
"""

from alembic import op

revision = "0110"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE workers ADD COLUMN version text CHECK (length(version) <= 100);")


def downgrade() -> None:
    op.execute("ALTER TABLE workers DROP COLUMN version;")
