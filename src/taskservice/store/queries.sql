-- Every SQL statement of taskservice, one named block each ("-- name: <name>").
-- Statements that change a task's status name the status they expect in their WHERE clause,
-- and write the history row in the same statement, so a transition and its history commit together.

-- name: create_tasks
-- Insert tasks and their "Task is scheduled" history rows in one statement.
-- A task whose idempotency key exists already is skipped (the caller looks the existing one up).
-- The wake-up NOTIFY follows once this has committed (wake_workers): see store/waker.py.
WITH input AS (
    SELECT *
      FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::int[], $6::int[],
                  $7::float8[], $8::text[], $9::float8[]) WITH ORDINALITY
           AS i(name, type, payload, description, priority, max_retries, timeout_seconds,
                idempotency_key, delay_seconds, ord)
), inserted AS (
    INSERT INTO tasks (name, type, payload, description, priority, max_retries, timeout_seconds,
                       idempotency_key, run_at)
    SELECT name, type, payload, description, priority, max_retries, timeout_seconds,
           idempotency_key, now() + make_interval(secs => delay_seconds)
      FROM input
     ORDER BY ord
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, idempotency_key
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 0, $10::text FROM inserted
)
SELECT id, idempotency_key FROM inserted ORDER BY id;

-- name: wake_workers
SELECT pg_notify('taskservice_queue', '');

-- name: ids_by_idempotency_key
SELECT id, idempotency_key FROM tasks WHERE idempotency_key = ANY($1::text[]);

-- name: get_task
SELECT * FROM tasks WHERE id = $1;

-- name: list_tasks
-- Newest first: ids come from a sequence, so id order is creation order and pages are stable.
-- The page's ids come first, from an index alone however deep the page, then their rows.
-- One statement per combination of the status and type filters, each planned on its own index
-- (a generic `$1 IS NULL OR status = $1` plan could not use one).
SELECT *
  FROM tasks
 WHERE id IN (SELECT id
                FROM tasks
               WHERE ($1::text IS NULL OR name ILIKE '%' || $1 || '%')
               ORDER BY id DESC
               LIMIT $2 OFFSET $3)
 ORDER BY id DESC;

-- name: list_tasks_of_status
SELECT *
  FROM tasks
 WHERE id IN (SELECT id
                FROM tasks
               WHERE status = $1::smallint
                 AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%')
               ORDER BY id DESC
               LIMIT $3 OFFSET $4)
 ORDER BY id DESC;

-- name: list_tasks_of_type
SELECT *
  FROM tasks
 WHERE id IN (SELECT id
                FROM tasks
               WHERE type = $1::text
                 AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%')
               ORDER BY id DESC
               LIMIT $3 OFFSET $4)
 ORDER BY id DESC;

-- name: list_tasks_of_status_and_type
SELECT *
  FROM tasks
 WHERE id IN (SELECT id
                FROM tasks
               WHERE status = $1::smallint AND type = $2::text
                 AND ($3::text IS NULL OR name ILIKE '%' || $3 || '%')
               ORDER BY id DESC
               LIMIT $4 OFFSET $5)
 ORDER BY id DESC;

-- name: count_tasks
-- Tasks of a status and/or a type, from the counts the triggers keep (migration 0002): no scan.
SELECT coalesce(sum(count), 0)::bigint
  FROM task_counts
 WHERE ($1::smallint IS NULL OR status = $1)
   AND ($2::text IS NULL OR type = $2);

-- name: count_tasks_named
-- A name filter is not in the kept counts: this one scans.
SELECT count(*)
  FROM tasks
 WHERE ($1::smallint IS NULL OR status = $1)
   AND ($2::text IS NULL OR type = $2)
   AND name ILIKE '%' || $3 || '%';

-- name: task_history
SELECT * FROM task_history WHERE task_id = $1 ORDER BY created_at, id;

-- name: task_executions
SELECT e.*, extract(epoch FROM e.started_at - t.created_at)::float8 AS started_after_seconds
  FROM task_executions e
  JOIN tasks t ON t.id = e.task_id
 WHERE e.task_id = $1
 ORDER BY e.attempt, e.id;

-- name: status_counts
-- The sum over the slots of the counts the triggers keep (migration 0002): no scan.
SELECT status, sum(count)::bigint AS count FROM task_counts GROUP BY status;

-- name: queue_depth
-- Tasks due now and waiting for a worker.
SELECT count(*) FROM tasks WHERE status IN (0, 6) AND run_at <= now();

-- name: history_after
-- Status changes with an id above $1 (the event stream), oldest first.
SELECT h.id, h.task_id, h.status, h.details, h.created_at, t.name AS task_name, t.type AS task_type
  FROM task_history h
  JOIN tasks t ON t.id = h.task_id
 WHERE h.id > $1
 ORDER BY h.id
 LIMIT $2;

-- name: last_history_id
SELECT coalesce(max(id), 0) FROM task_history;

-- name: executions_finished_since
-- Attempts that finished after $1 (for run-time metrics), oldest first.
SELECT t.type, e.outcome, extract(epoch FROM e.finished_at - e.started_at)::float8 AS seconds,
       e.finished_at
  FROM task_executions e
  JOIN tasks t ON t.id = e.task_id
 WHERE e.finished_at > $1
 ORDER BY e.finished_at
 LIMIT $2;

-- name: ping
SELECT 1;

-- name: lock_task
SELECT * FROM tasks WHERE id = $1 FOR UPDATE;

-- name: set_status
-- An operator's change ($2 = new status, $3 = expected status): cancel, queue again, or settle a
-- running task by hand. Leaving RUNNING closes the open execution; queueing again resets the retries.
WITH moved AS (
    UPDATE tasks
       SET status = $2::smallint,
           retries = CASE WHEN $2::smallint = 0 THEN 0 ELSE retries END,
           run_at = CASE WHEN $2::smallint = 0 THEN now() ELSE run_at END,
           lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
     WHERE id = $1 AND status = $3::smallint
    RETURNING id, status
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, status, $4::text FROM moved
), executions AS (
    UPDATE task_executions e
       SET finished_at = now(), outcome = $5::text, error = $4::text
      FROM moved
     WHERE e.task_id = moved.id AND e.finished_at IS NULL
)
SELECT id, CASE WHEN status = 0 THEN pg_notify('taskservice_queue', '') END IS NULL AS _ FROM moved;

-- name: claim_tasks
-- Claim up to $2 due tasks by priority then age, skipping rows other workers hold; start an attempt
-- for each (history row + execution row) and lease it to worker $1 for $4 seconds.
-- $3: task types to take (empty: all).
WITH picked AS (
    SELECT id
      FROM tasks
     WHERE status IN (0, 6) AND run_at <= now()
       AND (cardinality($3::text[]) = 0 OR type = ANY($3::text[]))
     ORDER BY priority DESC, run_at, id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tasks t
       SET status = 1, attempts = t.attempts + 1, lease_owner = $1,
           lease_expires_at = now() + make_interval(secs => $4), updated_at = now()
      FROM picked
     WHERE t.id = picked.id
    RETURNING t.*
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 1, 'Task started (Attempt ' || attempts || ')' FROM claimed
), executions AS (
    INSERT INTO task_executions (task_id, attempt, worker_id)
    SELECT id, attempts, $1 FROM claimed
    RETURNING id, task_id
)
SELECT claimed.*, executions.id AS execution_id
  FROM claimed JOIN executions ON executions.task_id = claimed.id
 ORDER BY claimed.priority DESC, claimed.run_at, claimed.id;

-- name: finish_attempts
-- Apply decided transitions of running tasks (one array element per task): each moves only if it is
-- still RUNNING under the expected lease owner; its attempt is closed either way (unless already closed).
WITH d AS (
    SELECT *
      FROM unnest($1::int[], $2::bigint[], $3::text[], $4::smallint[], $5::int[], $6::float8[],
                  $7::text[], $8::text[], $9::text[], $10::jsonb[])
           AS d(task_id, execution_id, owner, status, retries, delay_seconds, details, outcome,
                error, result)
), moved AS (
    UPDATE tasks t
       SET status = d.status, retries = d.retries,
           run_at = now() + make_interval(secs => d.delay_seconds),
           lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
      FROM d
     WHERE t.id = d.task_id AND t.status = 1 AND t.lease_owner = d.owner
    RETURNING t.id, t.status, d.delay_seconds
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT d.task_id, d.status, d.details FROM d JOIN moved ON moved.id = d.task_id
), executions AS (
    UPDATE task_executions e
       SET finished_at = now(), outcome = d.outcome, error = d.error, result = d.result
      FROM d
     WHERE e.id = d.execution_id AND e.finished_at IS NULL
), wake AS (
    -- Tasks that are due again at once: tell the waiting workers.
    SELECT pg_notify('taskservice_queue', '')
     WHERE EXISTS (SELECT 1 FROM moved WHERE status IN (0, 6) AND delay_seconds = 0)
)
SELECT moved.id FROM moved LEFT JOIN (SELECT count(*) FROM wake) AS w ON true;

-- name: extend_leases
-- A worker's heartbeat: extend the leases it still holds and record that it is alive.
-- Returns the ids it still holds; a running task missing from them was cancelled or reaped.
WITH alive AS (
    UPDATE workers SET last_heartbeat_at = now() WHERE id = $1
)
UPDATE tasks
   SET lease_expires_at = now() + make_interval(secs => $3)
 WHERE id = ANY($2::int[]) AND status = 1 AND lease_owner = $1
RETURNING id;

-- name: expired_leases
-- Running tasks whose worker stopped heartbeating, with their open attempt.
SELECT t.*, coalesce(e.id, 0) AS execution_id
  FROM tasks t
  LEFT JOIN task_executions e ON e.task_id = t.id AND e.finished_at IS NULL
 WHERE t.status = 1 AND t.lease_expires_at < now()
 ORDER BY t.lease_expires_at
 LIMIT $1
   FOR UPDATE OF t SKIP LOCKED;

-- name: register_worker
INSERT INTO workers (id, host, pid, concurrency, task_types)
VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (id) DO UPDATE
   SET host = excluded.host, pid = excluded.pid, concurrency = excluded.concurrency,
       task_types = excluded.task_types, started_at = now(), last_heartbeat_at = now(),
       stopped_at = NULL;

-- name: stop_worker
UPDATE workers SET stopped_at = now(), last_heartbeat_at = now() WHERE id = $1;

-- name: live_worker_task_types
-- The task types that workers heard from within $1 seconds can run.
SELECT DISTINCT unnest(task_types) AS type
  FROM workers
 WHERE stopped_at IS NULL AND last_heartbeat_at > now() - make_interval(secs => $1);

-- name: list_workers
-- Live workers first, then those gone within the last day, most recent first.
SELECT w.*,
       (SELECT count(*) FROM tasks t WHERE t.status = 1 AND t.lease_owner = w.id) AS running
  FROM workers w
 WHERE w.last_heartbeat_at > now() - interval '1 day'
 ORDER BY w.stopped_at IS NOT NULL, w.last_heartbeat_at DESC
 LIMIT $1;
