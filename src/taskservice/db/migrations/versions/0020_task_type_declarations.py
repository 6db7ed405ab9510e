"""Task type declarations, published by the workers that run them; and this installation's identity.

`task_types` holds what each task type declares (its parameters, retry policy and timeout, as the JSON
of plugins/declare.py's TaskTypeSpec), upserted by every worker at start for the types it runs, so the
server can check a new task's parameters without importing the code that runs it.

`installation` holds one random id, made once per database: with a task's id it gives the task a key
that is stable across attempts and unique across installations (the plugins' idempotency key, e.g.
send_email's Message-ID).

Revision ID: 0020
Revises: 0010
Create Date: 2026-12-01
"""

from alembic import op

revision = "0020"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE task_types (
            name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 255),
            declaration jsonb NOT NULL CHECK (jsonb_typeof(declaration) = 'object'),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE installation (
            one boolean PRIMARY KEY DEFAULT true CHECK (one),
            id  uuid NOT NULL DEFAULT gen_random_uuid()
        );
        INSERT INTO installation DEFAULT VALUES;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE installation; DROP TABLE task_types;")
