"""Concurrency and rate limits, enforced by the claim itself across every worker, agent and server.

`task_limits` holds a limit on a task type or a queue: at most `concurrency` attempts running and at
most `rate` starts in any `per_seconds`, counted per key: the value of the payload parameter `key`
(or the key a task was created with), all tasks without one sharing the key ''. A type's limit
governs its tasks; a queue's limit governs the tasks of types without one. `set_by` is NULL for a
limit a worker declared with its type (its next declaration replaces it), else who set it at run time.

A task under a limit says so from its creation on: `tasks.limit_scope` (the limit's `scope`,
'type:<name>' or 'queue:<name>') and `tasks.limit_key`. Tasks without a limit (limit_scope NULL) are
the only ones in the claim index, so a limited backlog costs the unlimited claim nothing; limited
tasks wait in their own index, by scope and key, which the claim walks key by key. `claim_limited`
is that walk: with the scope's row locked (one claimer of a scope at a time, in order), each of its
statements sees every claim committed before it, so the attempts running per key are counted, not
kept; the rate's recent starts per key are kept in `task_limit_keys` (a sliding window: at most `rate`
starts in any `per_seconds`, by the database's clock). Keys take turns from `cursor`, the last key
served, so one key's backlog does not starve the others. A limited claim stamps its attempts'
`started_at` with the time it read the running attempts (after its lock), not its transaction's
start: an attempt it saw end has an earlier `finished_at`, so "never more than N at once" holds on
the attempts' own times.

A limit row is never deleted (clearing one sets its numbers NULL): tasks created under it still find
it. `new_task_v3` is `new_task_v2` with a task's own key, a new type for the rolling deploy (as 0040).

The claim index is rebuilt to leave limited tasks out, under the same name. Workers of the previous
release claim with a statement that index no longer serves: stop them before migrating, or accept
slower claims until they are replaced.

Revision ID: 0050
Revises: 0040
Create Date: 2026-12-06
"""

from alembic import op

revision = "0050"
down_revision = "0040"
branch_labels = None
depends_on = None

CLAIM_LIMITED = """
CREATE FUNCTION claim_limited(claim_owners text[], claim_types text[], claim_queues text[],
                              claim_lease double precision)
RETURNS TABLE (claimed tasks, claimed_owner text, claimed_lease timestamptz)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    want       integer := coalesce(cardinality(claim_owners), 0);
    took       integer := 0;
    lim        record;
    held       jsonb;
    found_key  text;
    after_key  text;
    wrapped    boolean;
    free       integer;
    steps      integer;
    turn_keys  text[];
    turn_free  integer[];
    n          integer;
    stamp      timestamptz;
BEGIN
    -- The limits this claimer may take from, in the same order everywhere. One in force is locked
    -- until the claim commits (claimers of one scope take turns; the order keeps them from
    -- deadlocking) and read again under the lock; a cleared one (its tasks created before it was
    -- cleared may still wait under it) is not: there is nothing to count.
    FOR lim IN
        SELECT l.kind, l.name, l.scope, l.concurrency, l.rate, l.per_seconds, l.cursor
          FROM task_limits l
         WHERE CASE WHEN l.kind = 'type' THEN cardinality(claim_types) = 0 OR l.name = ANY(claim_types)
                    ELSE cardinality(claim_queues) = 0 OR l.name = ANY(claim_queues) END
           AND NOT EXISTS (SELECT 1 FROM task_pauses p WHERE p.kind = l.kind AND p.name = l.name)
         ORDER BY l.kind, l.name
    LOOP
        EXIT WHEN took >= want;
        CONTINUE WHEN (SELECT t.limit_key
                         FROM tasks t
                        WHERE t.status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND t.limit_scope = lim.scope
                        ORDER BY t.limit_key
                        LIMIT 1) IS NULL;  -- none waits under it (the index's first entry of the scope)
        IF lim.concurrency IS NOT NULL OR lim.rate IS NOT NULL THEN
            SELECT l.kind, l.name, l.scope, l.concurrency, l.rate, l.per_seconds, l.cursor INTO lim
              FROM task_limits l
             WHERE l.kind = lim.kind AND l.name = lim.name
               FOR UPDATE OF l;
        END IF;
        -- Attempts of this scope running now, by key. This statement's snapshot is newer than the
        -- lock: every claim of the scope that committed before is in it.
        SELECT coalesce(jsonb_object_agg(r.limit_key, r.running), '{}') INTO held
          FROM (SELECT t.limit_key, count(*) AS running
                  FROM tasks t
                 WHERE t.status = 1 /*RUNNING*/ AND t.limit_scope = lim.scope
                 GROUP BY t.limit_key) r;
        -- This claim's time, read after that count: an attempt it saw end ended before it (its
        -- finished_at, its transaction's start, is earlier), and claims of the scope, one at a time,
        -- stamp their starts in order. The starts it makes are stamped with it.
        stamp := clock_timestamp();
        -- Keys with waiting tasks, in turn: those after the cursor, then from the first up to it.
        turn_keys := '{}';
        turn_free := '{}';
        after_key := lim.cursor;
        wrapped := lim.cursor IS NULL;
        steps := 0;
        LOOP
            IF after_key IS NULL THEN
                SELECT t.limit_key INTO found_key
                  FROM tasks t
                 WHERE t.status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND t.limit_scope = lim.scope
                 ORDER BY t.limit_key
                 LIMIT 1;
            ELSE
                SELECT t.limit_key INTO found_key
                  FROM tasks t
                 WHERE t.status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND t.limit_scope = lim.scope
                   AND t.limit_key > after_key
                 ORDER BY t.limit_key
                 LIMIT 1;
            END IF;
            IF NOT FOUND THEN
                EXIT WHEN wrapped;
                wrapped := true;
                after_key := NULL;
                CONTINUE;
            END IF;
            EXIT WHEN wrapped AND lim.cursor IS NOT NULL AND found_key > lim.cursor;
            after_key := found_key;
            steps := steps + 1;
            free := want - took;
            IF lim.concurrency IS NOT NULL THEN
                free := least(free, lim.concurrency - coalesce((held ->> found_key)::integer, 0));
            END IF;
            IF lim.rate IS NOT NULL AND free > 0 THEN
                -- The key's starts within a period before this one: no window of the period
                -- holds more than `rate` of them.
                free := least(free, lim.rate - coalesce((
                    SELECT count(*)::integer
                      FROM task_limit_keys k, unnest(k.starts) AS s(at)
                     WHERE k.scope = lim.scope AND k.limit_key = found_key
                       AND s.at > stamp - make_interval(secs => lim.per_seconds)), 0));
            END IF;
            IF free > 0 THEN
                turn_keys := turn_keys || found_key;
                turn_free := turn_free || free;
            END IF;
            EXIT WHEN cardinality(turn_keys) >= want - took OR steps >= 10000;
        END LOOP;
        IF steps > 0 AND (lim.concurrency IS NOT NULL OR lim.rate IS NOT NULL) THEN
            UPDATE task_limits SET cursor = after_key WHERE kind = lim.kind AND name = lim.name;
        END IF;
        CONTINUE WHEN cardinality(turn_keys) = 0;
        -- Up to each key's free slots, due first; then one from each key in turn, then a second...
        RETURN QUERY
        WITH turns AS (
            SELECT c.limit_key, c.free, c.turn
              FROM unnest(turn_keys, turn_free) WITH ORDINALITY AS c(limit_key, free, turn)
        ), picked AS (
            SELECT p.id, p.attempt, p.priority, p.run_at, c.turn
              FROM turns c
             CROSS JOIN LATERAL (
                   SELECT t.id, t.attempts + 1 AS attempt, t.priority, t.run_at
                     FROM tasks t
                    WHERE t.status IN (0 /*QUEUED*/, 6 /*RETRYING*/) AND t.limit_scope = lim.scope
                      AND t.limit_key = c.limit_key AND t.run_at <= now()
                      AND (cardinality(claim_types) = 0 OR t.type = ANY(claim_types))
                      AND (cardinality(claim_queues) = 0 OR t.queue = ANY(claim_queues))
                      AND NOT EXISTS (SELECT 1 FROM task_pauses p WHERE p.kind = 'queue' AND p.name = t.queue)
                      AND NOT EXISTS (SELECT 1 FROM task_pauses p WHERE p.kind = 'type' AND p.name = t.type)
                    ORDER BY t.priority DESC, t.run_at, t.id
                    LIMIT c.free
                      FOR UPDATE OF t SKIP LOCKED) p
        ), slotted AS (
            SELECT r.id, r.attempt,
                   row_number() OVER (ORDER BY r.within, r.turn) AS slot
              FROM (SELECT picked.*,
                           row_number() OVER (PARTITION BY turn ORDER BY priority DESC, run_at, id) AS within
                      FROM picked) r
        ), executions AS (
            INSERT INTO task_executions (task_id, attempt, worker_id, started_at, lease_expires_at)
            SELECT s.id, s.attempt, claim_owners[took + s.slot], stamp,
                   stamp + make_interval(secs => claim_lease)
              FROM slotted s
             WHERE s.slot <= want - took
            RETURNING id, task_id, attempt, worker_id, lease_expires_at
        ), moved AS (
            UPDATE tasks t
               SET status = 1 /*RUNNING*/, attempts = e.attempt, execution_id = e.id, updated_at = now()
              FROM executions e
             WHERE t.id = e.task_id
            RETURNING t AS task, e.worker_id, e.lease_expires_at
        ), history AS (
            INSERT INTO task_history (task_id, status, details)
            SELECT (m.task).id, 1 /*RUNNING*/, 'Task started (Attempt ' || (m.task).attempts || ')'
              FROM moved m
        ), started AS (
            INSERT INTO task_limit_keys AS k (scope, limit_key, starts)
            SELECT lim.scope, (m.task).limit_key, array_agg(stamp)
              FROM moved m
             WHERE lim.rate IS NOT NULL
             GROUP BY (m.task).limit_key
             ORDER BY (m.task).limit_key
                ON CONFLICT (scope, limit_key) DO UPDATE
               SET starts = ARRAY(SELECT s.at
                                    FROM unnest(k.starts) AS s(at)
                                   WHERE s.at > stamp - make_interval(secs => lim.per_seconds))
                            || excluded.starts
        )
        SELECT m.task, m.worker_id, m.lease_expires_at FROM moved m;
        GET DIAGNOSTICS n = ROW_COUNT;
        took := took + n;
    END LOOP;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(
        """
        LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;

        CREATE TABLE task_limits (
            kind        text NOT NULL CHECK (kind IN ('queue', 'type')),
            name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
            scope       text GENERATED ALWAYS AS (kind || ':' || name) STORED UNIQUE,
            concurrency integer CHECK (concurrency BETWEEN 1 AND 1000000),
            rate        integer CHECK (rate BETWEEN 1 AND 10000),
            per_seconds double precision CHECK (per_seconds > 0 AND per_seconds <= 86400),
            key         text CHECK (length(key) BETWEEN 1 AND 255),
            set_by      text,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            cursor      text,
            PRIMARY KEY (kind, name),
            CHECK ((rate IS NULL) = (per_seconds IS NULL))
        );

        CREATE TABLE task_limit_keys (
            scope     text NOT NULL,
            limit_key text NOT NULL,
            starts    timestamptz[] NOT NULL,
            PRIMARY KEY (scope, limit_key)
        );

        ALTER TABLE tasks ADD COLUMN limit_scope text, ADD COLUMN limit_key text;

        CREATE INDEX idx_tasks_claimable_unlimited ON tasks (priority DESC, run_at, id)
         WHERE status IN (0, 6) AND limit_scope IS NULL;
        DROP INDEX idx_tasks_claimable;
        ALTER INDEX idx_tasks_claimable_unlimited RENAME TO idx_tasks_claimable;
        CREATE INDEX idx_tasks_limited ON tasks (limit_scope, limit_key, priority DESC, run_at, id)
         WHERE status IN (0, 6) AND limit_scope IS NOT NULL;
        CREATE INDEX idx_tasks_limited_running ON tasks (limit_scope, limit_key)
         WHERE status = 1 AND limit_scope IS NOT NULL;

        CREATE TYPE new_task_v3 AS (
            name            text,
            type            text,
            payload         jsonb,
            description     text,
            priority        integer,
            max_retries     integer,
            timeout_seconds double precision,
            idempotency_key text,
            delay_seconds   double precision,
            queue           text,
            limit_key       text
        );

        -- The limit a task of this type in this queue is under: its type's, else its queue's, else
        -- none (no row). A SQL function that the planner inlines into the statements that create
        -- tasks; the one-time EXISTS keeps it from looking at all while there is no limit.
        CREATE FUNCTION limit_of(task_type text, task_queue text) RETURNS TABLE (scope text, key text)
        LANGUAGE sql STABLE AS $$
            SELECT l.scope, l.key
              FROM task_limits l
             WHERE (SELECT EXISTS (SELECT 1 FROM task_limits))
               AND l.kind IN ('type', 'queue') AND l.name IN (task_type, task_queue)
               AND (l.kind = 'type' AND l.name = task_type OR l.kind = 'queue' AND l.name = task_queue)
               AND (l.concurrency IS NOT NULL OR l.rate IS NOT NULL)
             ORDER BY l.kind DESC
             LIMIT 1
        $$;

        -- A task's key under its limit: the one it was given, else its payload's parameter `key`
        -- (parameters are strings), else ''. A long one is cut, keeping a digest of the whole.
        CREATE FUNCTION limit_key_of(payload jsonb, key text, given text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE WHEN length(v) > 200 THEN left(v, 160) || '~' || md5(v) ELSE v END
              FROM (SELECT coalesce(given, payload -> 'parameters' ->> key, '') AS v) AS k
        $$;
        """
        + CLAIM_LIMITED
    )


def downgrade() -> None:
    op.execute(
        """
        LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;
        DROP FUNCTION claim_limited(text[], text[], text[], double precision);
        DROP FUNCTION limit_key_of(jsonb, text, text);
        DROP FUNCTION limit_of(text, text);
        DROP TYPE new_task_v3;
        DROP INDEX idx_tasks_limited_running;
        DROP INDEX idx_tasks_limited;
        CREATE INDEX idx_tasks_claimable_all ON tasks (priority DESC, run_at, id) WHERE status IN (0, 6);
        DROP INDEX idx_tasks_claimable;
        ALTER INDEX idx_tasks_claimable_all RENAME TO idx_tasks_claimable;
        ALTER TABLE tasks DROP COLUMN limit_key, DROP COLUMN limit_scope;
        DROP TABLE task_limit_keys;
        DROP TABLE task_limits;
        """
    )
