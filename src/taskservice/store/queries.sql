-- Every SQL statement of taskservice, one named block each ("-- name: <name>").
-- Statements that change a task's status name the status they expect in their WHERE clause,
-- and write the history row in the same statement, so a transition and its history commit together.
-- A status number is always followed by its name (`1 /*RUNNING*/`): tests/test_sql.py checks each
-- against model.Status. The queue's NOTIFY channel is a parameter (store.NOTIFY_CHANNEL names it).
--
-- Where things live (migrations 0001-0004): `tasks` holds what was asked and where the task stands
-- (status, retries, when it is due); `task_executions` holds one row per attempt, with its lease
-- (worker, expiry) while it runs; `tasks.execution_id` names the current attempt, the fencing token
-- every write about an attempt must present. `task_history` holds one row per status change.

-- name: wake_workers
-- $1: the queue's channel.
SELECT pg_notify($1, '');

-- name: enqueue_tasks
-- Tasks and their "Task is scheduled" history rows ($2) in one statement: CreateTask(s) on the
-- server's pool, and taskservice.enqueue / enqueue_many on the application's own connection, in its
-- transaction (both exist iff it commits). The tasks come as one JSON array of objects ($1, sent as
-- text: the application's driver may have a jsonb codec of its own, and every driver sends text),
-- in the order they are inserted, so ids follow it; written `CAST($n AS type)` (never `$n::type`), so
-- that every driver's placeholder style can stand in (store/foreign.py). A task is due after its
-- delay, or at its run_at (greatest ignores a NULL one; a time past is now), by the database's clock.
-- A task whose type (else whose queue) has a limit is put under it: its scope and its key (the one
-- it was given, else its payload's parameter the limit names: limit_key_of); limit_of looks the
-- limit up by its key, and not at all while there is none (migration 0050). Each keeps the W3C
-- traceparent it carries (NULL: none). A taken idempotency key inserts nothing and returns no row
-- (the caller looks the existing task up: ids_by_idempotency_key). A field the JSON leaves out is its
-- default: no description, priority 0, no delay (and NULL for the others).
-- $3: the queue's channel, notified once when a task was inserted, delivered at commit (when the
-- application's workers should wake); NULL: no NOTIFY here, the server's Waker sends it once the
-- insert has committed (a NOTIFY inside would serialize concurrent commits: store/waker.py).
WITH inserted AS (
    INSERT INTO tasks (name, type, payload, description, priority, max_retries, timeout_seconds,
                       idempotency_key, run_at, queue, limit_scope, limit_key, trace_parent)
    SELECT n.name, n.type, n.payload, coalesce(n.description, ''), coalesce(n.priority, 0), n.max_retries,
           n.timeout_seconds, n.idempotency_key,
           greatest(now() + make_interval(secs => coalesce(n.delay_seconds, 0)), n.run_at), n.queue,
           lim.scope, CASE WHEN lim.scope IS NULL THEN n.limit_key
                           ELSE limit_key_of(n.payload, lim.key, n.limit_key) END,
           n.trace_parent
      FROM ROWS FROM (jsonb_to_recordset(CAST(CAST($1 AS text) AS jsonb))
                      AS (name text, type text, payload jsonb, description text, priority integer,
                          max_retries integer, timeout_seconds double precision, idempotency_key text,
                          delay_seconds double precision, run_at timestamptz, queue text,
                          limit_key text, trace_parent text))
           WITH ORDINALITY AS n
      LEFT JOIN LATERAL limit_of(n.type, n.queue) AS lim ON true
     ORDER BY n.ordinality
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, idempotency_key
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 0 /*QUEUED*/, CAST($2 AS text) FROM inserted
), woken AS (
    SELECT count(pg_notify($3, '')) AS sent
     WHERE CAST($3 AS text) IS NOT NULL AND EXISTS (SELECT FROM inserted)
)
SELECT inserted.id, inserted.idempotency_key FROM inserted LEFT JOIN woken ON true ORDER BY inserted.id;

-- name: enqueued_tasks
-- Tasks of a type, name and status (each NULL: any), oldest first, on the application's own
-- connection (taskservice.testing.enqueued): it sees its transaction's uncommitted tasks too. The
-- payload comes as text, whatever the driver's jsonb codec; no `::` casts (see enqueue_task).
SELECT id, name, type, status, CAST(payload AS text) AS payload, retries, max_retries, priority,
       description, timeout_seconds, attempts, created_at, updated_at, run_at, idempotency_key
  FROM tasks
 WHERE (CAST($1 AS text) IS NULL OR type = CAST($1 AS text))
   AND (CAST($2 AS text) IS NULL OR name = CAST($2 AS text))
   AND (CAST($3 AS smallint) IS NULL OR status = CAST($3 AS smallint))
 ORDER BY id;

-- name: ids_by_idempotency_key
-- Written with CAST (see enqueue_task): enqueue_many runs it on the application's connection too.
SELECT id, idempotency_key FROM tasks WHERE idempotency_key = ANY(CAST($1 AS text[]));

-- name: get_task
-- A task, with the worker and lease of its open attempt while it runs, its current (or last) attempt's
-- worker, duration and error, and the tasks it waits for.
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       e.error AS last_error,
       CASE WHEN t.workflow_id IS NOT NULL
            THEN ARRAY(SELECT d.parent_id FROM task_dependencies d WHERE d.task_id = t.id ORDER BY d.parent_id)
       END AS dependencies
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id = $1;

-- name: list_tasks
-- Newest first: ids come from a sequence, so id order is creation order and pages are stable.
-- The page's ids come first, from an index alone however deep the page, then their rows.
-- One statement per combination of the status and type filters, each planned on its own index
-- (a generic `$1 IS NULL OR status = $1` plan could not use one); and each oldest first too
-- (`_oldest_first`, the same index read forwards). With each task its current (or last) attempt's
-- worker, duration and error (its first 257 characters: a list cuts it to 256, marked), by the
-- attempt's primary key.
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE ($1::text IS NULL OR name ILIKE '%' || $1 || '%')
                 ORDER BY id DESC
                 LIMIT $2 OFFSET $3)
 ORDER BY t.id DESC;

-- name: list_tasks_oldest_first
-- As list_tasks, oldest first.
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE ($1::text IS NULL OR name ILIKE '%' || $1 || '%')
                 ORDER BY id
                 LIMIT $2 OFFSET $3)
 ORDER BY t.id;

-- name: list_tasks_of_status
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE status = $1::smallint
                   AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%')
                 ORDER BY id DESC
                 LIMIT $3 OFFSET $4)
 ORDER BY t.id DESC;

-- name: list_tasks_of_status_oldest_first
-- As list_tasks_of_status, oldest first.
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE status = $1::smallint
                   AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%')
                 ORDER BY id
                 LIMIT $3 OFFSET $4)
 ORDER BY t.id;

-- name: list_tasks_of_type
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE type = $1::text
                   AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%')
                 ORDER BY id DESC
                 LIMIT $3 OFFSET $4)
 ORDER BY t.id DESC;

-- name: list_tasks_of_type_oldest_first
-- As list_tasks_of_type, oldest first.
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE type = $1::text
                   AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%')
                 ORDER BY id
                 LIMIT $3 OFFSET $4)
 ORDER BY t.id;

-- name: list_tasks_of_status_and_type
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE status = $1::smallint AND type = $2::text
                   AND ($3::text IS NULL OR name ILIKE '%' || $3 || '%')
                 ORDER BY id DESC
                 LIMIT $4 OFFSET $5)
 ORDER BY t.id DESC;

-- name: list_tasks_of_status_and_type_oldest_first
-- As list_tasks_of_status_and_type, oldest first.
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE status = $1::smallint AND type = $2::text
                   AND ($3::text IS NULL OR name ILIKE '%' || $3 || '%')
                 ORDER BY id
                 LIMIT $4 OFFSET $5)
 ORDER BY t.id;

-- name: list_tasks_of_statuses
-- An old client's status filter, which also matches the statuses it is shown as that one (QUEUED:
-- RETRYING too; FAILED: CANCELLED too). Not on any hot path: our clients filter by one exact status.
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE status = ANY($1::smallint[])
                   AND ($2::text IS NULL OR type = $2)
                   AND ($3::text IS NULL OR name ILIKE '%' || $3 || '%')
                 ORDER BY id DESC
                 LIMIT $4 OFFSET $5)
 ORDER BY t.id DESC;

-- name: list_tasks_of_statuses_oldest_first
-- As list_tasks_of_statuses, oldest first.
SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
       CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
       e.worker_id AS last_worker_id,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
       left(e.error, 257) AS last_error
  FROM tasks t
  LEFT JOIN task_executions e ON e.id = t.execution_id
 WHERE t.id IN (SELECT id
                  FROM tasks
                 WHERE status = ANY($1::smallint[])
                   AND ($2::text IS NULL OR type = $2)
                   AND ($3::text IS NULL OR name ILIKE '%' || $3 || '%')
                 ORDER BY id
                 LIMIT $4 OFFSET $5)
 ORDER BY t.id;

-- name: count_tasks_of_statuses
SELECT coalesce(sum(count), 0)::bigint
  FROM task_counts
 WHERE status = ANY($1::smallint[])
   AND ($2::text IS NULL OR type = $2);

-- name: list_tasks_sorted
-- A page of the tasks matching the filters in another order than creation's: by name, type, status,
-- its current (or last) attempt's duration, worker or error ($4; ties newest first); with how many
-- match, counted up to $7 (model.SORTED_MAX + 1): the page is read only when fewer match (else the
-- one row says how many, its task columns NULL). One pass over the matching tasks (by the status or
-- type index when filtered by them), stopping at $7; the page is sorted from their ids. Planned for
-- each call's values (in the transaction of plan_for_the_dashboard), so that a filter left NULL plans
-- as absent. Attempts without an end run until now; tasks without an attempt sort last.
WITH matching AS MATERIALIZED (
    SELECT id
      FROM tasks
     WHERE ($1::smallint[] IS NULL OR status = ANY($1::smallint[]))
       AND ($2::text IS NULL OR type = $2)
       AND ($3::text IS NULL OR name ILIKE '%' || $3 || '%')
     LIMIT $7
), counted AS (
    SELECT count(*) AS matching FROM matching
)
SELECT counted.matching, page.*
  FROM counted
  LEFT JOIN LATERAL (
    SELECT t.*, CASE WHEN t.status = 1 /*RUNNING*/ THEN e.worker_id END AS lease_owner,
           CASE WHEN t.status = 1 /*RUNNING*/ THEN e.lease_expires_at END AS lease_expires_at,
           e.worker_id AS last_worker_id,
           extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS last_attempt_seconds,
           left(e.error, 257) AS last_error
      FROM tasks t
      LEFT JOIN task_executions e ON e.id = t.execution_id
     WHERE t.id IN (SELECT id FROM matching) AND counted.matching < $7
     ORDER BY CASE WHEN $4 = 'name_asc' THEN t.name END ASC,
              CASE WHEN $4 = 'name_desc' THEN t.name END DESC,
              CASE WHEN $4 = 'type_asc' THEN t.type END ASC,
              CASE WHEN $4 = 'type_desc' THEN t.type END DESC,
              CASE WHEN $4 = 'status_asc' THEN t.status END ASC,
              CASE WHEN $4 = 'status_desc' THEN t.status END DESC,
              CASE WHEN $4 = 'duration_asc' THEN coalesce(e.finished_at, now()) - e.started_at END ASC NULLS LAST,
              CASE WHEN $4 = 'duration_desc' THEN coalesce(e.finished_at, now()) - e.started_at END DESC NULLS LAST,
              CASE WHEN $4 = 'worker_asc' THEN e.worker_id END ASC NULLS LAST,
              CASE WHEN $4 = 'worker_desc' THEN e.worker_id END DESC NULLS LAST,
              CASE WHEN $4 = 'error_asc' THEN left(e.error, 257) END ASC NULLS LAST,
              CASE WHEN $4 = 'error_desc' THEN left(e.error, 257) END DESC NULLS LAST,
              t.id DESC
     LIMIT $5 OFFSET $6
  ) AS page ON true;

-- name: count_tasks_of_statuses_named
SELECT count(*)
  FROM tasks
 WHERE status = ANY($1::smallint[])
   AND ($2::text IS NULL OR type = $2)
   AND name ILIKE '%' || $3 || '%';

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
SELECT e.id, e.task_id, e.attempt, e.worker_id, e.started_at, e.finished_at, e.outcome, e.error,
       e.result, e.traceback, extract(epoch FROM e.started_at - t.created_at)::float8 AS started_after_seconds
  FROM task_executions e
  JOIN tasks t ON t.id = e.task_id
 WHERE e.task_id = $1
 ORDER BY e.attempt, e.id;

-- name: status_counts
-- The sum over the slots of the counts the triggers keep (migration 0002): no scan.
SELECT status, sum(count)::bigint AS count FROM task_counts GROUP BY status;

-- name: pause
-- Pause a queue or a task type ($1: 'queue' or 'type'; $2 its name), cluster-wide: the claim takes
-- none of its tasks from this commit on. Pausing what is paused keeps the first pause's time and
-- says so (`created` false).
INSERT INTO task_pauses (kind, name, reason, paused_by) VALUES ($1, $2, $3, $4)
    ON CONFLICT (kind, name) DO UPDATE SET reason = task_pauses.reason
RETURNING kind, name, reason, paused_by, paused_at, (xmax = 0) AS created;

-- name: resume
DELETE FROM task_pauses WHERE kind = $1 AND name = $2 RETURNING kind, name;

-- name: pauses
SELECT kind, name, reason, paused_by, paused_at FROM task_pauses ORDER BY kind, name;

-- name: queue_counts
-- Waiting (QUEUED or RETRYING) and running tasks by queue, from the counts the triggers keep
-- (migration 0040): no scan of the tasks.
SELECT queue,
       coalesce(sum(count) FILTER (WHERE status IN (0 /*QUEUED*/, 6 /*RETRYING*/)), 0)::bigint AS waiting,
       coalesce(sum(count) FILTER (WHERE status = 1 /*RUNNING*/), 0)::bigint AS running
  FROM task_counts
 GROUP BY queue
 ORDER BY queue;

-- name: queue_depth
-- Tasks due now and waiting for a worker.
SELECT count(*) FROM tasks WHERE status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND run_at <= now();

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

-- name: last_attempt_id
-- Where the attempt metrics start counting (api/metrics.py): the newest attempt now.
SELECT coalesce(max(id), 0)::bigint FROM task_executions;

-- name: attempts_after
-- Attempts with an id above $1, oldest first, at most $2 (the attempt metrics read each attempt
-- once, in batches, by the primary key: no scan however many there are); and those of $3 (ids that
-- were missing from an earlier batch, or seen running then): the same columns, by the primary key.
-- Each attempt's task by its primary key too (the OFFSET 0 keeps the lateral lookup a lookup: as a
-- join, a batch of 10,000 made the planner hash the whole tasks table, 0.4 s at a million).
-- `retried`: it ended failed, timed out or lost and its task was to run again (RETRYING or QUEUED
-- after it, or a later attempt started). Waits and run times in seconds; NULL when not known. An
-- attempt whose task is gone comes with a NULL type: not counted, but read (the batch moves past it).
WITH e AS (
    (SELECT * FROM task_executions WHERE id > $1 ORDER BY id LIMIT $2)
     UNION ALL
    SELECT * FROM task_executions WHERE id = ANY($3::bigint[]) AND id <= $1
)
SELECT e.id, t.type, t.queue, e.outcome, e.finished_at IS NOT NULL AS finished,
       extract(epoch FROM e.finished_at - e.started_at)::float8 AS run_seconds,
       extract(epoch FROM e.started_at - e.due_at)::float8 AS wait_seconds,
       (e.outcome IN ('failed', 'timed_out', 'lost')
        AND (t.attempts > e.attempt OR (t.execution_id = e.id AND t.status IN (0 /*QUEUED*/, 6 /*RETRYING*/))))
           AS retried
  FROM e
  LEFT JOIN LATERAL (SELECT type, queue, status, attempts, execution_id
                       FROM tasks WHERE id = e.task_id OFFSET 0) t ON true;

-- The operator's dashboard (issue 24) ----------------------------------------------------------

-- name: plan_for_the_dashboard
-- In a transaction of the statements below (store/stats.py), undone when it ends. Bitmap scans: the
-- pool's sessions plan without them (db/connect.py), and a BRIN index is read by nothing else. A
-- plan for each call's values: a worker's attempts are read through its own index when it ran few
-- (one gone long ago), by the primary key backwards when it ran most; a generic plan, guessing one
-- worker's share of the attempts, would read the whole table for the first. Each attempt's task by
-- its primary key: a hash join would read every task there is to find a day's (510 ms against 190
-- at a million tasks, tests/test_operator_plans.py). No JIT: compiling costs more (40 ms) than it
-- saves on a week's window.
-- One statement (set_config(..., true) is SET LOCAL), so that it prepares like every other.
SELECT set_config('enable_bitmapscan', 'on', true), set_config('plan_cache_mode', 'force_custom_plan', true),
       set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
       set_config('jit', 'off', true);

-- name: window_index_missing
-- Whether the BRIN index on finished_at that the windows below read from PostgreSQL 16 on is missing
-- there: migration 0120 drops it before 16, and a database pg_upgrade moved to 16 or later keeps that.
SELECT current_setting('server_version_num')::integer >= 160000
       AND to_regclass('idx_task_executions_finished_at') IS NULL;

-- name: create_window_index
-- What puts it back (an operator's statement: docs/performance.md).
CREATE INDEX CONCURRENTLY idx_task_executions_finished_at ON task_executions
    USING brin (finished_at) WITH (autosummarize = on);

-- name: type_stats
-- Per task type, the attempts that finished within the last $1 seconds: how many, how many
-- succeeded and failed (failed, timed out, lost), and the percentiles of their durations and of their
-- queue waits (from when the attempt was due: its task's run_at for the task's current attempt, its
-- creation for an earlier first attempt; other attempts' due times are not kept). The window is read
-- through the BRIN index on finished_at (migration 0004), each attempt's task by its primary key.
SELECT t.type,
       count(*) AS finished,
       count(*) FILTER (WHERE e.outcome = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE e.outcome IN ('failed', 'timed_out', 'lost')) AS failed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.finished_at - e.started_at)) AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM e.finished_at - e.started_at)) AS p95_seconds,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY CASE WHEN e.id = t.execution_id
                         THEN extract(epoch FROM e.started_at - least(t.run_at, e.started_at))
                         WHEN e.attempt = 1
                         THEN extract(epoch FROM e.started_at - least(t.created_at, e.started_at))
                    END) AS p95_wait_seconds
  FROM task_executions e
  JOIN tasks t ON t.id = e.task_id
 WHERE e.finished_at > now() - make_interval(secs => $1::float8)
 GROUP BY t.type
 ORDER BY t.type;

-- name: throughput_buckets
-- The attempts that finished within the last $1 seconds, succeeded and failed (as type_stats), in
-- $2 equal buckets of that window, oldest first, empty ones included, each with its start; the last
-- one ends now. From the BRIN index on finished_at alone: no task is read.
WITH counted AS (
    SELECT least(floor(extract(epoch FROM e.finished_at - (now() - make_interval(secs => $1::float8)))
                       * $2::integer / $1::float8)::integer, $2::integer - 1) AS bucket,
           count(*) FILTER (WHERE e.outcome = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE e.outcome IN ('failed', 'timed_out', 'lost')) AS failed
      FROM task_executions e
     WHERE e.finished_at > now() - make_interval(secs => $1::float8)
     GROUP BY 1
)
SELECT g.i AS bucket,
       now() - make_interval(secs => $1::float8 * ($2::integer - g.i) / $2::integer) AS start,
       coalesce(c.succeeded, 0) AS succeeded, coalesce(c.failed, 0) AS failed, now() AS until
  FROM generate_series(0, $2::integer - 1) AS g(i)
  LEFT JOIN counted c ON c.bucket = g.i
 ORDER BY g.i;

-- name: get_worker
-- One worker, as list_workers has it (whenever it was last heard from).
SELECT w.*, (SELECT count(*)
               FROM tasks t
               JOIN task_executions e ON e.id = t.execution_id
              WHERE t.status = 1 /*RUNNING*/ AND e.worker_id = w.id) AS running
  FROM workers w
 WHERE w.id = $1;

-- name: worker_attempts
-- The latest $2 attempts of worker $1, newest first, from idx_task_executions_worker (migration
-- 0080): never more rows read than returned. Each with its task's name and type; its error cut.
SELECT e.id, e.task_id, t.name AS task_name, t.type AS task_type, e.attempt, e.started_at,
       e.finished_at, e.outcome,
       extract(epoch FROM coalesce(e.finished_at, now()) - e.started_at)::float8 AS duration_seconds,
       left(e.error, 256) AS error
  FROM task_executions e
  JOIN tasks t ON t.id = e.task_id
 WHERE e.worker_id = $1
 ORDER BY e.id DESC
 LIMIT $2;

-- name: worker_failures
-- Of the latest $2 attempts of worker $1 (idx_task_executions_worker: at most $2 rows read), the
-- failed, timed out and lost ones, newest first, $3 at most; as worker_attempts.
SELECT e.id, e.task_id, t.name AS task_name, t.type AS task_type, e.attempt, e.started_at,
       e.finished_at, e.outcome,
       extract(epoch FROM e.finished_at - e.started_at)::float8 AS duration_seconds,
       left(e.error, 256) AS error
  FROM (SELECT * FROM task_executions WHERE worker_id = $1 ORDER BY id DESC LIMIT $2) AS e
  JOIN tasks t ON t.id = e.task_id
 WHERE e.outcome IN ('failed', 'timed_out', 'lost')
 ORDER BY e.id DESC
 LIMIT $3;

-- name: ping
SELECT 1;

-- name: lock_task
SELECT * FROM tasks WHERE id = $1 FOR UPDATE;

-- name: set_status
-- An operator's change ($2 = new status, $3 = expected status): cancel, queue again, or settle a
-- running task by hand. Leaving RUNNING closes the open attempt (its worker's report is then refused);
-- queueing again resets the retries and the lost leases. $6: the queue's channel.
WITH moved AS (
    UPDATE tasks
       SET status = $2::smallint,
           retries = CASE WHEN $2::smallint = 0 /*QUEUED*/ THEN 0 ELSE retries END,
           lost_leases = CASE WHEN $2::smallint = 0 /*QUEUED*/ THEN 0 ELSE lost_leases END,
           run_at = CASE WHEN $2::smallint = 0 /*QUEUED*/ THEN now() ELSE run_at END,
           updated_at = now()
     WHERE id = $1 AND status = $3::smallint
    RETURNING id, status, execution_id, workflow_id
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, status, $4::text FROM moved
), executions AS (
    UPDATE task_executions e
       SET finished_at = now(), outcome = $5::text, error = $4::text
      FROM moved
     WHERE e.id = moved.execution_id AND e.finished_at IS NULL
), released AS (
    -- A workflow step settled SUCCEEDED by hand releases its children as its attempt would have.
    SELECT release_children(array_agg(id), $6) FROM moved
     WHERE status = 3 /*SUCCEEDED*/ AND workflow_id IS NOT NULL
    HAVING count(*) > 0
)
SELECT id, CASE WHEN status = 0 /*QUEUED*/ THEN pg_notify($6, '') END IS NULL AS _
  FROM moved CROSS JOIN (SELECT count(*) FROM released) AS r;

-- name: last_task_id
-- The bound of a bulk action: tasks created after it began are not taken.
SELECT coalesce(max(id), 0) FROM tasks;

-- name: pick_tasks
-- One batch of a bulk action (CancelTasks, RetryTasks, DeleteTasks): up to $4 tasks with ids in
-- ($1, $2], of a status in $3, that match the selection ($5-$10, each NULL: any), in id order, locked
-- until this batch's transaction ends. A row another transaction holds is skipped, never waited for:
-- no deadlock with the workers that claim and finish tasks. The same conditions as count_selected.
SELECT id
  FROM tasks
 WHERE id > $1::bigint AND id <= $2::bigint
   AND status = ANY($3::smallint[])
   AND ($5::bigint[] IS NULL OR id = ANY($5::bigint[]))
   AND ($6::text IS NULL OR type = $6::text)
   AND ($7::text IS NULL OR name ILIKE '%' || $7::text || '%')
   AND ($8::timestamptz IS NULL OR created_at >= $8::timestamptz)
   AND ($9::timestamptz IS NULL OR created_at < $9::timestamptz)
   AND ($10::text IS NULL OR queue = $10::text)
 ORDER BY id
 LIMIT $4
   FOR UPDATE SKIP LOCKED;

-- name: count_selected
-- A bulk action's dry run: the tasks pick_tasks would take now ($1 statuses, $2-$7 as its $5-$10).
SELECT count(*)
  FROM tasks
 WHERE status = ANY($1::smallint[])
   AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
   AND ($3::text IS NULL OR type = $3::text)
   AND ($4::text IS NULL OR name ILIKE '%' || $4::text || '%')
   AND ($5::timestamptz IS NULL OR created_at >= $5::timestamptz)
   AND ($6::timestamptz IS NULL OR created_at < $6::timestamptz)
   AND ($7::text IS NULL OR queue = $7::text);

-- name: cancel_picked
-- Cancel the tasks $1 that pick_tasks locked, as set_status does one: each with its history row ($2),
-- and a running one's open attempt closed ($3: the outcome), which fences it (its worker's heartbeat
-- and report are refused from then on, and the worker stops it). Returns how many were cancelled.
-- (A workflow step's WAITING descendants follow it: the trigger workflow_cancel_downstream.)
WITH moved AS (
    UPDATE tasks
       SET status = 7 /*CANCELLED*/, updated_at = now()
     WHERE id = ANY($1::bigint[])
       AND status IN (0 /*QUEUED*/, 6 /*RETRYING*/, 1 /*RUNNING*/, 8 /*WAITING*/)
    RETURNING id, execution_id
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 7 /*CANCELLED*/, $2::text FROM moved
), executions AS (
    UPDATE task_executions e
       SET finished_at = now(), outcome = $3::text, error = $2::text
      FROM moved
     WHERE e.id = moved.execution_id AND e.finished_at IS NULL
)
SELECT count(*) FROM moved;

-- name: retry_picked
-- Queue again the finished tasks $1 that pick_tasks locked, as set_status does one: retries and lost
-- leases reset, due now, each with its history row ($2). The wake-up follows the commit (store.Waker).
-- Workflow steps are left to RetryWorkflow, which waits for their parents again.
WITH moved AS (
    UPDATE tasks
       SET status = 0 /*QUEUED*/, retries = 0, lost_leases = 0, run_at = now(), updated_at = now()
     WHERE id = ANY($1::bigint[]) AND status IN (3 /*SUCCEEDED*/, 2 /*FAILED*/, 7 /*CANCELLED*/)
       AND workflow_id IS NULL
    RETURNING id
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 0 /*QUEUED*/, $2::text FROM moved
)
SELECT count(*) FROM moved;

-- name: delete_picked
-- Delete the finished tasks $1 that pick_tasks locked, with their history and attempts, as
-- delete_finished_tasks does (the kept counts follow through the delete trigger). Returns how many.
-- A workflow's steps are not deleted one by one: they go with their workflow (retention).
WITH gone AS (
    DELETE FROM tasks
     WHERE id = ANY($1::bigint[]) AND status IN (3 /*SUCCEEDED*/, 2 /*FAILED*/, 7 /*CANCELLED*/)
       AND workflow_id IS NULL
    RETURNING id
), history_gone AS (
    DELETE FROM task_history h USING gone WHERE h.task_id = gone.id
), attempts_gone AS (
    DELETE FROM task_executions e USING gone WHERE e.task_id = gone.id
)
SELECT count(*) FROM gone;

-- name: claim_tasks
-- Claim up to $2 due tasks by priority then due time then age, skipping rows other workers hold;
-- start an attempt for each (execution row, leased for $4 seconds, and history row). $1 names the
-- lease owner of each slot, in order ($2 entries): a worker passes its own id $2 times, the server's
-- dispatcher one entry per free slot of its agents, so one statement claims for many of them.
-- $3: task types to take (empty: all); $5: queues to take (empty: all). A paused queue's or type's
-- tasks are not taken (task_pauses, in the same statement: a pause holds for every claimer from its
-- commit on). Anti-joins with the few pauses keep the plan an ordered walk of the claim index on the
-- pool's sessions (db/connect.py turns bitmap scans off, which is what keeps the generic plans of these
-- filters from sorting the whole queue on a never-analyzed table; tests/test_plans.py checks them).
-- The attempt's id is the task's new fencing token.
-- Tasks under a limit (migration 0050) are not in the claim index: when some wait and slots are
-- left, claim_limited fills them, key by key, within the limits (its slots are the owners left).
WITH picked AS (
    SELECT id, attempts + 1 AS attempt, priority, run_at
      FROM tasks t
     WHERE status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND limit_scope IS NULL AND run_at <= now()
       AND (cardinality($3::text[]) = 0 OR type = ANY($3::text[]))
       AND (cardinality($5::text[]) = 0 OR queue = ANY($5::text[]))
       AND NOT EXISTS (SELECT 1 FROM task_pauses p WHERE p.kind = 'queue' AND p.name = t.queue)
       AND NOT EXISTS (SELECT 1 FROM task_pauses p WHERE p.kind = 'type' AND p.name = t.type)
     ORDER BY priority DESC, run_at, id
     LIMIT $2
       FOR UPDATE OF t SKIP LOCKED
), slotted AS (
    SELECT id, attempt, run_at, row_number() OVER (ORDER BY priority DESC, run_at, id) AS slot FROM picked
), executions AS (
    INSERT INTO task_executions (task_id, attempt, worker_id, lease_expires_at, due_at)
    SELECT p.id, p.attempt, o.owner, now() + make_interval(secs => $4), p.run_at
      FROM slotted p
      JOIN unnest($1::text[]) WITH ORDINALITY AS o(owner, slot) ON o.slot = p.slot
    RETURNING id, task_id, attempt, worker_id, lease_expires_at
), claimed AS (
    UPDATE tasks t
       SET status = 1 /*RUNNING*/, attempts = e.attempt, execution_id = e.id, updated_at = now()
      FROM executions e
     WHERE t.id = e.task_id
    RETURNING t.*, e.worker_id AS lease_owner, e.lease_expires_at
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 1 /*RUNNING*/, 'Task started (Attempt ' || attempts || ')' FROM claimed
), limited AS (
    SELECT (l.claimed).*, l.claimed_owner AS lease_owner, l.claimed_lease AS lease_expires_at
      FROM claim_limited(($1::text[])[(SELECT count(*) FROM picked) + 1:], $3::text[], $5::text[], $4) AS l
     WHERE (SELECT count(*) FROM picked) < $2
       AND (SELECT limit_scope
              FROM tasks
             WHERE status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND limit_scope IS NOT NULL
             ORDER BY limit_scope
             LIMIT 1) IS NOT NULL  -- (the first entry of the limited tasks' index)
)
SELECT * FROM claimed
 UNION ALL
SELECT * FROM limited
 ORDER BY priority DESC, run_at, id;

-- name: finish_attempts
-- Apply decided ends of attempts ($1, one `attempt_outcome_v2` row each: migration 0031). Fenced: an
-- outcome counts only if its attempt is still the task's current one (the task RUNNING under that
-- execution_id); otherwise (cancelled, reaped, settled by hand) nothing changes. Returns the
-- execution ids that counted. Tasks are locked before their attempts, as everywhere. $2: the
-- queue's channel.
-- An agent's report (ReportOutcomes) names the agent $3 and its caller $4 (NULL: auth is off); NULL
-- $3 for a worker's own outcomes. Then nothing at all changes unless every attempt was started for
-- that agent and the caller registered it: the rows `not_held` returns instead name the attempts that
-- are not (and a NULL one when the caller did not register the agent). An attempt's worker never
-- changes once it is made, so the check and the finish see the same owners.
-- Workflow steps (migration 0070): the succeeded ones' children are released by one call for the
-- whole batch (release_children), made only when the batch holds a step. A WAITING outcome (a
-- continuation) waits for the children spawn_children counted for it just before, in this
-- transaction; none counted (every child it named existed already), it is queued again at once.
WITH d AS (
    SELECT * FROM unnest($1::attempt_outcome_v2[])
), not_held AS (
    SELECT e.id
      FROM task_executions e
      LEFT JOIN workers w ON w.id = e.worker_id
     WHERE $3::text IS NOT NULL AND e.id IN (SELECT execution_id FROM d)
       AND (e.worker_id <> $3::text OR w.principal IS DISTINCT FROM $4::text)
     UNION ALL
    SELECT NULL
     WHERE $3::text IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM workers WHERE id = $3::text AND principal IS NOT DISTINCT FROM $4::text)
), moved AS (
    UPDATE tasks t
       SET status = CASE WHEN d.status = 8 /*WAITING*/ AND coalesce(t.waiting_on, 0) <= 0
                         THEN 0 /*QUEUED*/ ELSE d.status END,
           retries = d.retries, lost_leases = d.lost_leases,
           run_at = now() + make_interval(secs => d.delay_seconds), updated_at = now()
      FROM d
     WHERE t.id = d.task_id AND t.status = 1 /*RUNNING*/ AND t.execution_id = d.execution_id
       AND NOT EXISTS (SELECT 1 FROM not_held)
    RETURNING t.id, t.status, d.execution_id, d.delay_seconds, t.workflow_id
), closed AS (
    UPDATE task_executions e
       SET finished_at = now(), outcome = d.outcome, error = d.error, result = d.result,
           traceback = d.traceback, lease_expires_at = NULL
      FROM d JOIN moved ON moved.execution_id = d.execution_id
     WHERE e.id = d.execution_id
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT d.task_id, moved.status, d.details FROM d JOIN moved ON moved.execution_id = d.execution_id
), wake AS (
    -- Tasks that are due again at once: tell the waiting workers.
    SELECT pg_notify($2, '')
     WHERE EXISTS (SELECT 1 FROM moved
                    WHERE status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND delay_seconds = 0)
), released AS (
    SELECT release_children(array_agg(id), $2) FROM moved
     WHERE status = 3 /*SUCCEEDED*/ AND workflow_id IS NOT NULL
    HAVING count(*) > 0
)
-- (Joined, not LEFT JOINed: the planner drops a LEFT JOIN to an unused one-row subquery, and a CTE
-- that nothing reads never runs.)
SELECT moved.execution_id, NULL::bigint AS not_held, false AS refused
  FROM moved
 CROSS JOIN (SELECT count(*) FROM wake) AS w
 CROSS JOIN (SELECT count(*) FROM released) AS r
 UNION ALL
SELECT NULL, id, true FROM not_held;

-- name: extend_leases
-- A worker's heartbeat: extend the leases of the attempts ($2) it still holds and record that it
-- is alive. Returns the attempts it still holds; one missing was cancelled, reaped or settled.
-- Touches only the attempt rows (a HOT update: no index holds the lease).
WITH alive AS (
    UPDATE workers SET last_heartbeat_at = now() WHERE id = $1
)
UPDATE task_executions
   SET lease_expires_at = now() + make_interval(secs => $3)
 WHERE id = ANY($2::bigint[]) AND finished_at IS NULL AND worker_id = $1
RETURNING id;

-- name: extend_agent_leases
-- An agent's heartbeat through the API: extend_leases, only if agent $1 was registered by the caller
-- $4 (NULL: auth is off). `mine` is NULL for an agent nobody registered (the original's agent names a
-- uuid of its own: nothing to extend), false for one another principal registered (nothing changes).
-- $5 false: the leases only, the agent not recorded alive (the Kubernetes controller's, for its Jobs).
WITH owner AS (
    SELECT principal IS NOT DISTINCT FROM $4::text AS mine FROM workers WHERE id = $1
), alive AS (
    UPDATE workers SET last_heartbeat_at = now()
     WHERE id = $1 AND principal IS NOT DISTINCT FROM $4::text AND $5::boolean
), extended AS (
    UPDATE task_executions
       SET lease_expires_at = now() + make_interval(secs => $3)
     WHERE id = ANY($2::bigint[]) AND finished_at IS NULL AND worker_id = $1
       AND (SELECT mine FROM owner)
    RETURNING id
)
SELECT (SELECT mine FROM owner) AS mine, array(SELECT id FROM extended) AS kept;

-- name: attempt_holder
-- Who holds an open attempt $1: the worker or agent it was started for, its kind and registrant.
SELECT w.id, w.kind, w.principal
  FROM task_executions e
  JOIN workers w ON w.id = e.worker_id
 WHERE e.id = $1 AND e.finished_at IS NULL;

-- name: attempt_worker
-- Who an attempt $1 was started for, open or closed: its worker or agent, kind and registrant.
SELECT w.id, w.kind, w.principal, e.finished_at IS NOT NULL AS finished, e.outcome
  FROM task_executions e
  JOIN workers w ON w.id = e.worker_id
 WHERE e.id = $1;

-- name: note_running
-- The original's controller says RUNNING ($2: its words) during an attempt of ours: a history line.
INSERT INTO task_history (task_id, status, details)
SELECT id, 1 /*RUNNING*/, $2::text FROM tasks WHERE id = $1 AND status = 1 /*RUNNING*/;

-- name: reopen_attempt
-- The original's controller starts its next attempt ($3: its words) of a task its agent $2 holds
-- between attempts (RETRYING after that agent's failed attempt, kept from others by its run_at):
-- a new attempt for the same agent, leased for $4 seconds; the retry is spent now that it runs.
WITH opened AS (
    INSERT INTO task_executions (task_id, attempt, worker_id, lease_expires_at, due_at)
    SELECT id, attempts + 1, $2::text, now() + make_interval(secs => $4), run_at
      FROM tasks WHERE id = $1 AND status = 6 /*RETRYING*/
    RETURNING id, task_id, attempt
), moved AS (
    UPDATE tasks t
       SET status = 1 /*RUNNING*/, attempts = o.attempt, execution_id = o.id, retries = t.retries + 1,
           updated_at = now()
      FROM opened o
     WHERE t.id = o.task_id AND t.status = 6 /*RETRYING*/
    RETURNING t.id
)
INSERT INTO task_history (task_id, status, details)
SELECT id, 1 /*RUNNING*/, $3::text FROM moved;

-- name: extend_original_holds
-- An original-style agent $1's open stream keeps what it holds of tasks $2 for $3 more seconds: the
-- lease of its open attempt, or, between its controller's attempts (RETRYING after its failed
-- attempt), the task's run_at, which keeps anyone else from claiming it; and records that the agent
-- is alive (`task-cli workers`, waiting reasons). Returns the tasks it holds.
WITH alive AS (
    UPDATE workers SET last_heartbeat_at = now() WHERE id = $1
), held AS (
    SELECT t.id, t.status, t.execution_id
      FROM tasks t
      JOIN task_executions e ON e.id = t.execution_id
     WHERE t.id = ANY($2::bigint[]) AND e.worker_id = $1
       AND ((t.status = 1 /*RUNNING*/ AND e.finished_at IS NULL)
            OR (t.status = 6 /*RETRYING*/ AND e.outcome = 'failed'))
), leases AS (
    UPDATE task_executions e
       SET lease_expires_at = now() + make_interval(secs => $3)
      FROM held
     WHERE e.id = held.execution_id AND held.status = 1 /*RUNNING*/ AND e.finished_at IS NULL
), waits AS (
    UPDATE tasks t
       SET run_at = now() + make_interval(secs => $3)
      FROM held
     WHERE t.id = held.id AND held.status = 6 /*RETRYING*/ AND t.status = 6 /*RETRYING*/
)
SELECT id FROM held;

-- name: release_original_holds
-- An original-style agent $1's stream ended: the tasks $2 it held between its controller's attempts
-- are due at once (anyone may claim them). Its open attempts keep their leases until they run out.
WITH released AS (
    UPDATE tasks t
       SET run_at = now(), updated_at = now()
      FROM task_executions e
     WHERE t.id = ANY($2::bigint[]) AND t.status = 6 /*RETRYING*/ AND e.id = t.execution_id
       AND e.worker_id = $1 AND e.outcome = 'failed' AND t.run_at > now()
    RETURNING t.id
)
SELECT count(*) AS released, CASE WHEN count(*) > 0 THEN pg_notify($3, '') END IS NULL AS _ FROM released;

-- name: expired_leases
-- Running tasks whose worker stopped heartbeating, with their open attempt. The few RUNNING tasks
-- come from idx_tasks_status_id; their attempts by primary key.
SELECT t.*, e.worker_id AS lease_owner, e.lease_expires_at
  FROM tasks t
  JOIN task_executions e ON e.id = t.execution_id
 WHERE t.status = 1 /*RUNNING*/ AND e.lease_expires_at < now()
 ORDER BY e.lease_expires_at
 LIMIT $1
   FOR UPDATE OF t SKIP LOCKED;

-- name: register_worker
-- $6: 'worker' (claims from PostgreSQL) or 'agent' (fed by a server's dispatch stream). $7: who
-- registers it (migration 0030; NULL for direct workers and with auth off). $8: the queues it serves
-- (migration 0040; empty: every queue). $9: the release it runs (migration 0110; NULL: not said). An id
-- another principal registered is not taken over: no row comes back then.
INSERT INTO workers (id, host, pid, concurrency, task_types, kind, principal, queues, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (id) DO UPDATE
   SET host = excluded.host, pid = excluded.pid, concurrency = excluded.concurrency,
       task_types = excluded.task_types, kind = excluded.kind, queues = excluded.queues,
       version = excluded.version, started_at = now(),
       last_heartbeat_at = now(), stopped_at = NULL
 WHERE workers.principal IS NOT DISTINCT FROM excluded.principal
RETURNING id;

-- name: stop_worker
UPDATE workers SET stopped_at = now(), last_heartbeat_at = now() WHERE id = $1;

-- name: list_workers
-- Live workers first, then those gone within the last day, most recent first, with the number of
-- attempts each runs now.
SELECT w.*, coalesce(r.running, 0) AS running
  FROM workers w
  LEFT JOIN (SELECT e.worker_id, count(*) AS running
               FROM tasks t
               JOIN task_executions e ON e.id = t.execution_id
              WHERE t.status = 1 /*RUNNING*/
              GROUP BY e.worker_id) AS r ON r.worker_id = w.id
 WHERE w.last_heartbeat_at > now() - interval '1 day'
 ORDER BY w.stopped_at IS NOT NULL, w.last_heartbeat_at DESC
 LIMIT $1;

-- name: try_retention_lock
-- At most one process at a time deletes old tasks, across every server and worker: the lock is
-- held until this transaction ends. $1: the lock's key (store/retention.py).
SELECT pg_try_advisory_xact_lock($1);

-- name: delete_finished_tasks
-- Delete up to $3 tasks of status $1 last changed before $2, oldest first, with their history and
-- attempts, in one statement (not a workflow's steps: delete_finished_workflows) (the kept counts follow through the delete trigger). The tasks come
-- from idx_tasks_status_id in id order, which is nearly the order they finished in. Returns how
-- many tasks went.
WITH doomed AS (
    SELECT id
      FROM tasks
     WHERE status = $1::smallint AND updated_at < $2::timestamptz
       AND workflow_id IS NULL  -- a workflow's steps go with it (delete_finished_workflows)
     ORDER BY id
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM tasks t USING doomed WHERE t.id = doomed.id RETURNING t.id
), history_gone AS (
    DELETE FROM task_history h USING gone WHERE h.task_id = gone.id
), attempts_gone AS (
    DELETE FROM task_executions e USING gone WHERE e.task_id = gone.id
)
SELECT count(*) FROM gone;

-- name: database_exists
-- Run by store/databases.py with psycopg (a raw cursor: $1 placeholders as here).
SELECT 1 FROM pg_database WHERE datname = $1;

-- name: create_database
-- A template: {name} is the quoted identifier (psycopg.sql), as a parameter cannot be one.
CREATE DATABASE {name};

-- name: register_task_types
-- Upsert task type declarations: $1 is a JSON object, task type name -> declaration.
INSERT INTO task_types (name, declaration, updated_at)
SELECT key, value, now() FROM jsonb_each($1::jsonb)
    ON CONFLICT (name) DO UPDATE SET declaration = excluded.declaration, updated_at = now();

-- name: task_type_declaration
-- The declaration of task type $1 last published (no row: none was).
SELECT declaration FROM task_types WHERE name = $1;

-- name: container_declarations
-- The declarations of container task types (those with a "container": run by the Kubernetes
-- agent), by name: the server renders their tasks' containers from them. A few rows at most.
SELECT name, declaration FROM task_types WHERE declaration -> 'container' IS NOT NULL;

-- name: live_task_types
-- The task types that workers heard from within $1 seconds can run, each with its declaration
-- (NULL: the type declares nothing).
SELECT l.type, d.declaration
  FROM (SELECT DISTINCT unnest(task_types) AS type
          FROM workers
         WHERE stopped_at IS NULL AND last_heartbeat_at > now() - make_interval(secs => $1)) AS l
  LEFT JOIN task_types d ON d.name = l.type;

-- name: kinds_without_live_worker
-- Of the (type, queue) pairs $1 (a JSON array of {"type", "queue"} objects), those no worker or
-- agent heard from within $2 seconds runs: none runs the type while serving the queue. The workers
-- table holds one row per worker process.
SELECT k.type, k.queue
  FROM jsonb_to_recordset($1::jsonb) AS k(type text, queue text)
 WHERE NOT EXISTS (SELECT 1
                     FROM workers w
                    WHERE w.stopped_at IS NULL
                      AND w.last_heartbeat_at > now() - make_interval(secs => $2)
                      AND k.type = ANY(w.task_types)
                      AND (cardinality(w.queues) = 0 OR k.queue = ANY(w.queues)));

-- name: waiting_without_live_worker
-- Tasks waiting (QUEUED or RETRYING) by type, of the types (in their queues) no worker or agent heard
-- from within $1 seconds runs. From the counts the triggers keep (migrations 0002, 0040): no scan of
-- the tasks, however many wait.
SELECT c.type, sum(c.count)::bigint AS count
  FROM task_counts c
 WHERE c.status IN (0 /*QUEUED*/, 6 /*RETRYING*/)
   AND NOT EXISTS (SELECT 1
                     FROM workers w
                    WHERE w.stopped_at IS NULL
                      AND w.last_heartbeat_at > now() - make_interval(secs => $1)
                      AND c.type = ANY(w.task_types)
                      AND (cardinality(w.queues) = 0 OR c.queue = ANY(w.queues)))
 GROUP BY c.type
HAVING sum(c.count) > 0
 ORDER BY c.type;

-- name: installation_id
SELECT id::text FROM installation;

-- name: limits
-- Every limit (migration 0050), with its tasks waiting and running, from the limited indexes.
SELECT l.kind, l.name, l.scope, l.concurrency, l.rate, l.per_seconds, l.key, l.set_by, l.updated_at,
       (SELECT count(*) FROM tasks t
         WHERE t.status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND t.limit_scope = l.scope) AS waiting,
       (SELECT count(*) FROM tasks t WHERE t.status = 1 /*RUNNING*/ AND t.limit_scope = l.scope) AS running
  FROM task_limits l
 ORDER BY l.kind, l.name;

-- name: lock_limit
-- A limit's row, locked while it changes (the claims of its scope wait meanwhile).
SELECT kind, name, scope, concurrency, rate, per_seconds, key, set_by, updated_at
  FROM task_limits
 WHERE kind = $1 AND name = $2
   FOR UPDATE;

-- name: put_limit
-- Set a limit on a type or queue ($1, $2): concurrency $3, rate $4 per $5 seconds, key $6 (each
-- NULL: none), set by $7 (NULL: declared with the type).
INSERT INTO task_limits AS l (kind, name, concurrency, rate, per_seconds, key, set_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (kind, name) DO UPDATE
   SET concurrency = excluded.concurrency, rate = excluded.rate, per_seconds = excluded.per_seconds,
       key = excluded.key, set_by = excluded.set_by, updated_at = now()
RETURNING kind, name, scope, concurrency, rate, per_seconds, key, set_by, updated_at;

-- name: rescope_waiting
-- Put up to $4 waiting tasks of a type or queue ($1 'type' or 'queue', $2 its name) with ids above
-- $3 under their limit as it stands now, as create_tasks does a new one: the type's limit, else the
-- queue's, else none. A task keeps its key unless it had none or $5 (the key parameter changed).
-- Locked rows (being claimed) are skipped: a claim takes them as they were. Returns the last id seen.
WITH picked AS (
    SELECT id
      FROM tasks
     WHERE id > $3::bigint AND status IN (0 /*QUEUED*/, 6 /*RETRYING*/)
       AND CASE WHEN $1::text = 'type' THEN type = $2::text ELSE queue = $2::text END
     ORDER BY id
     LIMIT $4
       FOR UPDATE SKIP LOCKED
), scoped AS (
    SELECT t.id, lim.scope,
           CASE WHEN t.limit_key IS NOT NULL AND NOT $5::boolean THEN t.limit_key
                WHEN lim.scope IS NOT NULL THEN limit_key_of(t.payload, lim.key, NULL)
                ELSE t.limit_key END AS limit_key
      FROM picked p
      JOIN tasks t ON t.id = p.id
      LEFT JOIN LATERAL limit_of(t.type, t.queue) AS lim ON true
), moved AS (
    UPDATE tasks t
       SET limit_scope = s.scope, limit_key = s.limit_key
      FROM scoped s
     WHERE t.id = s.id AND (t.limit_scope, t.limit_key) IS DISTINCT FROM (s.scope, s.limit_key)
)
SELECT max(id) FROM picked;

-- name: limit_waits
-- Why waiting tasks $1 under a limit wait: their limit, their key's running attempts and starts
-- within the rate's period (NULL: no such limit).
SELECT t.id, l.kind, l.name, t.limit_key, l.key, l.concurrency, l.rate, l.per_seconds, l.set_by, l.updated_at,
       (SELECT count(*) FROM tasks r
         WHERE r.status = 1 /*RUNNING*/ AND r.limit_scope = t.limit_scope AND r.limit_key = t.limit_key)
           AS running,
       (SELECT count(*) FROM task_limit_keys k, unnest(k.starts) AS s(at)
         WHERE k.scope = t.limit_scope AND k.limit_key = t.limit_key
           AND s.at > now() - make_interval(secs => l.per_seconds)) AS recent_starts
  FROM tasks t
  JOIN task_limits l ON l.scope = t.limit_scope
 WHERE t.id = ANY($1::bigint[]) AND t.status IN (0 /*QUEUED*/, 6 /*RETRYING*/);

-- name: limit_figures
-- Per limit: its tasks waiting (due or not), the keys they wait under and the most for one key; its
-- attempts running and the keys at their concurrency limit. From the limited tasks' own indexes.
SELECT l.scope, coalesce(w.waiting, 0)::bigint AS waiting, coalesce(w.keys, 0)::bigint AS keys_waiting,
       coalesce(w.most, 0)::bigint AS most_for_a_key, coalesce(r.running, 0)::bigint AS running,
       coalesce(r.keys_full, 0)::bigint AS keys_at_limit
  FROM task_limits l
  LEFT JOIN LATERAL (
        SELECT sum(k.n) AS waiting, count(*) AS keys, max(k.n) AS most
          FROM (SELECT count(*) AS n
                  FROM tasks t
                 WHERE t.status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND t.limit_scope = l.scope
                 GROUP BY t.limit_key) AS k) AS w ON true
  LEFT JOIN LATERAL (
        SELECT sum(k.n) AS running, count(*) FILTER (WHERE k.n >= l.concurrency) AS keys_full
          FROM (SELECT count(*) AS n
                  FROM tasks t
                 WHERE t.status = 1 /*RUNNING*/ AND t.limit_scope = l.scope
                 GROUP BY t.limit_key) AS k) AS r ON true
 ORDER BY l.scope;

-- name: forget_idle_limit_keys
-- The kept starts of up to $2 keys that started nothing since $1 (the retention job passes a day
-- ago, the longest period a rate may have): deleted. Returns how many keys went.
WITH idle AS (
    SELECT scope, limit_key
      FROM task_limit_keys
     WHERE (SELECT max(s.at) FROM unnest(starts) AS s(at)) < $1::timestamptz
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM task_limit_keys k USING idle
     WHERE k.scope = idle.scope AND k.limit_key = idle.limit_key
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: create_schedule
-- A schedule (migration 0060): $1 name, $2 cron, $3 timezone, $4 every_seconds, $5 the task to create
-- at each tick (JSON), $6 overlap, $7 catchup, $8 paused, $9 ends_at, $10 its first tick, $11 the type
-- declaring it (NULL: made through the API), $12 who made it. A name taken returns no row.
INSERT INTO schedules (name, cron, timezone, every_seconds, task, overlap, catchup, paused, ends_at,
                       next_tick, declared_type, created_by)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: update_schedule
-- Replace schedule $1's spec ($2-$9 as create_schedule's $2-$9) and its next tick ($10); $11 the type
-- declaring it (NULL: none), which declares it now (undeclared_at cleared). Its counts and last run
-- stay. Nothing is written when nothing changes; the schedule comes back either way, with its last
-- run's status (no row: gone).
WITH changed AS (
    UPDATE schedules
       SET cron = $2, timezone = $3, every_seconds = $4, task = $5::jsonb, overlap = $6, catchup = $7,
           paused = $8, ends_at = $9, next_tick = $10, declared_type = $11, undeclared_at = NULL,
           updated_at = now()
     WHERE id = $1
       AND (cron, timezone, every_seconds, task, overlap, catchup, paused, ends_at, next_tick, declared_type,
            undeclared_at)
           IS DISTINCT FROM ($2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, NULL::timestamptz)
    RETURNING *
)
SELECT c.*, (SELECT t.status FROM tasks t WHERE t.id = c.last_task_id) AS last_status FROM changed c
 UNION ALL
SELECT s.*, (SELECT t.status FROM tasks t WHERE t.id = s.last_task_id) AS last_status
  FROM schedules s
 WHERE s.id = $1 AND NOT EXISTS (SELECT 1 FROM changed);

-- name: undeclare_schedule
-- Schedule $1 is no longer declared by its type's code: say so once (it keeps running).
UPDATE schedules SET undeclared_at = now() WHERE id = $1 AND undeclared_at IS NULL RETURNING id;

-- name: task_types_changed
-- When a task type declaration last changed (the schedulers reconcile declared schedules then).
SELECT max(updated_at) FROM task_types;

-- name: declarations
-- Every task type's published declaration.
SELECT name, declaration FROM task_types ORDER BY name;

-- name: lock_schedule
SELECT * FROM schedules WHERE name = $1 FOR UPDATE;

-- name: get_schedule
-- A schedule by its name, with the status of its last task (NULL: none, or deleted).
SELECT s.*, t.status AS last_status
  FROM schedules s
  LEFT JOIN tasks t ON t.id = s.last_task_id
 WHERE s.name = $1;

-- name: get_schedule_by_id
SELECT s.*, t.status AS last_status
  FROM schedules s
  LEFT JOIN tasks t ON t.id = s.last_task_id
 WHERE s.id = $1;

-- name: list_schedules
SELECT s.*, t.status AS last_status
  FROM schedules s
  LEFT JOIN tasks t ON t.id = s.last_task_id
 ORDER BY s.name
 LIMIT $1 OFFSET $2;

-- name: schedules_declared_by
-- The schedules task types $1 declare(d).
SELECT * FROM schedules WHERE declared_type = ANY($1::text[]) ORDER BY name;

-- name: delete_schedule
-- Its tasks stay (their schedule_id names a schedule that is gone).
DELETE FROM schedules WHERE name = $1 RETURNING id;

-- name: due_schedules
-- Up to $2 schedules due at $1 (the scheduler's clock), not paused, each locked until the caller's
-- transaction ends; one another scheduler holds is skipped (it is firing it). With the status of
-- each one's last run (overlap "skip" waits for it to finish).
SELECT s.*, t.status AS last_status
  FROM schedules s
  LEFT JOIN tasks t ON t.id = s.last_task_id
 WHERE NOT s.paused AND s.next_tick <= $1::timestamptz
 ORDER BY s.next_tick
 LIMIT $2
   FOR UPDATE OF s SKIP LOCKED;

-- name: fire_schedule
-- Create schedule $1's task for each tick of $2 (a NULL tick: triggered by hand), with its history
-- row ($6), and move the schedule on: next tick $3, $4 more ticks missed, $5 more skipped. The unique
-- (schedule_id, schedule_tick) makes a tick created already create nothing: exactly once per tick.
-- The task is under its limit as create_tasks puts one. $7: the tick's W3C traceparent (NULL: none).
-- Returns the tasks' ids.
WITH ticks AS (
    SELECT at FROM unnest($2::timestamptz[]) AS tick(at)
), inserted AS (
    INSERT INTO tasks (name, type, payload, description, priority, max_retries, timeout_seconds, run_at,
                       queue, limit_scope, limit_key, schedule_id, schedule_tick, trace_parent)
    SELECT s.task ->> 'name', s.task ->> 'type', p.payload, s.task ->> 'description',
           (s.task ->> 'priority')::integer, (s.task ->> 'max_retries')::integer,
           (s.task ->> 'timeout_seconds')::double precision, now(), s.task ->> 'queue', lim.scope,
           CASE WHEN lim.scope IS NULL THEN s.task ->> 'limit_key'
                ELSE limit_key_of(p.payload, lim.key, s.task ->> 'limit_key') END,
           s.id, ticks.at, $7::text
      FROM schedules s
     CROSS JOIN ticks
     CROSS JOIN LATERAL (SELECT jsonb_build_object('parameters', s.task -> 'parameters') AS payload) AS p
      LEFT JOIN LATERAL limit_of(s.task ->> 'type', s.task ->> 'queue') AS lim ON true
     WHERE s.id = $1
     ORDER BY ticks.at
        ON CONFLICT (schedule_id, schedule_tick) WHERE schedule_id IS NOT NULL DO NOTHING
    RETURNING id
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 0 /*QUEUED*/, $6::text FROM inserted
), moved AS (
    UPDATE schedules
       SET next_tick = $3, missed = missed + $4, skipped = skipped + $5,
           last_tick = coalesce((SELECT max(at) FROM ticks), last_tick),
           last_task_id = coalesce((SELECT max(id) FROM inserted), last_task_id), updated_at = now()
     WHERE id = $1
)
SELECT id FROM inserted ORDER BY id;

-- Workflows (migration 0070) ---------------------------------------------------------------------

-- name: create_workflow
-- A workflow ($1 name, $2 idempotency key or NULL, $3 who) and its steps in one statement: $4 one
-- `workflow_step_v1` each (migration 0070: its task, name, the steps it depends on and its first
-- history line), each after its parents, so that their ids ascend the same way. A step with parents
-- is WAITING for as many of them, the others QUEUED. Limits as create_tasks. An existing idempotency
-- key creates nothing and returns no row (the caller looks the workflow up). $5: the W3C traceparent
-- every step keeps (NULL: none).
WITH workflow AS (
    INSERT INTO workflows (name, idempotency_key, created_by)
    VALUES ($1::text, $2::text, $3::text)
        ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), steps AS (
    SELECT (s.task).*, s.step, s.depends_on, s.details, s.ordinality
      FROM unnest($4::workflow_step_v1[]) WITH ORDINALITY AS s
), inserted AS (
    INSERT INTO tasks (name, type, payload, description, priority, max_retries, timeout_seconds,
                       run_at, queue, limit_scope, limit_key, workflow_id, step, status, waiting_on,
                       trace_parent)
    SELECT n.name, n.type, n.payload, n.description, n.priority, n.max_retries, n.timeout_seconds,
           greatest(now() + make_interval(secs => n.delay_seconds), n.run_at), n.queue,
           lim.scope, CASE WHEN lim.scope IS NULL THEN n.limit_key
                           ELSE limit_key_of(n.payload, lim.key, n.limit_key) END,
           w.id, n.step,
           CASE WHEN cardinality(n.depends_on) > 0 THEN 8 /*WAITING*/ ELSE 0 /*QUEUED*/ END,
           cardinality(n.depends_on), $5::text
      FROM workflow w
     CROSS JOIN steps n
      LEFT JOIN LATERAL limit_of(n.type, n.queue) AS lim ON true
     ORDER BY n.ordinality
    RETURNING id, step, status
), edges AS (
    INSERT INTO task_dependencies (parent_id, task_id)
    SELECT p.id, c.id
      FROM steps n
     CROSS JOIN LATERAL unnest(n.depends_on) AS e(parent)
      JOIN inserted p ON p.step = e.parent
      JOIN inserted c ON c.step = n.step
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT i.id, i.status, n.details FROM inserted i JOIN steps n ON n.step = i.step
)
SELECT id FROM workflow;

-- name: workflow_by_idempotency_key
SELECT id FROM workflows WHERE idempotency_key = $1::text;

-- name: adopt_into_workflow
-- A standalone task that spawns children becomes the first step of a workflow of its own (named as
-- the task, made by "task <id>"), so that its children and whoever waits for them are steps too.
-- Fenced like the spawn: only while attempt $2 is the task's current one. Returns the workflow's id.
WITH task AS (
    SELECT id, name FROM tasks
     WHERE id = $1::bigint AND status = 1 /*RUNNING*/ AND execution_id = $2::bigint
       AND workflow_id IS NULL
       FOR UPDATE
), workflow AS (
    INSERT INTO workflows (name, created_by)
    SELECT name, 'task ' || id FROM task
    RETURNING id
)
UPDATE tasks t
   SET workflow_id = w.id, step = 'task-' || t.id
  FROM workflow w, task
 WHERE t.id = task.id
RETURNING w.id;

-- name: spawn_children
-- The children ($3, `spawned_task_v1` rows, their names under the spawner's step) an attempt spawned,
-- created with its outcome, in its transaction, before finish_attempts: fenced by attempt $2 of task
-- $1 being current (locked here). A name the task spawned before creates nothing (a re-run's spawn).
-- Whoever waits for the spawner waits for each new child too (an edge and one more to wait for
-- each): the steps that depend on it, and the spawner itself when it waits for them ($4, a
-- continuation). $5: each child's first history line. $6: the spawning attempt's W3C traceparent
-- (NULL: the spawner's own, so a child continues its trace either way). Returns the children created.
WITH parent AS (
    SELECT id, workflow_id, step, trace_parent FROM tasks
     WHERE id = $1::bigint AND status = 1 /*RUNNING*/ AND execution_id = $2::bigint
       AND workflow_id IS NOT NULL
       FOR UPDATE
), children AS (
    INSERT INTO tasks (name, type, payload, description, priority, max_retries, timeout_seconds,
                       run_at, queue, limit_scope, limit_key, workflow_id, step, spawned_by, status,
                       waiting_on, trace_parent)
    SELECT c.name, c.type, c.payload, c.description, c.priority, c.max_retries, c.timeout_seconds,
           now(), c.queue,
           lim.scope, CASE WHEN lim.scope IS NULL THEN c.limit_key
                           ELSE limit_key_of(c.payload, lim.key, c.limit_key) END,
           p.workflow_id, p.step || '/' || c.step, p.id, 0 /*QUEUED*/, 0,
           coalesce($6::text, p.trace_parent)
      FROM parent p
     CROSS JOIN unnest($3::spawned_task_v1[]) WITH ORDINALITY AS c
      LEFT JOIN LATERAL limit_of(c.type, c.queue) AS lim ON true
     ORDER BY c.ordinality
        ON CONFLICT (workflow_id, step) WHERE workflow_id IS NOT NULL DO NOTHING
    RETURNING id
), waiters AS (
    SELECT t.id
      FROM parent p
      JOIN task_dependencies d ON d.parent_id = p.id
      JOIN tasks t ON t.id = d.task_id AND t.status = 8 /*WAITING*/
     UNION ALL
    SELECT id FROM parent WHERE $4::boolean
), locked AS (
    SELECT t.id FROM tasks t JOIN waiters USING (id) ORDER BY t.id FOR UPDATE OF t
), edges AS (
    INSERT INTO task_dependencies (parent_id, task_id)
    SELECT c.id, w.id FROM children c CROSS JOIN waiters w
), counted AS (
    UPDATE tasks t
       SET waiting_on = coalesce(t.waiting_on, 0) + (SELECT count(*) FROM children)
      FROM locked
     WHERE t.id = locked.id
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 0 /*QUEUED*/, $5::text FROM children
)
SELECT id FROM children;

-- name: parents_results
-- What the claimed workflow steps $1 waited for: each parent's step name, task and the result of its
-- last attempt, in step order, the running total of their results' sizes beside (the caller stops
-- giving results past its bound).
SELECT d.task_id, p.step, p.id AS parent_id, e.result,
       sum(coalesce(octet_length(e.result::text), 0))
           OVER (PARTITION BY d.task_id ORDER BY p.id) AS total_bytes
  FROM task_dependencies d
  JOIN tasks p ON p.id = d.parent_id
  LEFT JOIN task_executions e ON e.id = p.execution_id
 WHERE d.task_id = ANY($1::bigint[])
 ORDER BY d.task_id, p.id;

-- name: get_workflow
-- A workflow with its steps' counts by status (the workflow's own status follows from them:
-- model.workflow_status) and their last change.
SELECT w.*, s.counts, s.updated_at
  FROM workflows w
 CROSS JOIN LATERAL (
       SELECT jsonb_object_agg(g.status, g.n) AS counts, max(g.updated_at) AS updated_at
         FROM (SELECT status, count(*) AS n, max(updated_at) AS updated_at
                 FROM tasks WHERE workflow_id = w.id GROUP BY status) AS g
       ) AS s
 WHERE w.id = $1::bigint;

-- name: workflow_steps
-- A workflow's steps in creation order (a step after those it depends on), each with the steps it
-- waits for and the step that spawned it.
SELECT t.id, t.step, t.type, t.status, t.attempts, t.updated_at,
       ARRAY(SELECT p.step FROM task_dependencies d JOIN tasks p ON p.id = d.parent_id
              WHERE d.task_id = t.id ORDER BY p.id) AS depends_on,
       (SELECT s.step FROM tasks s WHERE s.id = t.spawned_by) AS spawned_by_step
  FROM tasks t
 WHERE t.workflow_id = $1::bigint
 ORDER BY t.id;

-- name: list_workflows
-- Workflows newest first, each as get_workflow has it, of the derived status $3 (NULL: any;
-- 1 RUNNING: a step unfinished; else none unfinished and: 3 every step succeeded, 2 one failed,
-- 7 the rest), $1 at most from offset $2.
SELECT w.*, s.counts, s.updated_at
  FROM workflows w
 CROSS JOIN LATERAL (
       SELECT jsonb_object_agg(g.status, g.n) AS counts, max(g.updated_at) AS updated_at,
              bool_or(g.status NOT IN (3 /*SUCCEEDED*/, 2 /*FAILED*/, 7 /*CANCELLED*/)) AS unfinished,
              bool_or(g.status = 2 /*FAILED*/) AS failed,
              bool_and(g.status = 3 /*SUCCEEDED*/) AS succeeded
         FROM (SELECT status, count(*) AS n, max(updated_at) AS updated_at
                 FROM tasks WHERE workflow_id = w.id GROUP BY status) AS g
       ) AS s
 WHERE $3::smallint IS NULL
    OR $3::smallint = CASE WHEN s.unfinished THEN 1 /*RUNNING*/
                           WHEN s.succeeded THEN 3 /*SUCCEEDED*/
                           WHEN s.failed THEN 2 /*FAILED*/
                           ELSE 7 /*CANCELLED*/ END
 ORDER BY w.created_at DESC, w.id DESC
 LIMIT $1 OFFSET $2;

-- name: lock_workflow_steps
-- Every step of workflow $1, locked in id order (as release_children locks them), with its status.
SELECT id, status FROM tasks WHERE workflow_id = $1::bigint ORDER BY id FOR UPDATE;

-- name: retry_workflow_steps
-- Run a finished workflow's FAILED and CANCELLED steps again (their rows locked by
-- lock_workflow_steps): each waits again for its parents not SUCCEEDED (those among them: retried
-- too), or is queued now when all did; retries and lost leases reset; with its history row ($2).
-- Returns how many.
WITH again AS (
    SELECT t.id,
           (SELECT count(*) FROM task_dependencies d JOIN tasks p ON p.id = d.parent_id
             WHERE d.task_id = t.id AND p.status <> 3 /*SUCCEEDED*/)::integer AS waiting_on
      FROM tasks t
     WHERE t.workflow_id = $1::bigint AND t.status IN (2 /*FAILED*/, 7 /*CANCELLED*/)
), moved AS (
    UPDATE tasks t
       SET status = CASE WHEN a.waiting_on > 0 THEN 8 /*WAITING*/ ELSE 0 /*QUEUED*/ END,
           waiting_on = a.waiting_on, retries = 0, lost_leases = 0, run_at = now(), updated_at = now()
      FROM again a
     WHERE t.id = a.id
    RETURNING t.id, t.status
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, status, $2::text FROM moved
)
SELECT count(*) FROM moved;

-- name: workflow_cancellable_steps
-- The unfinished steps of workflow $1 (locked by lock_workflow_steps), for cancel_picked.
SELECT id FROM tasks
 WHERE workflow_id = $1::bigint
   AND status IN (0 /*QUEUED*/, 6 /*RETRYING*/, 1 /*RUNNING*/, 8 /*WAITING*/)
 ORDER BY id;

-- name: delete_finished_workflows
-- Retention of workflows: up to $3 finished workflows of (derived) status $1 whose steps all last
-- changed before $2, oldest first, deleted whole: steps, their history, attempts and edges. A workflow
-- with no step left counts as SUCCEEDED. Returns how many.
WITH doomed AS (
    SELECT w.id
      FROM workflows w
     CROSS JOIN LATERAL (
           SELECT bool_or(status NOT IN (3 /*SUCCEEDED*/, 2 /*FAILED*/, 7 /*CANCELLED*/)) AS unfinished,
                  bool_or(status = 2 /*FAILED*/) AS failed, bool_and(status = 3 /*SUCCEEDED*/) AS succeeded,
                  max(updated_at) AS last_change
             FROM tasks WHERE workflow_id = w.id
           ) AS s
     WHERE w.created_at < $2::timestamptz
       AND coalesce(s.last_change, w.created_at) < $2::timestamptz
       AND NOT coalesce(s.unfinished, false)
       AND $1::smallint = CASE WHEN coalesce(s.succeeded, true) THEN 3 /*SUCCEEDED*/
                               WHEN s.failed THEN 2 /*FAILED*/
                               ELSE 7 /*CANCELLED*/ END
     ORDER BY w.id
     LIMIT $3
       FOR UPDATE OF w SKIP LOCKED
), gone AS (
    DELETE FROM tasks t USING doomed WHERE t.workflow_id = doomed.id RETURNING t.id
), history_gone AS (
    DELETE FROM task_history h USING gone WHERE h.task_id = gone.id
), attempts_gone AS (
    DELETE FROM task_executions e USING gone WHERE e.task_id = gone.id
), edges_gone AS (
    DELETE FROM task_dependencies d USING gone WHERE d.task_id = gone.id
), workflows_gone AS (
    DELETE FROM workflows w USING doomed WHERE w.id = doomed.id
)
SELECT count(*) FROM doomed;

-- name: stranded_steps
-- WAITING steps every parent of which has SUCCEEDED: each should have been released by the statement
-- that finished its last parent, and was not (a worker of the release before 0070 finished it, during
-- a rolling deploy). Read without locks: almost always none. Up to $1.
SELECT t.id
  FROM tasks t
 WHERE t.status = 8 /*WAITING*/
   AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks p ON p.id = d.parent_id
                    WHERE d.task_id = t.id AND p.status <> 3 /*SUCCEEDED*/)
 ORDER BY t.id
 LIMIT $1;

-- name: lock_waiting_steps
-- The steps $1 still WAITING, locked in id order (as release_children locks them).
SELECT id FROM tasks WHERE id = ANY($1::bigint[]) AND status = 8 /*WAITING*/ ORDER BY id FOR UPDATE;

-- name: release_stranded_steps
-- Queue the steps $1 (locked by lock_waiting_steps, so this statement's snapshot sees every parent
-- and child committed before) whose parents all SUCCEEDED, with their history row ($2). $3: the
-- queue's channel. Returns how many.
WITH moved AS (
    UPDATE tasks t
       SET status = 0 /*QUEUED*/, waiting_on = 0, updated_at = now()
     WHERE t.id = ANY($1::bigint[]) AND t.status = 8 /*WAITING*/
       AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks p ON p.id = d.parent_id
                        WHERE d.task_id = t.id AND p.status <> 3 /*SUCCEEDED*/)
    RETURNING t.id
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT id, 0 /*QUEUED*/, $2::text FROM moved
)
SELECT count(*), CASE WHEN count(*) > 0 THEN pg_notify($3, '') END IS NULL AS _ FROM moved;

-- name: unfinished_parents
-- What the WAITING steps $1 still wait for: each one's parents not yet SUCCEEDED, in step order.
SELECT d.task_id, p.step, p.status
  FROM task_dependencies d JOIN tasks p ON p.id = d.parent_id
 WHERE d.task_id = ANY($1::bigint[]) AND p.status <> 3 /*SUCCEEDED*/
 ORDER BY d.task_id, p.id;

-- name: vacuum_settings
-- Whether the server's autovacuum runs at all (store/maintenance.py): its switch, the statistics it
-- decides by (without track_counts no dead tuples are counted and it never acts), and how often it
-- looks at each database (seconds).
SELECT current_setting('autovacuum')::bool AS autovacuum,
       current_setting('track_counts')::bool AS track_counts,
       (SELECT setting::float8 FROM pg_settings WHERE name = 'autovacuum_naptime') AS naptime;

-- name: vacuum_tables
-- Our tables $1 (store/maintenance.HOT_TABLES), in that order: their dead tuples and the number
-- autovacuum acts at, by its own formula (threshold + scale factor x reltuples, capped by
-- autovacuum_vacuum_max_threshold on PostgreSQL 18+; an unknown reltuples, -1, counts as 0), each
-- term from the table's storage parameters else the server's settings; whether autovacuum is enabled
-- for it (its `autovacuum_enabled` parameter), when it was last vacuumed, and whether a VACUUM runs
-- on it now. One read of pg_stat_user_tables: the maintenance job's tick, a scrape, /readyz?verbose.
WITH server AS (
    SELECT (max(setting) FILTER (WHERE name = 'autovacuum_vacuum_threshold'))::float8 AS threshold,
           (max(setting) FILTER (WHERE name = 'autovacuum_vacuum_scale_factor'))::float8 AS scale,
           (max(setting) FILTER (WHERE name = 'autovacuum_vacuum_max_threshold'))::float8 AS max_threshold
      FROM pg_settings
     WHERE name IN ('autovacuum_vacuum_threshold', 'autovacuum_vacuum_scale_factor',
                    'autovacuum_vacuum_max_threshold')
)
SELECT n.name AS "table",
       coalesce(s.n_dead_tup, 0)::bigint AS dead,
       coalesce(o.enabled, true) AS autovacuum_enabled,
       least(coalesce(o.threshold, g.threshold) + coalesce(o.scale, g.scale) * greatest(c.reltuples, 0),
             CASE WHEN coalesce(o.max_threshold, g.max_threshold) >= 0
                  THEN coalesce(o.max_threshold, g.max_threshold) END)::float8 AS autovacuum_at,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       EXISTS (SELECT 1 FROM pg_stat_progress_vacuum p WHERE p.relid = c.oid) AS vacuuming
  FROM unnest($1::text[]) WITH ORDINALITY AS n(name, ord)
  JOIN pg_class c ON c.oid = to_regclass(n.name)
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 CROSS JOIN server g
 CROSS JOIN LATERAL (
       SELECT (max(option_value) FILTER (WHERE option_name = 'autovacuum_enabled'))::bool AS enabled,
              (max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_threshold'))::float8
                  AS threshold,
              (max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_scale_factor'))::float8
                  AS scale,
              (max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_max_threshold'))::float8
                  AS max_threshold
         FROM pg_options_to_table(c.reloptions)
       ) AS o
 ORDER BY n.ord;

-- name: try_maintenance_lock
-- The retention lock ($1: store/retention.LOCK_KEY), held by the session: VACUUM cannot run inside a
-- transaction, so the maintenance job takes it on a connection of its own, vacuums, and unlocks
-- (maintenance_unlock). Held elsewhere (retention deleting, or another process's maintenance): false.
SELECT pg_try_advisory_lock($1);

-- name: maintenance_unlock
SELECT pg_advisory_unlock($1);

-- name: vacuum_limits
-- The maintenance job's session: its VACUUM throttled like autovacuum's ($1 vacuum_cost_delay in ms,
-- $2 vacuum_cost_limit) and bounded ($3 statement_timeout in ms).
SELECT set_config('vacuum_cost_delay', $1::text, false),
       set_config('vacuum_cost_limit', $2::text, false),
       set_config('statement_timeout', $3::text, false);

-- name: dead_tuples_left
-- The dead tuples of table $1 just after the maintenance job's VACUUM of it (a VACUUM reports them
-- at its end): those it could not remove, held back by an older transaction or replication slot.
SELECT coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = to_regclass($1)), 0)::bigint;

-- name: vacuum_table
-- A template: {table} is one of store/maintenance.HOT_TABLES, quoted (a parameter cannot name a table;
-- never a name from input).
VACUUM {table};
