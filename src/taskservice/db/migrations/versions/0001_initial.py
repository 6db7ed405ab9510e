"""Tasks, their history, their executions (one row per attempt) and the workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tasks (
            id               serial PRIMARY KEY,
            name             text NOT NULL,
            type             text NOT NULL,
            status           smallint NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2, 3, 6, 7)),
            payload          jsonb NOT NULL DEFAULT '{}',
            retries          integer NOT NULL DEFAULT 0 CHECK (retries >= 0),
            max_retries      integer NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 10),
            priority         integer NOT NULL DEFAULT 0 CHECK (priority >= 0),
            description      text NOT NULL DEFAULT '',
            timeout_seconds  double precision NOT NULL CHECK (timeout_seconds > 0),
            attempts         integer NOT NULL DEFAULT 0,
            run_at           timestamptz NOT NULL DEFAULT now(),
            lease_owner      text,
            lease_expires_at timestamptz,
            idempotency_key  text UNIQUE,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX idx_type_status ON tasks (type, status);
        CREATE INDEX idx_created_at ON tasks (created_at);
        CREATE INDEX idx_status_created_at ON tasks (status, created_at);
        -- The queue: what can be claimed, in claim order.
        CREATE INDEX idx_tasks_claimable ON tasks (priority DESC, run_at, id) WHERE status IN (0, 6);
        -- The lease reaper: running tasks by lease expiry.
        CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at) WHERE status = 1;

        CREATE TABLE task_history (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            task_id     integer NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            status      smallint NOT NULL,
            details     text NOT NULL DEFAULT '',
            created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX idx_task_id_created_at ON task_history (task_id, created_at);

        CREATE TABLE task_executions (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            task_id     integer NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            attempt     integer NOT NULL,
            worker_id   text NOT NULL,
            started_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            outcome     text NOT NULL DEFAULT 'running',
            error       text,
            result      jsonb
        );
        CREATE INDEX idx_task_executions_task_id ON task_executions (task_id, attempt);
        -- Run-time metrics read the attempts finished since the last scrape.
        CREATE INDEX idx_task_executions_finished_at ON task_executions (finished_at);

        CREATE TABLE workers (
            id                text PRIMARY KEY,
            host              text NOT NULL,
            pid               integer NOT NULL,
            concurrency       integer NOT NULL,
            task_types        text[] NOT NULL DEFAULT '{}',
            started_at        timestamptz NOT NULL DEFAULT now(),
            last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
            stopped_at        timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE workers, task_executions, task_history, tasks")
