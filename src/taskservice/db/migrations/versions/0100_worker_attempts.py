"""A worker's attempts, newest first: the dashboard's worker page (GetWorker).

`task_executions` had no index on `worker_id`: a worker's latest attempts would have read the whole
table (a million rows and more). The index is on (worker_id, id): a worker's attempts newest first,
read from it alone up to the page's limit. `worker_id` never changes once an attempt is inserted, so
the attempt's close (finished_at, outcome) does not touch this index.

Revision ID: 0100
Revises: 0090
Create Date: 2026-12-07
"""

from alembic import op

revision = "0100"
down_revision = "0090"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX idx_task_executions_worker ON task_executions (worker_id, id)")


def downgrade() -> None:
    op.execute("DROP INDEX idx_task_executions_worker")
