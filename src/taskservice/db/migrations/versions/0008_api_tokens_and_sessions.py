"""API tokens and dashboard sessions: stored hashed, shared by every server replica.

A token's secret is never stored: only its SHA-256 (a random 256-bit secret needs no slow hash). A
token's name is unique among the tokens not revoked, so `task-cli token revoke NAME` is unambiguous.
Dashboard sessions live here too, so a login holds on every replica and a logout ends it on all.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None

ROLES = "('viewer', 'operator', 'admin', 'agent')"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE api_tokens (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            role         text NOT NULL CHECK (role IN {ROLES}),
            secret_hash  bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
            created_at   timestamptz NOT NULL DEFAULT now(),
            created_by   text NOT NULL DEFAULT '',
            expires_at   timestamptz,
            revoked_at   timestamptz,
            last_used_at timestamptz
        );
        CREATE UNIQUE INDEX idx_api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

        CREATE TABLE dashboard_sessions (
            secret_hash bytea PRIMARY KEY CHECK (length(secret_hash) = 32),
            subject     text NOT NULL,
            role        text NOT NULL CHECK (role IN {ROLES}),
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz NOT NULL
        );
        CREATE INDEX idx_dashboard_sessions_expires_at ON dashboard_sessions (expires_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE dashboard_sessions; DROP TABLE api_tokens;")
