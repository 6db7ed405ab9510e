"""Workflows: tasks that wait for tasks.

`workflows` names a graph of steps created together (or the children a standalone task spawned). A
step is a task with `workflow_id` and its `step` name (unique in its workflow); `task_dependencies`
holds the edges (`parent_id` must succeed before `task_id` starts): a workflow's declared
`depends_on`, and the children a running task spawned (`spawned_by`) for each task that waited on
the spawner (and for the spawner itself when it waits for its children, a continuation).

A step with unfinished parents is WAITING (8), outside the claim index, with `waiting_on` counting
the parents not yet succeeded. The statement that finishes a batch of attempts decrements the
counts of the succeeded ones' children, in one UPDATE, and queues each that reaches 0: the row lock
on the child orders the finishes of its parents, so any number of workers finishing parents at once
release it exactly once. Where a workflow stands is derived from its steps, never stored.

A step that ends without succeeding (FAILED, CANCELLED, by any path: an attempt, the reaper, an
operator, a bulk cancel) cancels its WAITING descendants, through the trigger
`workflow_cancel_downstream`: its WHEN clause keeps every other task's update free of it.

Adding nullable columns rewrites nothing; the partial unique index holds only workflow steps, so
other tasks pay only its predicate on insert.

Revision ID: 0070
Revises: 0061
Create Date: 2026-12-07
"""

from alembic import op

revision = "0070"
down_revision = "0061"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE workflows (
            id              bigserial PRIMARY KEY,
            name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
            idempotency_key text UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 255),
            created_by      text NOT NULL DEFAULT '',
            created_at      timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX idx_workflows_created ON workflows (created_at DESC, id DESC);

        ALTER TABLE tasks ADD COLUMN workflow_id bigint,
                          ADD COLUMN step text,
                          ADD COLUMN spawned_by bigint,
                          ADD COLUMN waiting_on integer;
        CREATE UNIQUE INDEX idx_tasks_workflow_step ON tasks (workflow_id, step) WHERE workflow_id IS NOT NULL;

        CREATE TABLE task_dependencies (
            parent_id bigint NOT NULL,
            task_id   bigint NOT NULL,
            PRIMARY KEY (parent_id, task_id)
        );
        CREATE INDEX idx_task_dependencies_task ON task_dependencies (task_id, parent_id);

        -- The steps downstream of one that ended without succeeding, still WAITING, are cancelled, with
        -- the history line naming the step that started it. The cancelled rows fire this trigger again;
        -- those nested calls return at once (their descendants were all taken here).
        CREATE FUNCTION workflow_cancel_downstream() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF pg_trigger_depth() > 1 THEN
                RETURN NULL;
            END IF;
            WITH RECURSIVE downstream(id) AS (
                SELECT d.task_id FROM task_dependencies d WHERE d.parent_id = NEW.id
                 UNION
                SELECT d.task_id FROM task_dependencies d JOIN downstream ON d.parent_id = downstream.id
            ), doomed AS (
                SELECT t.id
                  FROM tasks t JOIN downstream USING (id)
                 WHERE t.status = 8 /*WAITING*/
                 ORDER BY t.id
                   FOR UPDATE OF t
            ), moved AS (
                UPDATE tasks t
                   SET status = 7 /*CANCELLED*/, updated_at = now()
                  FROM doomed
                 WHERE t.id = doomed.id AND t.status = 8 /*WAITING*/
                RETURNING t.id
            )
            INSERT INTO task_history (task_id, status, details)
            SELECT id, 7 /*CANCELLED*/,
                   'upstream step ' || coalesce(NEW.step, 'task ' || NEW.id)
                   || CASE WHEN NEW.status = 2 /*FAILED*/ THEN ' failed' ELSE ' was cancelled' END
              FROM moved;
            RETURN NULL;
        END $$;
        CREATE TRIGGER workflow_cancel_downstream AFTER UPDATE OF status ON tasks
            FOR EACH ROW
            WHEN (NEW.workflow_id IS NOT NULL AND NEW.status IN (2, 7) AND OLD.status <> NEW.status)
            EXECUTE FUNCTION workflow_cancel_downstream();

        -- A child spawned at run time, as the attempt's outcome carries it (store/workflows.py).
        CREATE TYPE spawned_task_v1 AS (
            step            text,
            name            text,
            type            text,
            payload         jsonb,
            description     text,
            priority        integer,
            max_retries     integer,
            timeout_seconds double precision,
            queue           text,
            limit_key       text
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TYPE spawned_task_v1;
        DROP TRIGGER workflow_cancel_downstream ON tasks;
        DROP FUNCTION workflow_cancel_downstream();
        DROP TABLE task_dependencies;
        DROP INDEX idx_tasks_workflow_step;
        ALTER TABLE tasks DROP COLUMN workflow_id, DROP COLUMN step, DROP COLUMN spawned_by,
                          DROP COLUMN waiting_on;
        DROP TABLE workflows;
        """
    )
