"""Task counts kept by triggers (GetStatus and list totals without a scan); indexes for list pages.

Counting a million tasks takes a table scan (~100 ms); the counts table answers in well under a
millisecond. It is kept by statement-level triggers on `tasks`, so every writer (the store, a manual
UPDATE, a bulk load) keeps it right, in the same transaction as the change.

Every transaction adds its changes to the rows of its own slot (`pg_backend_pid() % 64`): a single
row per status would be a hot row, every claim and completion waiting for the previous one's commit.
A count is the sum over the slots. Rows are touched in (type, status) order, so two transactions on
the same slot wait for each other but never deadlock.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SLOTS = 64


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE task_counts (
            type   text NOT NULL,
            status smallint NOT NULL,
            slot   smallint NOT NULL,
            count  bigint NOT NULL,
            PRIMARY KEY (type, status, slot)
        );

        CREATE FUNCTION task_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO task_counts AS c (type, status, slot, count)
            SELECT type, status, pg_backend_pid() % {SLOTS}, count(*)
              FROM new_tasks GROUP BY type, status ORDER BY type, status
                ON CONFLICT (type, status, slot) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END $$;

        CREATE FUNCTION task_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO task_counts AS c (type, status, slot, count)
            SELECT type, status, pg_backend_pid() % {SLOTS}, -count(*)
              FROM old_tasks GROUP BY type, status ORDER BY type, status
                ON CONFLICT (type, status, slot) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END $$;

        CREATE FUNCTION task_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO task_counts AS c (type, status, slot, count)
            SELECT d.type, d.status, pg_backend_pid() % {SLOTS}, sum(d.delta)
              FROM old_tasks o
              JOIN new_tasks n ON n.id = o.id
             CROSS JOIN LATERAL (VALUES (o.type, o.status, -1), (n.type, n.status, 1))
                   AS d(type, status, delta)
             WHERE o.status <> n.status OR o.type <> n.type
             GROUP BY d.type, d.status
            HAVING sum(d.delta) <> 0
             ORDER BY d.type, d.status
                ON CONFLICT (type, status, slot) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END $$;

        CREATE FUNCTION task_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM task_counts;
            RETURN NULL;
        END $$;

        -- No writer may change tasks between the triggers' creation and the first count.
        LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;
        CREATE TRIGGER task_counts_inserted AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_tasks
            FOR EACH STATEMENT EXECUTE FUNCTION task_counts_inserted();
        CREATE TRIGGER task_counts_deleted AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_tasks
            FOR EACH STATEMENT EXECUTE FUNCTION task_counts_deleted();
        CREATE TRIGGER task_counts_updated AFTER UPDATE ON tasks
            REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
            FOR EACH STATEMENT EXECUTE FUNCTION task_counts_updated();
        CREATE TRIGGER task_counts_truncated AFTER TRUNCATE ON tasks
            FOR EACH STATEMENT EXECUTE FUNCTION task_counts_truncated();
        INSERT INTO task_counts (type, status, slot, count)
        SELECT type, status, 0, count(*) FROM tasks GROUP BY type, status;

        -- List pages filtered by status or by type, newest first, without walking the whole table.
        CREATE INDEX idx_tasks_status_id ON tasks (status, id);
        CREATE INDEX idx_tasks_type_id ON tasks (type, id);

        -- Most tasks have no idempotency key: a unique index of the keys alone stays small, and the
        -- status changes of a task without one (two per attempt) no longer write an entry to it.
        ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency_key_key;
        CREATE UNIQUE INDEX idx_tasks_idempotency_key ON tasks (idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX idx_tasks_idempotency_key;
        ALTER TABLE tasks ADD CONSTRAINT tasks_idempotency_key_key UNIQUE (idempotency_key);
        DROP INDEX idx_tasks_status_id, idx_tasks_type_id;
        DROP TRIGGER task_counts_inserted ON tasks;
        DROP TRIGGER task_counts_deleted ON tasks;
        DROP TRIGGER task_counts_updated ON tasks;
        DROP TRIGGER task_counts_truncated ON tasks;
        DROP FUNCTION task_counts_inserted(), task_counts_deleted(), task_counts_updated(),
                      task_counts_truncated();
        DROP TABLE task_counts;
        """
    )
