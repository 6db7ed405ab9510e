"""A leaner write path: leases live on the attempt, fewer indexes on `tasks`, no foreign-key triggers.

Measured with EXPLAIN (ANALYZE, WAL) on a claim of 100 (docs/performance.md has the figures): a
status change cannot be a HOT update (`status` is indexed for the list pages), so each one wrote a new
entry into every index of `tasks`, about 10 WAL records per task per change. This revision:

- drops the three indexes of the original schema that others already cover: `idx_created_at` (ids
  come from a sequence, so `tasks_pkey` is creation order), `idx_status_created_at` (covered by
  `idx_tasks_status_id`) and `idx_type_status` (covered by `idx_tasks_type_id`);
- moves the lease (owner and expiry) from the task to its attempt, `task_executions`, and names the
  current attempt in `tasks.execution_id`, the fencing token: a heartbeat or an outcome names its
  attempt and changes nothing unless that attempt is still the task's open one. A heartbeat no longer
  touches `tasks` at all, and the lease index `idx_tasks_lease` goes (the reaper reads the few RUNNING
  tasks through `idx_tasks_status_id`);
- makes closing an attempt a HOT update: `finished_at` keeps only a BRIN index (summarizing indexes do
  not prevent HOT updates on PostgreSQL 16 and later), and attempt pages keep room for the update;
- drops the foreign keys from history and attempts to `tasks`: their checks cost a third of a claim's
  time (a trigger call and a row lock per row) and only the store writes those rows; deleting a task
  deletes its history and attempts in the same statement (retention, see store/queries.sql);
- counts the leases a task lost (`lost_leases`): a lost lease no longer spends a retry, but a task
  that keeps killing its workers is stopped after MAX_LOST_LEASES of them;
- adds row types for the statements that write many tasks at once (one array of rows, not ten
  parallel arrays).

A task RUNNING during the upgrade keeps its lease: its open attempt takes over the owner and expiry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE task_history DROP CONSTRAINT task_history_task_id_fkey;
        ALTER TABLE task_executions DROP CONSTRAINT task_executions_task_id_fkey;
        DROP INDEX idx_created_at, idx_status_created_at, idx_type_status, idx_tasks_lease;

        ALTER TABLE task_executions ADD COLUMN lease_expires_at timestamptz;
        ALTER TABLE tasks ADD COLUMN execution_id bigint,
                          ADD COLUMN lost_leases integer NOT NULL DEFAULT 0 CHECK (lost_leases >= 0);

        -- Running work keeps its lease. A RUNNING task without an open attempt (not written by
        -- taskservice, but possible by hand) gets one, so that it has a token to be reaped by.
        INSERT INTO task_executions (task_id, attempt, worker_id, started_at)
        SELECT t.id, t.attempts, coalesce(t.lease_owner, 'unknown'), t.updated_at
          FROM tasks t
         WHERE t.status = 1
           AND NOT EXISTS (SELECT 1 FROM task_executions e
                            WHERE e.task_id = t.id AND e.finished_at IS NULL);
        UPDATE task_executions e
           SET lease_expires_at = coalesce(t.lease_expires_at, now()),
               worker_id = coalesce(t.lease_owner, e.worker_id)
          FROM tasks t
         WHERE e.task_id = t.id AND e.finished_at IS NULL AND t.status = 1;
        -- An open attempt of a task that is not running cannot report anymore: close it.
        UPDATE task_executions e
           SET finished_at = now(), outcome = 'interrupted', error = 'closed by the upgrade'
          FROM tasks t
         WHERE e.task_id = t.id AND e.finished_at IS NULL AND t.status <> 1;
        UPDATE tasks t
           SET execution_id = e.id
          FROM (SELECT task_id, max(id) AS id FROM task_executions GROUP BY task_id) AS e
         WHERE e.task_id = t.id;
        ALTER TABLE tasks DROP COLUMN lease_owner, DROP COLUMN lease_expires_at;

        DROP INDEX idx_task_executions_finished_at;
        CREATE INDEX idx_task_executions_finished_at ON task_executions USING brin (finished_at)
            WITH (autosummarize = on);
        -- Room on each page for the attempt's closing update to stay on it (HOT).
        ALTER TABLE task_executions SET (fillfactor = 50);

        -- What create_tasks inserts, one row per task.
        CREATE TYPE new_task AS (
            name            text,
            type            text,
            payload         jsonb,
            description     text,
            priority        integer,
            max_retries     integer,
            timeout_seconds double precision,
            idempotency_key text,
            delay_seconds   double precision
        );
        -- A decided end of an attempt (finish_attempts), one row per attempt.
        CREATE TYPE attempt_outcome AS (
            task_id       bigint,
            execution_id  bigint,
            status        smallint,
            retries       integer,
            lost_leases   integer,
            delay_seconds double precision,
            details       text,
            outcome       text,
            error         text,
            result        jsonb
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TYPE attempt_outcome, new_task;
        ALTER TABLE task_executions RESET (fillfactor);
        DROP INDEX idx_task_executions_finished_at;
        CREATE INDEX idx_task_executions_finished_at ON task_executions (finished_at);
        ALTER TABLE tasks ADD COLUMN lease_owner text, ADD COLUMN lease_expires_at timestamptz;
        UPDATE tasks t
           SET lease_owner = e.worker_id, lease_expires_at = e.lease_expires_at
          FROM task_executions e
         WHERE e.id = t.execution_id AND t.status = 1;
        ALTER TABLE tasks DROP COLUMN execution_id, DROP COLUMN lost_leases;
        ALTER TABLE task_executions DROP COLUMN lease_expires_at;
        CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at) WHERE status = 1;
        CREATE INDEX idx_type_status ON tasks (type, status);
        CREATE INDEX idx_created_at ON tasks (created_at);
        CREATE INDEX idx_status_created_at ON tasks (status, created_at);
        DELETE FROM task_history h WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = h.task_id);
        DELETE FROM task_executions e WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id);
        ALTER TABLE task_history ADD CONSTRAINT task_history_task_id_fkey
            FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE;
        ALTER TABLE task_executions ADD CONSTRAINT task_executions_task_id_fkey
            FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE;
        """
    )
