"""The kept counts' update trigger in linear time: old rows counted -1 and new rows +1, summed per
(queue, type, status), instead of joining the old and new transition tables by id.

PostgreSQL estimates a transition table at one row, so the join was a nested loop comparing every
updated row with every other: a statement updating n tasks paid n² comparisons (a claim or a finish
of 100 tasks, 10,000; a workflow's root releasing 998 steps, or a bulk action's batch of 1,000, a
million, about 60 ms). The sums are the same: a row whose key did not change adds -1 and +1 to the
same key. Found by the bench's workflow scenario (docs/performance.md).

Revision ID: 0071
Revises: 0070
Create Date: 2026-12-07
"""

from alembic import op

revision = "0071"
down_revision = "0070"
branch_labels = None
depends_on = None

SLOTS = 64  # as migration 0002


def upgrade() -> None:
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION task_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO task_counts AS c (queue, type, status, slot, count)
            SELECT d.queue, d.type, d.status, pg_backend_pid() % {SLOTS}, sum(d.delta)
              FROM (SELECT queue, type, status, -1 AS delta FROM old_tasks
                    UNION ALL
                    SELECT queue, type, status, 1 AS delta FROM new_tasks) AS d
             GROUP BY d.queue, d.type, d.status
            HAVING sum(d.delta) <> 0
             ORDER BY d.queue, d.type, d.status
                ON CONFLICT (queue, type, status, slot) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION task_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO task_counts AS c (queue, type, status, slot, count)
            SELECT d.queue, d.type, d.status, pg_backend_pid() % {SLOTS}, sum(d.delta)
              FROM old_tasks o
              JOIN new_tasks n ON n.id = o.id
             CROSS JOIN LATERAL (VALUES (o.queue, o.type, o.status, -1), (n.queue, n.type, n.status, 1))
                   AS d(queue, type, status, delta)
             WHERE o.status <> n.status OR o.type <> n.type OR o.queue <> n.queue
             GROUP BY d.queue, d.type, d.status
            HAVING sum(d.delta) <> 0
             ORDER BY d.queue, d.type, d.status
                ON CONFLICT (queue, type, status, slot) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END $$;
        """
    )
