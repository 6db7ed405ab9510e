"""Queues and pauses: every task belongs to a queue, and a queue or a task type may be paused.

`tasks.queue` is the queue a task waits in ('default' unless its request or its type's declaration
names another); adding it with a constant default rewrites nothing. Workers and agents serve the
queues they are started with (`workers.queues`, empty: every queue). `task_pauses` holds what is
paused, cluster-wide: the claim statement itself skips a paused queue's or type's tasks, so a pause
holds for every worker, agent and server at once and survives restarts. `task_counts` is kept per
queue too (queue depth without a scan); its triggers are replaced in the same transaction, with
`tasks` locked against writers meanwhile.

`new_task_v2` is `new_task` with the queue: a new row type rather than a changed one, so that the
servers of the previous release keep creating tasks during a rolling deploy (their rows lack it).

Revision ID: 0040
Revises: 0031
Create Date: 2026-12-06
"""

from alembic import op

revision = "0040"
down_revision = "0031"
branch_labels = None
depends_on = None

SLOTS = 64  # as migration 0002


def _count_functions(with_queue: bool) -> str:
    key = "queue, type, status" if with_queue else "type, status"
    old_key = "o.queue, o.type, o.status" if with_queue else "o.type, o.status"
    new_key = "n.queue, n.type, n.status" if with_queue else "n.type, n.status"
    d_key = "d.queue, d.type, d.status" if with_queue else "d.type, d.status"
    columns = "queue, type, status" if with_queue else "type, status"
    changed = "o.status <> n.status OR o.type <> n.type" + (" OR o.queue <> n.queue" if with_queue else "")
    return f"""
        CREATE OR REPLACE FUNCTION task_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO task_counts AS c ({columns}, slot, count)
            SELECT {key}, pg_backend_pid() % {SLOTS}, count(*)
              FROM new_tasks GROUP BY {key} ORDER BY {key}
                ON CONFLICT ({columns}, slot) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END $$;

        CREATE OR REPLACE FUNCTION task_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO task_counts AS c ({columns}, slot, count)
            SELECT {key}, pg_backend_pid() % {SLOTS}, -count(*)
              FROM old_tasks GROUP BY {key} ORDER BY {key}
                ON CONFLICT ({columns}, slot) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END $$;

        CREATE OR REPLACE FUNCTION task_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO task_counts AS c ({columns}, slot, count)
            SELECT {d_key}, pg_backend_pid() % {SLOTS}, sum(d.delta)
              FROM old_tasks o
              JOIN new_tasks n ON n.id = o.id
             CROSS JOIN LATERAL (VALUES ({old_key}, -1), ({new_key}, 1))
                   AS d({columns}, delta)
             WHERE {changed}
             GROUP BY {d_key}
            HAVING sum(d.delta) <> 0
             ORDER BY {d_key}
                ON CONFLICT ({columns}, slot) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END $$;
    """


def upgrade() -> None:
    op.execute(
        f"""
        LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;
        ALTER TABLE tasks ADD COLUMN queue text NOT NULL DEFAULT 'default';

        ALTER TABLE task_counts ADD COLUMN queue text NOT NULL DEFAULT 'default';
        ALTER TABLE task_counts DROP CONSTRAINT task_counts_pkey;
        ALTER TABLE task_counts ADD PRIMARY KEY (queue, type, status, slot);
        {_count_functions(with_queue=True)}

        CREATE TYPE new_task_v2 AS (
            name            text,
            type            text,
            payload         jsonb,
            description     text,
            priority        integer,
            max_retries     integer,
            timeout_seconds double precision,
            idempotency_key text,
            delay_seconds   double precision,
            queue           text
        );

        -- The queues a worker or agent serves (empty: every queue), as its task_types.
        ALTER TABLE workers ADD COLUMN queues text[] NOT NULL DEFAULT '{{}}';

        CREATE TABLE task_pauses (
            kind      text NOT NULL CHECK (kind IN ('queue', 'type')),
            name      text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
            reason    text NOT NULL DEFAULT '',
            paused_by text NOT NULL DEFAULT '',
            paused_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (kind, name)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;
        DROP TABLE task_pauses;
        ALTER TABLE workers DROP COLUMN queues;
        DROP TYPE new_task_v2;
        {_count_functions(with_queue=False)}
        DELETE FROM task_counts;
        ALTER TABLE task_counts DROP CONSTRAINT task_counts_pkey;
        ALTER TABLE task_counts DROP COLUMN queue;
        ALTER TABLE task_counts ADD PRIMARY KEY (type, status, slot);
        INSERT INTO task_counts (type, status, slot, count)
        SELECT type, status, 0, count(*) FROM tasks GROUP BY type, status;
        ALTER TABLE tasks DROP COLUMN queue;
        """
    )
