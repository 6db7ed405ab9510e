"""A database at a realistic size for the operator's dashboard (issue 24): a million finished tasks,
each with its attempt, laid down by generate_series in a few statements (as tests/test_plans.py does).

Task g (1..N) was created (N - g) * SPACING seconds before now and waited WAIT seconds; its attempt
ran `g % 7 + 1` seconds on worker `worker-<g % WORKERS>` and finished in creation order, so the
attempts' physical order follows finished_at as an append-only table's does (the BRIN index's case).
One task in ten failed. Types cycle through TYPES. The first GONE_RAN tasks ran on GONE, stopped
since. At SPACING 2 s the tasks span 23 days: a 15-minute window holds about 450 attempts, an hour
1,800, a day 43,000, a week 300,000.
"""

from __future__ import annotations

TASKS = 1_000_000
SPACING = 2.0  # seconds between two tasks' creations
WAIT = 3.0  # seconds each waited for a worker
WORKERS = 4
GONE = "worker-gone"  # a worker stopped 20 days ago: it ran the first GONE_RAN tasks
GONE_RAN = 1000
TYPES = ("sleep", "send_email", "run_query")

FILL = [
    f"""INSERT INTO tasks (id, name, type, status, timeout_seconds, priority, attempts, created_at,
                           updated_at, run_at, execution_id)
        OVERRIDING SYSTEM VALUE
        SELECT g, 'bulk ' || g, (ARRAY{list(TYPES)})[g % {len(TYPES)} + 1],
               CASE WHEN g % 10 = 0 THEN 2 ELSE 3 END, 60, g % 5, 1,
               now() - make_interval(secs => ({TASKS} - g) * {SPACING} + 30),
               now() - make_interval(secs => ({TASKS} - g) * {SPACING} + 30 - {WAIT} - (g % 7 + 1)),
               now() - make_interval(secs => ({TASKS} - g) * {SPACING} + 30),
               g
          FROM generate_series(1, {TASKS}) AS g""",
    f"""INSERT INTO task_executions (id, task_id, attempt, worker_id, started_at, finished_at, outcome,
                                     error)
        OVERRIDING SYSTEM VALUE
        SELECT g, g, 1, CASE WHEN g <= {GONE_RAN} THEN '{GONE}' ELSE 'worker-' || (g % {WORKERS}) END,
               now() - make_interval(secs => ({TASKS} - g) * {SPACING} + 30 - {WAIT}),
               now() - make_interval(secs => ({TASKS} - g) * {SPACING} + 30 - {WAIT} - (g % 7 + 1)),
               CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'succeeded' END,
               CASE WHEN g % 10 = 0 THEN 'ValueError: bulk task ' || g || ' failed' END
          FROM generate_series(1, {TASKS}) AS g""",
    f"""INSERT INTO workers (id, host, pid, concurrency, task_types, started_at, last_heartbeat_at)
        SELECT 'worker-' || w, 'host-' || w, 1000 + w, 8, '{{}}', now() - interval '30 days', now()
          FROM generate_series(0, {WORKERS - 1}) AS w""",
    f"""INSERT INTO workers (id, host, pid, concurrency, task_types, started_at, last_heartbeat_at,
                         stopped_at)
        VALUES ('{GONE}', 'host-gone', 999, 2, '{{sleep}}', now() - interval '24 days',
                now() - interval '20 days', now() - interval '20 days')""",
    "SELECT setval(pg_get_serial_sequence('tasks', 'id'), (SELECT max(id) FROM tasks))",
    "SELECT setval(pg_get_serial_sequence('task_executions', 'id'), (SELECT max(id) FROM task_executions))",
    "VACUUM ANALYZE tasks",
    "VACUUM ANALYZE task_executions",
]
