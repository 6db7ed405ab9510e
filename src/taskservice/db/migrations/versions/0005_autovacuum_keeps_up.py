"""Autovacuum that keeps up with a queue: the task tables are vacuumed early and without throttling.

Each task leaves dead row versions behind: two in `tasks` (claim and finish are updates), one more
when retention deletes it, and as many in its history and attempts. PostgreSQL's defaults vacuum a
table when a fifth of it is dead, and throttle the vacuum (2 ms of sleep per 200 pages of work):
measured in `task-cli bench --soak` at 7,800 tasks/s, the vacuum of `tasks` slept most of a minute
while 2.8 million dead versions piled up beside 0.8 million live ones, and the claims slowed until
the queue grew (docs/performance.md). These tables are vacuumed once 2% of them is dead, at full
speed; they are small (retention keeps them so), so each vacuum is short.

Storage parameters of our own tables: the owner may set them, no superuser needed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("tasks", "task_history", "task_executions", "task_counts")
SETTINGS = {
    "autovacuum_vacuum_cost_delay": "0",
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0.05",
    "autovacuum_analyze_scale_factor": "0.02",
}


def upgrade() -> None:
    values = ", ".join(f"{name} = {value}" for name, value in SETTINGS.items())
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET ({values})")


def downgrade() -> None:
    names = ", ".join(SETTINGS)
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({names})")
