"""Workers say who registered them: an agent's id belongs to the caller that first opened its stream.

`principal` is the caller's kind and name (`token:<name>`, `session:<name>`) when auth is on; NULL for
direct workers (they reach the database, not the API) and for agents with auth off. The server
refuses an agent's stream, heartbeat or report under an id another principal registered, so one
agent token cannot take over or settle another agent's work. Every existing row is NULL, as it would
have been; adding a nullable column rewrites nothing.

Revision ID: 0030
Revises: 0020
Create Date: 2026-12-06
"""

from alembic import op

revision = "0030"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE workers ADD COLUMN principal text")


def downgrade() -> None:
    op.execute("ALTER TABLE workers DROP COLUMN principal")
