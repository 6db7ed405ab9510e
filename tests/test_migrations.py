"""The schema migrations on real, initially empty databases, in-process and through `task-cli db upgrade`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from conftest import create_database, drop_database
from taskservice.config import Settings
from taskservice.db import migrate

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

TABLES = {
    "tasks",
    "task_history",
    "task_executions",
    "workers",
    "task_counts",
    "task_pauses",
    "task_limits",
    "task_limit_keys",
    "workflows",
    "task_dependencies",
    "schedules",
    "api_tokens",
    "dashboard_sessions",
    "task_types",
    "installation",
}
# The original service's indexes that are kept, by name. Its other three went in 0004, covered by
# others (idx_created_at by tasks_pkey, idx_status_created_at by idx_tasks_status_id, idx_type_status
# by idx_tasks_type_id): each one cost a WAL record per task per status change.
SEED_INDEXES = {"idx_task_id_created_at": "task_history"}
DROPPED_SEED_INDEXES = {"idx_type_status", "idx_created_at", "idx_status_created_at"}
# The key db/migrations/env.py takes with pg_advisory_xact_lock for the whole upgrade.
MIGRATION_LOCK_ID = 0x7461736B
TASK_CLI = str(Path(sys.executable).parent / "task-cli")


@pytest.fixture
def empty_database(pg_server_url: str) -> Iterator[str]:
    url = create_database(pg_server_url)
    yield url
    drop_database(pg_server_url, url)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows} - {"alembic_version"}


def indexes(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    return dict(rows)


def table_oids(url: str) -> dict[str, int]:
    """Changes when a table is dropped and created again."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, oid::int FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        ).fetchall()
    return dict(rows)


def waiting_on_lock(conn: psycopg.Connection[Any]) -> int:
    """How many sessions wait for an advisory lock in this database."""
    row = conn.execute(
        "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    assert row is not None
    return int(row[0])


def assert_schema(url: str) -> None:
    assert tables(url) == TABLES
    found = indexes(url)
    assert {name: found.get(name) for name in SEED_INDEXES} == SEED_INDEXES
    assert not DROPPED_SEED_INDEXES & set(found)
    assert migrate.current_revision(url) == migrate.head_revision()


def downgrade(url: str, revision: str = "base") -> None:
    """What `migrate.upgrade` does, the other way (through the same env.py and its lock)."""
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            config = Config()
            config.set_main_option("script_location", str(migrate.MIGRATIONS))
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a `task-cli` subprocess that must use `database_url` and nothing else."""
    variables = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in variables and k != "TEST_DATABASE_URL"}
    env["DATABASE_URL"] = database_url
    env["EMBEDDED_DATA_DIR"] = str(tmp_path / "unused-embedded")
    return env


def cli_upgrade(env: dict[str, str], cwd: Path, *command: str) -> str:
    result = subprocess.run(
        [TASK_CLI, *(command or ("db", "upgrade"))],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_upgrade_of_an_empty_database(empty_database: str) -> None:
    assert tables(empty_database) == set()
    assert migrate.current_revision(empty_database) is None

    migrate.upgrade(empty_database)

    assert_schema(empty_database)
    assert migrate.head_revision() == "0120"


def test_second_upgrade_is_a_no_op(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    before = table_oids(empty_database)

    migrate.upgrade(empty_database)

    assert table_oids(empty_database) == before  # nothing dropped and created again
    assert_schema(empty_database)


def test_downgrade_to_base_and_upgrade_again(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    downgrade(empty_database)
    assert tables(empty_database) == set()
    assert not set(SEED_INDEXES) & set(indexes(empty_database))
    assert migrate.current_revision(empty_database) is None

    migrate.upgrade(empty_database)
    assert_schema(empty_database)


def test_cli_upgrade_reports_what_it_did(empty_database: str, tmp_path: Path) -> None:
    env = cli_env(empty_database, tmp_path)
    head = migrate.head_revision()

    assert cli_upgrade(env, tmp_path) == f"database upgraded from empty to {head}"
    assert_schema(empty_database)
    assert cli_upgrade(env, tmp_path).startswith("database is up to date")
    assert_schema(empty_database)


def test_migrate_prepares_a_database_for_enqueue(empty_database: str, tmp_path: Path) -> None:
    """`task-cli migrate` (docs/enqueue-in-a-transaction.md): an application's own database, never
    started on by a server or worker, takes `taskservice.enqueue` once migrated."""
    import taskservice

    env = cli_env(empty_database, tmp_path)
    assert (
        cli_upgrade(env, tmp_path, "migrate") == f"database upgraded from empty to {migrate.head_revision()}"
    )
    with psycopg.connect(empty_database) as conn, conn.transaction():
        task_id = taskservice.enqueue(
            conn, type="send_email", name="Confirm order 1", parameters={"recipient": "a@example.com"}
        )
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT name FROM tasks WHERE id = %s", (task_id,)).fetchone() == (
            "Confirm order 1",
        )
    assert cli_upgrade(env, tmp_path, "migrate").startswith("database is up to date")


def test_two_processes_upgrade_the_same_empty_database_at_once(empty_database: str, tmp_path: Path) -> None:
    env = cli_env(empty_database, tmp_path)
    processes: list[subprocess.Popen[str]] = []
    try:
        # Hold the migration lock so that both processes are inside their upgrade at the same time,
        # each having seen an empty database; then let them go.
        with psycopg.connect(empty_database, autocommit=True) as gate:
            gate.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
            for _ in range(2):
                processes.append(
                    subprocess.Popen(
                        [TASK_CLI, "db", "upgrade"],
                        env=env,
                        cwd=tmp_path,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            deadline = time.monotonic() + 60
            while waiting_on_lock(gate) < 2:
                exited = [p.returncode for p in processes if p.poll() is not None]
                assert not exited, f"a process ended before reaching the migration lock: {exited}"
                assert time.monotonic() < deadline, "both processes never waited on the migration lock"
                time.sleep(0.05)
            gate.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
        outputs = [p.communicate(timeout=120) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.communicate()

    head = migrate.head_revision()
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert stdout.strip() in (
            f"database upgraded from empty to {head}",
            f"database is up to date (revision {head})",
        )
    assert_schema(empty_database)


# -- an installation with work in it --------------------------------------------------------------

# Revision 0002's schema, as a running installation filled it: a task in every status with its
# history and attempts; one running under a live lease, one whose worker died (lease expired).
FILL_0002 = """
INSERT INTO tasks (id, name, type, status, payload, retries, max_retries, timeout_seconds, attempts,
                   lease_owner, lease_expires_at, idempotency_key)
VALUES (1, 'queued', 'sleep', 0, '{"parameters": {}}', 0, 3, 60, 0, NULL, NULL, 'key-1'),
       (2, 'running', 'sleep', 1, '{"parameters": {"seconds": "5"}}', 0, 3, 60, 1,
        'w-alive', now() + interval '10 minutes', NULL),
       (3, 'failed', 'sleep', 2, '{}', 3, 3, 60, 4, NULL, NULL, NULL),
       (4, 'succeeded', 'sleep', 3, '{}', 0, 3, 60, 1, NULL, NULL, NULL),
       (6, 'retrying', 'sleep', 6, '{}', 1, 3, 60, 1, NULL, NULL, NULL),
       (7, 'cancelled', 'sleep', 7, '{}', 0, 3, 60, 0, NULL, NULL, NULL),
       (8, 'orphaned', 'sleep', 1, '{}', 0, 0, 60, 1, 'w-dead', now() - interval '1 minute', NULL);
SELECT setval('tasks_id_seq', 8);
INSERT INTO task_history (task_id, status, details)
SELECT id, 0, 'Task is scheduled' FROM tasks;
INSERT INTO task_history (task_id, status, details)
SELECT id, status, 'then ' || name FROM tasks WHERE status <> 0;
INSERT INTO task_executions (task_id, attempt, worker_id, finished_at, outcome)
VALUES (2, 1, 'w-alive', NULL, 'running'),
       (3, 4, 'w-1', now(), 'failed'),
       (4, 1, 'w-1', now(), 'succeeded'),
       (6, 1, 'w-1', now(), 'failed'),
       (8, 1, 'w-dead', NULL, 'running');
"""


async def test_upgrade_of_an_installation_with_work_in_every_status(empty_database: str) -> None:
    from taskservice import model
    from taskservice.db.connect import create_pool
    from taskservice.model import RetryPolicy, Status
    from taskservice.store import Store
    from test_counts import assert_counts_right

    migrate.upgrade(empty_database, "0002")
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(FILL_0002)
        history_before = conn.execute("SELECT count(*) FROM task_history").fetchone()
        expiry_row = conn.execute("SELECT lease_expires_at FROM tasks WHERE id = 2").fetchone()
        assert expiry_row is not None
    migrate.upgrade(empty_database)
    assert_schema(empty_database)
    with psycopg.connect(empty_database) as conn:
        types: dict[str, str] = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
                " WHERE column_name IN ('id', 'task_id') AND table_schema = 'public'"
                " AND table_name LIKE 'task%'"
            ).fetchall()
        )
        assert conn.execute("SELECT count(*) FROM task_history").fetchone() == history_before
    assert set(types.values()) == {"bigint"}, types

    pool = await create_pool(empty_database, max_size=2)
    try:
        store = Store(pool)
        statuses = {t.id: t.status for t in await store.list_tasks(limit=100)}
        assert statuses == {
            1: Status.QUEUED, 2: Status.RUNNING, 3: Status.FAILED, 4: Status.SUCCEEDED,
            6: Status.RETRYING, 7: Status.CANCELLED, 8: Status.RUNNING,
        }  # fmt: skip
        await assert_counts_right(store)
        # The worker mid-task keeps its lease: same owner, same expiry, its attempt is the token.
        running = await store.get_task(2)
        assert (running.lease_owner, running.lease_expires_at) == ("w-alive", expiry_row[0])
        [attempt] = await store.executions(2)
        assert running.execution_id == attempt.id
        assert await store.extend_leases("w-alive", [attempt.id], 30) == {attempt.id}
        assert await store.finish([model.succeeded(running, attempt.id, {"after": "upgrade"})]) == {
            attempt.id
        }
        assert (await store.get_task(2)).status == Status.SUCCEEDED
        # The one whose worker died is put back without spending a retry (it had none), and runs.
        [reaped] = await store.reap_expired_leases(RetryPolicy())
        assert (reaped.task_id, reaped.status, reaped.retries, reaped.lost_leases) == (
            8,
            Status.RETRYING,
            0,
            1,
        )
        claimed = {c.task.id: c for c in await store.claim("w-new", 10)}
        assert set(claimed) == {1, 6, 8}
        assert claimed[8].task.attempts == 2
        # New tasks continue the sequence; idempotency keys still hold.
        assert await store.create_task(model.NewTask("new", "sleep")) == (9, True)
        assert await store.create_task(model.NewTask("again", "sleep", idempotency_key="key-1")) == (1, False)
        # Workflows (0070) run on the upgraded tasks table: the second step waits for the first.
        from taskservice.rules.workflows import checked_graph

        steps = [
            model.StepSpec(n, model.NewTask(n, "sleep"), after) for n, after in (("a", ()), ("b", ("a",)))
        ]
        workflow_id, _ = await store.create_workflow("after upgrade", checked_graph(steps))
        first = [c for c in await store.claim("w-new", 10) if c.task.workflow_id == workflow_id]
        assert [c.task.step for c in first] == ["a"]
        await store.finish([model.succeeded(first[0].task, first[0].execution_id, None)])
        assert [c.task.step for c in await store.claim("w-new", 10)] == ["b"]
        await assert_counts_right(store)
    finally:
        await pool.close()


# The previous release's finish_attempts, as its workers still send it during a rolling deploy.
FINISH_BEFORE_0031 = """
WITH d AS (
    SELECT * FROM unnest($1::attempt_outcome[])
), moved AS (
    UPDATE tasks t
       SET status = d.status, retries = d.retries, lost_leases = d.lost_leases,
           run_at = now() + make_interval(secs => d.delay_seconds), updated_at = now()
      FROM d
     WHERE t.id = d.task_id AND t.status = 1 AND t.execution_id = d.execution_id
    RETURNING t.id, t.status, d.execution_id, d.delay_seconds
), closed AS (
    UPDATE task_executions e
       SET finished_at = now(), outcome = d.outcome, error = d.error, result = d.result,
           lease_expires_at = NULL
      FROM d JOIN moved ON moved.execution_id = d.execution_id
     WHERE e.id = d.execution_id
), history AS (
    INSERT INTO task_history (task_id, status, details)
    SELECT d.task_id, d.status, d.details FROM d JOIN moved ON moved.execution_id = d.execution_id
)
SELECT moved.execution_id FROM moved
"""


async def test_workers_of_the_previous_release_still_write_outcomes_after_0031(empty_database: str) -> None:
    """0031 adds a traceback to the outcome's row type as a new type: the old one, which the workers
    not yet replaced still send, keeps its fields (a row of 10 into a type of 11 would be refused)."""
    from taskservice import model
    from taskservice.db.connect import create_pool
    from taskservice.store import Store

    migrate.upgrade(empty_database)  # the newest schema: the old row type is still there
    pool = await create_pool(empty_database, max_size=2)
    try:
        store = Store(pool)
        await store.create_tasks([model.NewTask("old", "sleep"), model.NewTask("new", "sleep")])
        old, new = await store.claim("w-old", 2)
        async with pool.acquire() as conn:
            row = (old.task.id, old.execution_id, int(model.Status.SUCCEEDED), 0, 0, 0.0,
                   "Task completed successfully (Attempt 1)", "succeeded", None, {"v": 1})  # fmt: skip
            assert await conn.fetch(FINISH_BEFORE_0031, [row]) == [(old.execution_id,)]
        failed = model.attempt_failed(
            new.task, new.execution_id, "Task failed", "E: e", model.RetryPolicy(), retryable=False,
            traceback="Traceback (most recent call last):\nE: e\n",
        )  # fmt: skip
        assert await store.finish([failed]) == {new.execution_id}
        [kept] = await store.executions(old.task.id)
        [traced] = await store.executions(new.task.id)
        assert (kept.outcome, kept.result, kept.traceback) == ("succeeded", {"v": 1}, None)
        assert (traced.error, traced.traceback) == ("E: e", "Traceback (most recent call last):\nE: e\n")
    finally:
        await pool.close()
