-- The benchmark's own SQL, one named block each ("-- name: <name>"): checks of what a scenario
-- left behind, the raw-ceiling loops, and the fill of the scale scenario. The product's SQL stays in
-- store/queries.sql; the raw loops here are the minimal statements doing the same writes per task.

-- name: reset
-- Every table a scenario writes, the limits and workflows too: no scenario inherits another's.
TRUNCATE tasks, task_history, task_executions, workers, task_limits, task_limit_keys, workflows,
         task_dependencies RESTART IDENTITY;

-- name: clear_limits
-- No limit at all, not even a cleared one: a limit's row stays when its numbers are cleared, and
-- every claim of its type then goes through claim_limited (migration 0050).
TRUNCATE task_limits, task_limit_keys;

-- name: clear_tasks
TRUNCATE tasks, task_history, task_executions, workflows, task_dependencies RESTART IDENTITY;

-- name: analyze_tasks
-- After a bulk load, what autovacuum would do within a minute: without statistics (a table just
-- emptied or never analyzed) the planner sorts the whole queue for every claim.
ANALYZE tasks;

-- name: live_workers
SELECT count(*) FROM workers WHERE stopped_at IS NULL;

-- name: tasks_named
SELECT count(*) FROM tasks WHERE name = $1;

-- name: succeeded
SELECT count(*) FROM tasks WHERE status = 3 /*SUCCEEDED*/;

-- name: succeeded_kept
-- The same from the counts the triggers keep: cheap enough to ask ten times a second while the
-- workers run (the end result is checked with a real count).
SELECT coalesce(sum(count), 0) FROM task_counts WHERE status = 3 /*SUCCEEDED*/;

-- name: incomplete_lifecycles
-- Tasks whose lifecycle is not whole: not SUCCEEDED, or not exactly one succeeded attempt, or not
-- exactly the three history rows (scheduled, started, succeeded).
SELECT count(*)
  FROM tasks t
 WHERE t.status <> 3 /*SUCCEEDED*/
    OR (SELECT count(*) FROM task_history h WHERE h.task_id = t.id) <> 3
    OR (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.outcome = 'succeeded') <> 1;

-- name: last_finish
SELECT extract(epoch FROM max(finished_at))::float8 FROM task_executions;

-- name: task_times
-- When each task was created, started and finished (seconds since the epoch, the server's clock).
SELECT t.id,
       extract(epoch FROM t.created_at)::float8 AS created,
       extract(epoch FROM e.started_at)::float8 AS started,
       extract(epoch FROM e.finished_at)::float8 AS finished
  FROM tasks t
  JOIN task_executions e ON e.task_id = t.id
 WHERE e.finished_at IS NOT NULL;

-- name: raw_insert
-- The raw ceiling of CreateTask: a task row and its history row, one statement and commit each.
WITH task AS (
    INSERT INTO tasks (name, type, timeout_seconds) VALUES ('raw-insert', 'sleep', 60) RETURNING id
)
INSERT INTO task_history (task_id, status) SELECT id, 0 /*QUEUED*/ FROM task;

-- name: raw_enqueue
-- The raw ceiling of enqueue-to-start: a task row, its history row and the wake-up NOTIFY, one
-- statement and one commit. $1: the queue's channel.
WITH task AS (
    INSERT INTO tasks (name, type, timeout_seconds) VALUES ('raw-latency', 'sleep', 60) RETURNING id
), history AS (
    INSERT INTO task_history (task_id, status) SELECT id, 0 /*QUEUED*/ FROM task
)
SELECT id, pg_notify($1, '') IS NULL AS _ FROM task;

-- name: raw_insert_batch
-- The raw ceiling of CreateTasks: $1 tasks and their history rows in one statement.
WITH task AS (
    INSERT INTO tasks (name, type, timeout_seconds)
    SELECT 'raw-batch', 'sleep', 60 FROM generate_series(1, $1)
    RETURNING id
)
INSERT INTO task_history (task_id, status) SELECT id, 0 /*QUEUED*/ FROM task;

-- name: queue_no_ops
-- $1 due no-op tasks named $2 (the real `sleep` type, seconds=0) with their "scheduled" history
-- rows, and the NOTIFY (on channel $3) that wakes the workers when this commits.
WITH task AS (
    INSERT INTO tasks (name, type, payload, timeout_seconds)
    SELECT $2, 'sleep', '{"parameters": {"seconds": "0"}}', 60 FROM generate_series(1, $1)
    RETURNING id
), history AS (
    INSERT INTO task_history (task_id, status, details) SELECT id, 0 /*QUEUED*/, 'Task is scheduled' FROM task
)
SELECT pg_notify($3, '');

-- name: queue_keyed_no_ops
-- queue_no_ops with the payload parameter `customer` taking $4 values in turn, each task put under the
-- `sleep` type's limit, if any, as create_tasks puts it (its scope, and its key: limit_key_of).
WITH task AS (
    INSERT INTO tasks (name, type, payload, timeout_seconds, limit_scope, limit_key)
    SELECT $2, 'sleep', p.payload, 60,
           l.scope, CASE WHEN l.scope IS NOT NULL THEN limit_key_of(p.payload, l.key, NULL) END
      FROM generate_series(1, $1) AS g
     CROSS JOIN LATERAL (
           SELECT jsonb_build_object('parameters',
                                     jsonb_build_object('seconds', '0', 'customer', (g % $4)::text))
       ) AS p(payload)
      LEFT JOIN task_limits l ON l.kind = 'type' AND l.name = 'sleep'
                             AND (l.concurrency IS NOT NULL OR l.rate IS NOT NULL)
    RETURNING id
), history AS (
    INSERT INTO task_history (task_id, status, details) SELECT id, 0 /*QUEUED*/, 'Task is scheduled' FROM task
)
SELECT pg_notify($3, '');

-- name: worker_backends
-- The server processes of this database's connections named $1 (the benchmark's workers name theirs),
-- with when each started (seconds since the epoch): the process of that id here must have started then.
SELECT pid, extract(epoch FROM backend_start)::float8 AS started
  FROM pg_stat_activity
 WHERE datname = current_database() AND application_name = $1;

-- name: starts
-- Attempts started, and the seconds from the first start to the last, on the server's clock.
SELECT count(*) AS starts, extract(epoch FROM max(started_at) - min(started_at))::float8 AS seconds
  FROM task_executions;

-- name: most_starts_in_a_period
-- The most attempts started in any $1 seconds: for each start, those from it to just before $1 seconds
-- later (started_at has microseconds). A rate limit of n per $1 seconds allows at most n.
SELECT coalesce(max(within), 0)
  FROM (SELECT count(*) OVER (ORDER BY started_at
                              RANGE BETWEEN CURRENT ROW
                                        AND make_interval(secs => $1) - interval '1 microsecond' FOLLOWING)
                 AS within
          FROM task_executions) AS windows;

-- name: step_status
-- The status of step $2 of workflow $1.
SELECT status FROM tasks WHERE workflow_id = $1 AND step = $2;

-- name: step_finished
-- When step $2 of workflow $1 last finished (seconds since the epoch, the server's clock).
SELECT extract(epoch FROM e.finished_at)::float8
  FROM tasks t
  JOIN task_executions e ON e.id = t.execution_id
 WHERE t.workflow_id = $1 AND t.step = $2;

-- name: whole_steps
-- Steps of workflow $1 whose lifecycle is whole: SUCCEEDED, exactly one succeeded attempt, exactly
-- their history rows (scheduled, started, succeeded, and queued between the first two for a step
-- that waited for parents), and started only after each of its parents succeeded: the step's RUNNING
-- row was taken by a claim that saw the parent's SUCCEEDED row committed, so its id is above it.
SELECT count(*)
  FROM tasks t
 WHERE t.workflow_id = $1
   AND t.status = 3 /*SUCCEEDED*/
   AND (SELECT count(*) FROM task_history h WHERE h.task_id = t.id)
       = 3 + (EXISTS (SELECT 1 FROM task_dependencies d WHERE d.task_id = t.id))::int
   AND (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.outcome = 'succeeded') = 1
   AND NOT EXISTS (SELECT 1
                     FROM task_dependencies d
                     JOIN task_history parent ON parent.task_id = d.parent_id
                                             AND parent.status = 3 /*SUCCEEDED*/
                     JOIN task_history started ON started.task_id = t.id AND started.status = 1 /*RUNNING*/
                    WHERE d.task_id = t.id AND started.id < parent.id);

-- name: finish_statements
-- The statements that finished the attempts of workflow $1's steps: a statement's attempts share its
-- transaction's now() and their worker; two statements of one worker never share a now().
SELECT count(DISTINCT (e.finished_at, e.worker_id))
  FROM task_executions e
  JOIN tasks t ON t.id = e.task_id
 WHERE t.workflow_id = $1;

-- name: track_functions
-- The database's new sessions count the calls of PL/pgSQL functions (pg_stat_user_functions). Only a
-- superuser may: the caller takes the refusal as "not counted".
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET track_functions = %L', current_database(), 'pl');
END $$;

-- name: untrack_functions
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I RESET track_functions', current_database());
END $$;

-- name: release_calls
-- Calls of release_children so far, as the sessions that made them have reported them (a session
-- reports its counts within a second of going idle; nothing is counted unless track_functions is on).
SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_user_functions WHERE funcname = 'release_children';

-- name: raw_claim
-- Claim up to $1 due tasks (SKIP LOCKED, in queue order): an attempt row, the task RUNNING under
-- it, a history row. The same writes as store/queries.sql's claim_tasks, nothing else.
WITH picked AS (
    SELECT id, attempts + 1 AS attempt FROM tasks
     WHERE status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND run_at <= now()
     ORDER BY priority DESC, run_at, id
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), executions AS (
    INSERT INTO task_executions (task_id, attempt, worker_id, lease_expires_at)
    SELECT id, attempt, 'raw', now() + interval '30 s' FROM picked
    RETURNING id, task_id, attempt
), claimed AS (
    UPDATE tasks t SET status = 1 /*RUNNING*/, attempts = e.attempt, execution_id = e.id
      FROM executions e WHERE t.id = e.task_id
    RETURNING t.id, t.execution_id
), history AS (
    INSERT INTO task_history (task_id, status) SELECT id, 1 /*RUNNING*/ FROM claimed
)
SELECT id AS task_id, execution_id AS id FROM claimed;

-- name: raw_complete
-- Complete claimed tasks ($1) and their attempts ($2): status, history row, attempt closed.
WITH done AS (
    UPDATE tasks SET status = 3 /*SUCCEEDED*/
     WHERE id = ANY($1::bigint[]) AND status = 1 /*RUNNING*/ AND execution_id = ANY($2::bigint[])
    RETURNING id
), history AS (
    INSERT INTO task_history (task_id, status) SELECT id, 3 /*SUCCEEDED*/ FROM done
)
UPDATE task_executions SET finished_at = now(), outcome = 'succeeded', lease_expires_at = NULL
 WHERE id = ANY($2::bigint[]);

-- name: fill_tasks
-- Tasks $1..$2 of $3 for the scale scenario, the last $4 of them due and waiting, the rest finished
-- (2% failed, 2% cancelled) over the past hours; one in ten is send_email, one in ten run_query.
INSERT INTO tasks (name, type, status, payload, max_retries, timeout_seconds, attempts, run_at,
                   created_at, updated_at)
SELECT 'bench-scale-' || g,
       CASE g % 10 WHEN 0 THEN 'send_email' WHEN 1 THEN 'run_query' ELSE 'sleep' END,
       CASE WHEN g > $3 - $4 THEN 0 /*QUEUED*/ WHEN g % 50 = 0 THEN 2 /*FAILED*/
            WHEN g % 50 = 1 THEN 7 /*CANCELLED*/ ELSE 3 /*SUCCEEDED*/ END,
       '{"parameters": {"seconds": "0"}}', 3, 60,
       CASE WHEN g > $3 - $4 THEN 0 ELSE 1 END,
       at, at, at
  FROM generate_series($1::bigint, $2::bigint) AS g
 CROSS JOIN LATERAL (SELECT now() - ($3 - g) * interval '20 ms' AS at) AS times
 ORDER BY g;

-- name: fill_history
-- The history of tasks $1..$2: scheduled, then (when finished) started and the final status.
INSERT INTO task_history (task_id, status, details, created_at)
SELECT t.id, h.status, h.details, t.created_at + h.after
  FROM tasks t
 CROSS JOIN LATERAL (
        VALUES (0::smallint /*QUEUED*/, 'Task is scheduled', interval '0'),
               (1::smallint /*RUNNING*/, 'Task started (Attempt 1)', interval '2 ms'),
               (t.status, 'Task finished', interval '5 ms')
       ) AS h(status, details, after)
 WHERE t.id BETWEEN $1 AND $2 AND (t.status <> 0 /*QUEUED*/ OR h.after = interval '0')
 ORDER BY t.id, h.after;

-- name: fill_executions
INSERT INTO task_executions (task_id, attempt, worker_id, started_at, finished_at, outcome)
SELECT id, 1, 'bench-fill', created_at + interval '2 ms', created_at + interval '5 ms',
       CASE status WHEN 3 /*SUCCEEDED*/ THEN 'succeeded' WHEN 2 /*FAILED*/ THEN 'failed' ELSE 'cancelled' END
  FROM tasks
 WHERE id BETWEEN $1 AND $2 AND status <> 0 /*QUEUED*/
 ORDER BY id;

-- name: analyze
VACUUM ANALYZE tasks, task_history, task_executions;

-- name: table_sizes
SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM task_history) AS history;

-- name: drain_window
-- Seconds from the first attempt's start to the last one's end (the peer scenario's drains).
SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM task_executions;

-- name: peer_consumers
-- pgqueuer consumers connected to this database (bench/peer_worker.py names its connection $1).
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1;

-- name: peer_done
-- pgqueuer jobs done: each writes a 'successful' row to pgqueuer's log when it completes.
SELECT count(*) FROM pgqueuer_log WHERE status = 'successful';

-- name: peer_window
-- Seconds from pgqueuer's first pick to its last completion, from its log.
SELECT extract(epoch FROM max(created) FILTER (WHERE status = 'successful')
                         - min(created) FILTER (WHERE status = 'picked'))::float8
  FROM pgqueuer_log;

-- name: soak_minute
-- What the soak prints for the window [$1, $2): attempts finished, the p99 from creation to the start
-- of first attempts, what waits.
SELECT (SELECT count(*) FROM task_executions WHERE finished_at >= $1 AND finished_at < $2) AS finished,
       (SELECT extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY e.started_at - t.created_at))
          FROM task_executions e JOIN tasks t ON t.id = e.task_id
         WHERE e.started_at >= $1 AND e.started_at < $2 AND e.attempt = 1)::float8 AS to_start_p99,
       (SELECT coalesce(sum(count), 0) FROM task_counts
         WHERE status IN (0 /*QUEUED*/, 1 /*RUNNING*/, 6 /*RETRYING*/))::bigint AS waiting;

-- name: soak_sizes
-- Bytes of each task table (heap, its indexes), its dead tuples, and how many times it was vacuumed
-- so far by a VACUUM statement (the maintenance job's: nothing else in a soak runs one) and by
-- autovacuum.
SELECT c.relname AS name, pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes,
       coalesce(s.n_dead_tup, 0) AS dead, coalesce(s.n_live_tup, 0) AS live,
       coalesce(s.vacuum_count, 0) AS vacuums, coalesce(s.autovacuum_count, 0) AS autovacuums
  FROM pg_class c
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relname IN ('tasks', 'task_history', 'task_executions') AND c.relkind = 'r'
 ORDER BY c.relname;

-- name: unfinished
SELECT coalesce(sum(count), 0)::bigint FROM task_counts
 WHERE status IN (0 /*QUEUED*/, 1 /*RUNNING*/, 6 /*RETRYING*/);

-- name: not_succeeded
SELECT coalesce(sum(count), 0)::bigint FROM task_counts WHERE status IN (2 /*FAILED*/, 7 /*CANCELLED*/);
