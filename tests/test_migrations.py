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

TABLES = {
    "tasks",
    "task_history",
    "task_executions",
    "workers",
    "task_counts",
    "api_tokens",
    "dashboard_sessions",
}
# The original service's indexes, by name (the queue's own partial indexes come on top).
SEED_INDEXES = {
    "idx_type_status": "tasks",
    "idx_created_at": "tasks",
    "idx_status_created_at": "tasks",
    "idx_task_id_created_at": "task_history",
}
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


def cli_upgrade(env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [TASK_CLI, "db", "upgrade"],
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
    assert migrate.head_revision() == "0008"


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
