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

        -- WAITING (8) joins the statuses a task may have. NOT VALID then VALIDATE: the scan that
        -- checks the rows takes a lock that lets the workers go on.
        ALTER TABLE tasks DROP CONSTRAINT tasks_status_check,
                          ADD CONSTRAINT tasks_status_check CHECK (status IN (0, 1, 2, 3, 6, 7, 8)) NOT VALID;
        ALTER TABLE tasks VALIDATE CONSTRAINT tasks_status_check;

        ALTER TABLE tasks ADD COLUMN workflow_id bigint,
                          ADD COLUMN step text,
                          ADD COLUMN spawned_by bigint,
                          ADD COLUMN waiting_on integer;
        CREATE UNIQUE INDEX idx_tasks_workflow_step ON tasks (workflow_id, step)
            WHERE workflow_id IS NOT NULL;

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

        -- The children of the tasks `parents` that just succeeded: each one's count of parents not yet
        -- succeeded falls by its parents among them, and one whose count reaches 0 is queued, with its
        -- history row, and the workers are woken (`channel`). One statement for a whole batch, called
        -- from the statements that finish tasks (store/queries.sql). The children are locked in id
        -- order first: two batches finishing parents of the same children never deadlock.
        CREATE FUNCTION release_children(parents bigint[], channel text) RETURNS integer
        LANGUAGE plpgsql AS $$
        DECLARE
            released integer;
        BEGIN
            -- Driven by the finished parents, index probe by probe (OFFSET 0 keeps each probe its own
            -- plan, and `id = ANY(ARRAY(...))` the children's rows by their key): never a scan of every
            -- edge or every waiting step, on tables analyzed or not (tests/test_plans.py).
            WITH counted AS MATERIALIZED (
                SELECT e.task_id AS id, count(*)::integer AS n
                  FROM unnest(parents) AS p(id)
                 CROSS JOIN LATERAL (SELECT d.task_id FROM task_dependencies d
                                      WHERE d.parent_id = p.id OFFSET 0) AS e
                 GROUP BY e.task_id
            ), locked AS (
                SELECT t.id
                  FROM tasks t
                 WHERE t.id = ANY(ARRAY(SELECT id FROM counted)) AND t.status = 8 /*WAITING*/
                 ORDER BY t.id
                   FOR UPDATE OF t
            ), moved AS (
                UPDATE tasks t
                   SET waiting_on = t.waiting_on - c.n,
                       status = CASE WHEN t.waiting_on - c.n <= 0 THEN 0 /*QUEUED*/ ELSE 8 /*WAITING*/ END,
                       updated_at = now()
                  FROM counted c
                 WHERE t.id = ANY(ARRAY(SELECT id FROM locked)) AND c.id = t.id  -- (locked: WAITING)
                RETURNING t.id, t.status
            ), history AS (
                INSERT INTO task_history (task_id, status, details)
                SELECT id, 0 /*QUEUED*/, 'Task is queued: the steps it waits for succeeded'
                  FROM moved
                 WHERE status = 0 /*QUEUED*/
            )
            SELECT count(*) FILTER (WHERE status = 0 /*QUEUED*/) INTO released FROM moved;
            IF released > 0 THEN
                PERFORM pg_notify(channel, '');
            END IF;
            RETURN released;
        END $$;

        -- A step of a workflow to create, as create_workflow takes it (store/workflows.py).
        CREATE TYPE workflow_step_v1 AS (
            task       new_task_v4,
            step       text,
            depends_on text[],
            details    text
        );

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
        DROP TYPE workflow_step_v1;
        DROP FUNCTION release_children(bigint[], text);
        DROP TRIGGER workflow_cancel_downstream ON tasks;
        DROP FUNCTION workflow_cancel_downstream();
        DROP TABLE task_dependencies;
        DROP INDEX idx_tasks_workflow_step;
        ALTER TABLE tasks DROP COLUMN workflow_id, DROP COLUMN step, DROP COLUMN spawned_by,
                          DROP COLUMN waiting_on;
        DROP TABLE workflows;
        ALTER TABLE tasks DROP CONSTRAINT tasks_status_check,
                          ADD CONSTRAINT tasks_status_check CHECK (status IN (0, 1, 2, 3, 6, 7));
        """
    )
