"""The maintenance job vacuums our hot tables when autovacuum does not, one process at a time, and is idle
otherwise; the service says at start, at scrape and in /readyz?verbose when autovacuum is off.

Both test servers count: the PostgreSQL 15 server runs with autovacuum off, the embedded 18 with it on;
a test that needs it off for a table says so with the table's own `autovacuum_enabled = false`."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import structlog

from agents import AgentProcess
from conftest import ServerProcess, eventually, subprocess_env, window_index_kept
from taskservice.api.health import NOT_PUBLIC
from taskservice.api.lifespan import warn_without_window_index
from taskservice.config import ConfigError, Settings, load_settings
from taskservice.store import HOT_TABLES, Pool, Store, TableVacuum, VacuumLimits, VacuumState
from taskservice.store.retention import LOCK_KEY
from taskservice.worker.maintenance import (
    AGAIN_SECONDS,
    AUTOVACUUM_VISITS,
    LOCK_HELD_SECONDS,
    MaintenanceJob,
    warn_when_autovacuum_is_off,
)
from taskservice.worker.serve import maintenance_job
from test_metrics import samples, value

NOW = datetime(2026, 12, 7, tzinfo=UTC)


async def autovacuum_off_for(pool: Pool, table: str) -> None:
    await pool.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")


async def leave_dead_tasks(pool: Pool, count: int) -> None:
    """`count` tasks inserted and deleted: as many dead tuples in `tasks`, counted once the stats flush."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO tasks (name, type, timeout_seconds)"
            " SELECT 'dead', 'noop', 60 FROM generate_series(1, $1)",
            count,
        )
        await conn.execute("DELETE FROM tasks WHERE name = 'dead'")
        await conn.execute("SELECT pg_stat_force_next_flush()")  # at the next statement's end
        await conn.execute("SELECT 1")


async def table_stats(pool: Pool, table: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT n_dead_tup, last_vacuum FROM pg_stat_user_tables WHERE relname = $1", table
        )
    assert row is not None
    return row


async def dead_counted(pool: Pool, table: str, at_least: int) -> bool:
    return bool((await table_stats(pool, table))["n_dead_tup"] >= at_least)


def job(store: Store, url: str, clock: datetime = NOW, margin: float = 2.0) -> MaintenanceJob:
    return MaintenanceJob(store, url, interval=60, margin=margin, limits=VacuumLimits(), clock=lambda: clock)


async def test_a_table_past_the_margin_that_autovacuum_skips_is_vacuumed(
    store: Store, pool: Pool, database_url: str
) -> None:
    await autovacuum_off_for(pool, "tasks")
    await leave_dead_tasks(pool, 5000)
    await eventually(lambda: dead_counted(pool, "tasks", 5000))
    state = await store.vacuum_state()
    tasks = next(t for t in state.tables if t.table == "tasks")
    assert tasks.dead >= 5000 > 2 * tasks.autovacuum_at  # migration 0005: 1000 + 2% of the rows
    assert not state.autovacuum_runs_on(tasks)
    assert "autovacuum is off for table(s) tasks (autovacuum_enabled = false)" in state.warnings()

    with structlog.testing.capture_logs() as logs:
        done = await job(store, database_url).run_once()
    assert done is not None
    assert (done.table, done.finished) == ("tasks", True)
    assert done.dead_before >= 5000
    assert done.seconds >= 0
    vacuumed = [e for e in logs if e["event"].startswith("maintenance: vacuumed")]
    assert vacuumed[0]["table"] == "tasks"
    assert vacuumed[0]["dead_tuples_before"] == done.dead_before

    async def vacuumed_now() -> bool:
        row = await table_stats(pool, "tasks")
        return row["last_vacuum"] is not None and row["n_dead_tup"] < 1000

    await eventually(vacuumed_now)
    # Nothing past the margin any more: the next tick does nothing.
    assert await job(store, database_url).run_once() is None


async def test_tables_under_the_margin_are_left_alone(store: Store, pool: Pool, database_url: str) -> None:
    for table in HOT_TABLES:
        await autovacuum_off_for(pool, table)
    await leave_dead_tasks(pool, 1500)  # past autovacuum's 1,000, not past twice that
    await eventually(lambda: dead_counted(pool, "tasks", 1500))
    assert await job(store, database_url).run_once() is None
    assert (await table_stats(pool, "tasks"))["last_vacuum"] is None
    # A lower margin takes it.
    done = await job(store, database_url, margin=1.0).run_once()
    assert done is not None
    assert done.table == "tasks"


async def test_a_tick_is_skipped_while_another_session_holds_the_retention_lock(
    store: Store, pool: Pool, database_url: str
) -> None:
    await autovacuum_off_for(pool, "tasks")
    await leave_dead_tasks(pool, 5000)
    await eventually(lambda: dead_counted(pool, "tasks", 5000))
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():  # as retention takes it: for its transaction
            assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY)
            assert await job(store, database_url).run_once() is None
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)  # another's maintenance
        skipping = job(store, database_url)
        assert await skipping.run_once() is None
        assert skipping.interval == LOCK_HELD_SECONDS  # a table is due: it looks again soon
        assert (await table_stats(pool, "tasks"))["last_vacuum"] is None
        assert await other.fetchval("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await other.close()
    done = await job(store, database_url).run_once()
    assert done is not None
    assert done.table == "tasks"
    # It let the lock go: retention can take it.
    async with pool.acquire() as conn, conn.transaction():
        assert await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY)


def state_of(*tables: TableVacuum, autovacuum: bool = True, naptime: float = 60.0) -> VacuumState:
    return VacuumState(autovacuum, True, naptime, tables)


TASKS = TableVacuum("tasks", 5000, 1000.0, True, None, False)


def test_while_autovacuum_may_yet_vacuum_a_table_the_job_leaves_it_to_autovacuum() -> None:
    clock = [NOW]
    maintenance = MaintenanceJob(Store.__new__(Store), "unused", 60, clock=lambda: clock[0])
    turn = timedelta(seconds=AUTOVACUUM_VISITS * 60)
    assert maintenance.due(state_of(TASKS)) == []  # first seen past the margin now
    clock[0] = NOW + turn - timedelta(seconds=1)
    assert maintenance.due(state_of(TASKS)) == []
    clock[0] = NOW + turn
    assert maintenance.due(state_of(TASKS)) == [TASKS]  # autovacuum is behind: three visits missed
    # Back under the margin (autovacuum caught up), its turn starts over.
    assert maintenance.due(state_of(replace(TASKS, dead=1500))) == []
    assert maintenance.due(state_of(TASKS)) == []
    # Off for the server, or for the table: no waiting. A table being vacuumed is left alone.
    assert maintenance.due(state_of(TASKS, autovacuum=False)) == [TASKS]
    disabled = replace(TASKS, autovacuum_enabled=False)
    assert maintenance.due(state_of(disabled)) == [disabled]
    assert maintenance.due(state_of(replace(TASKS, vacuuming=True), autovacuum=False)) == []


def test_the_worst_table_past_the_margin_goes_first() -> None:
    maintenance = MaintenanceJob(Store.__new__(Store), "unused", 60, clock=lambda: NOW)
    history = TableVacuum("task_history", 9000, 1000.0, False, None, False)
    big_but_under = TableVacuum("task_executions", 50_000, 30_000.0, False, None, False)
    tasks = replace(TASKS, autovacuum_enabled=False)
    assert maintenance.due(state_of(tasks, history, big_but_under)) == [history, tasks]


async def test_the_warning_at_start_says_what_keeps_autovacuum_off_and_what_is_done(
    store: Store, pool: Pool
) -> None:
    server_off = await pool.fetchval("SELECT current_setting('autovacuum') = 'off'")
    await autovacuum_off_for(pool, "task_history")
    with structlog.testing.capture_logs() as logs:
        problems = await warn_when_autovacuum_is_off(store, interval=60, margin=2)
    assert ("autovacuum is off for the server (autovacuum = off)" in problems) == server_off
    assert "autovacuum is off for table(s) task_history (autovacuum_enabled = false)" in problems
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert "task_history" in warning["event"]
    assert "MAINTENANCE_INTERVAL 60s" in warning["event"]
    with structlog.testing.capture_logs() as logs:
        await warn_when_autovacuum_is_off(store, interval=0, margin=2)
    assert "nothing vacuums them" in logs[0]["event"]


async def test_no_warning_while_autovacuum_vacuums_our_tables(store: Store, pool: Pool) -> None:
    if await pool.fetchval("SELECT current_setting('autovacuum') = 'off'"):
        pytest.skip("this server runs with autovacuum off: the warning is right there")
    with structlog.testing.capture_logs() as logs:
        assert await warn_when_autovacuum_is_off(store, interval=60, margin=2) == []
    assert not [e for e in logs if e["log_level"] == "warning"]


async def test_a_warning_at_start_when_the_window_index_is_missing(store: Store, pool: Pool) -> None:
    """From PostgreSQL 16 on the index is there (migration 0004) and nothing is said; before 16 it is
    not (0120) and nothing is said either. Missing on 16 or later (pg_upgrade after 0120): a warning
    with the statement that puts it back, which does."""
    indexed = await window_index_kept(pool)
    with structlog.testing.capture_logs() as logs:
        assert not await warn_without_window_index(store)
    assert not [e for e in logs if e["log_level"] == "warning"]
    if not indexed:
        return
    await pool.execute("DROP INDEX idx_task_executions_finished_at")
    with structlog.testing.capture_logs() as logs:
        assert await warn_without_window_index(store)
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    statement = warning["event"].split("run: ", 1)[1]
    await pool.execute(statement)
    assert not await warn_without_window_index(store)


async def test_the_window_index_check_never_keeps_the_server_from_starting(database_url: str) -> None:
    closed = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    with structlog.testing.capture_logs() as logs:
        assert not await warn_without_window_index(Store(closed))
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"] == "could not check the dashboard's window index"
    assert "closed" in warning["error"], warning


def test_the_maintenance_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of whoever runs the tests
    for name in Settings.model_fields:
        if name.startswith("maintenance_"):
            monkeypatch.delenv(name.upper(), raising=False)
    defaults = load_settings()
    assert (defaults.maintenance_interval, defaults.maintenance_margin) == (60.0, 2.0)
    monkeypatch.setenv("MAINTENANCE_INTERVAL", "0")
    assert maintenance_job(load_settings(), Store.__new__(Store), "unused") is None
    monkeypatch.setenv("MAINTENANCE_INTERVAL", "5m")
    monkeypatch.setenv("MAINTENANCE_VACUUM_TIMEOUT", "90s")
    made = maintenance_job(load_settings(), Store.__new__(Store), "unused")
    assert made is not None
    assert made.interval == 300.0
    assert made.limits.timeout_seconds == 90.0
    monkeypatch.setenv("MAINTENANCE_MARGIN", "0.5")
    with pytest.raises(ConfigError, match="MAINTENANCE_MARGIN"):
        load_settings()


@pytest.mark.e2e
async def test_the_server_warns_at_start_and_shows_dead_tuples_at_scrape_and_in_readyz(
    settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    await autovacuum_off_for(pool, "tasks")
    await leave_dead_tasks(pool, 3000)
    await eventually(lambda: dead_counted(pool, "tasks", 3000))
    server = ServerProcess(settings, tmp_path / "server.log", MAINTENANCE_INTERVAL="0")
    try:
        server.wait_ready()
        assert "autovacuum is off for table(s) tasks" in server.log()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            plain = await http.get("/readyz")
            assert (plain.status_code, plain.text) == (200, "ready\n")
            verbose = await http.get("/readyz?verbose")
            assert verbose.status_code == 200
            lines = verbose.text.splitlines()
            assert lines[0] == "ready"
            assert "warning: autovacuum is off for table(s) tasks (autovacuum_enabled = false)" in lines
            [tasks] = [line for line in lines if line.startswith("table tasks: ")]
            assert int(tasks.split()[2]) >= 3000
            assert tasks.endswith("autovacuum off)")
            assert {line.split()[1].rstrip(":") for line in lines if line.startswith("table ")} == set(
                HOT_TABLES
            )
            scraped = (await http.get("/metrics")).text
    finally:
        server.stop()
    seen = samples(scraped)
    assert value(seen, "taskservice_table_dead_tuples", table="tasks") >= 3000
    assert value(seen, "taskservice_table_autovacuum_enabled", table="tasks") == 0
    assert value(seen, "taskservice_table_autovacuum_threshold", table="tasks") >= 1000
    for table in HOT_TABLES:
        assert ("taskservice_table_dead_tuples", (("table", table),)) in seen


async def vacuum_waiting(pool: Pool) -> bool:
    """A VACUUM of ours waits for the table lock another session holds."""
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE '%VACUUM \"tasks\"' AND wait_event_type = 'Lock'"
        )
    )


async def no_vacuum_running(pool: Pool) -> bool:
    return not await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE '%VACUUM \"tasks\"' AND state = 'active'"
    )


async def lock_free(pool: Pool) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY))


async def test_a_vacuum_past_its_timeout_is_stopped_and_said(
    store: Store, pool: Pool, database_url: str
) -> None:
    await autovacuum_off_for(pool, "tasks")
    await leave_dead_tasks(pool, 5000)
    await eventually(lambda: dead_counted(pool, "tasks", 5000))
    blocker = await asyncpg.connect(database_url)
    try:
        async with blocker.transaction():  # keeps the VACUUM waiting until its statement_timeout
            await blocker.execute("LOCK TABLE tasks IN SHARE UPDATE EXCLUSIVE MODE")
            bounded = MaintenanceJob(store, database_url, 60, limits=VacuumLimits(timeout_seconds=0.2))
            with structlog.testing.capture_logs() as logs:
                done = await bounded.run_once()
    finally:
        await blocker.close()
    assert done is not None
    assert (done.table, done.finished) == ("tasks", False)
    assert done.seconds >= 0.2
    assert any("MAINTENANCE_VACUUM_TIMEOUT" in e["event"] for e in logs if e["log_level"] == "warning")
    assert await lock_free(pool)


async def test_stopping_the_job_cancels_its_vacuum_and_lets_the_lock_go(
    store: Store, pool: Pool, database_url: str
) -> None:
    await autovacuum_off_for(pool, "tasks")
    await leave_dead_tasks(pool, 5000)
    await eventually(lambda: dead_counted(pool, "tasks", 5000))
    blocker = await asyncpg.connect(database_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE tasks IN SHARE UPDATE EXCLUSIVE MODE")
            running = MaintenanceJob(store, database_url, 0.01)
            running.start()
            await eventually(lambda: vacuum_waiting(pool))
            assert not await lock_free(pool)  # the job holds it while it vacuums
            await running.stop()
            assert running.task is not None
            assert running.task.done()
            await eventually(lambda: no_vacuum_running(pool))
            assert await lock_free(pool)
    finally:
        await blocker.close()


@pytest.mark.e2e
async def test_a_worker_warns_at_start(pool: Pool, settings: Settings, tmp_path: Path) -> None:
    await autovacuum_off_for(pool, "task_executions")
    worker = AgentProcess(
        [sys.executable, "-m", "taskservice.cli", "serve", "-c", "1"],
        subprocess_env(settings, MAINTENANCE_INTERVAL="0"),
        tmp_path / "worker.log",
    )
    try:

        async def started() -> bool:
            return "worker started" in worker.log()

        await eventually(started, timeout=60)
    finally:
        assert worker.stop() == 0, worker.log()
    [warning] = [line for line in worker.log().splitlines() if "autovacuum does not vacuum" in line]
    assert "[warning" in warning
    assert "autovacuum is off for table(s) task_executions (autovacuum_enabled = false)" in warning
    assert "MAINTENANCE_INTERVAL is 0, so nothing vacuums them" in warning


async def test_with_auth_on_readyz_shows_no_figures(
    token_server: tuple[ServerProcess, dict[str, str]],
) -> None:
    """/readyz needs no credentials: with auth on (and /metrics not public) it gives no table figures."""
    server, secrets = token_server
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        verbose = await http.get("/readyz?verbose")
        assert verbose.status_code == 200
        assert verbose.text == f"ready\n{NOT_PUBLIC}\n"
        # Where it points: /metrics, with a token, has them.
        scraped = await http.get("/metrics", headers={"authorization": f"Bearer {secrets['viewer']}"})
    assert scraped.status_code == 200
    assert "taskservice_table_dead_tuples{" in scraped.text


@pytest.mark.e2e
@pytest.mark.parametrize("process", ["server", "worker"])
async def test_servers_and_workers_run_the_job(
    pool: Pool, settings: Settings, tmp_path: Path, process: str
) -> None:
    await autovacuum_off_for(pool, "tasks")
    await leave_dead_tasks(pool, 5000)
    await eventually(lambda: dead_counted(pool, "tasks", 5000))
    running: ServerProcess | AgentProcess
    if process == "server":
        running = ServerProcess(
            settings, tmp_path / "server.log", MAINTENANCE_INTERVAL="0.2", WORKER_COUNT="0"
        )
    else:
        command = [sys.executable, "-m", "taskservice.cli", "serve", "-c", "1"]
        running = AgentProcess(
            command, subprocess_env(settings, MAINTENANCE_INTERVAL="0.2"), tmp_path / "w.log"
        )
    try:

        async def vacuumed_and_said() -> bool:
            # The process logs after its VACUUM returns, which PostgreSQL's statistics may show first.
            said = any("maintenance: vacuumed" in line for line in running.log().splitlines())
            return said and (await table_stats(pool, "tasks"))["last_vacuum"] is not None

        await eventually(vacuumed_and_said, timeout=60)
    finally:
        running.stop()
    [line] = [line for line in running.log().splitlines() if "maintenance: vacuumed" in line]
    assert "table=tasks" in line
    assert "dead_tuples_before=" in line


async def test_when_several_tables_are_due_the_next_tick_comes_soon(
    store: Store, pool: Pool, database_url: str
) -> None:
    for table in ("tasks", "task_history"):
        await autovacuum_off_for(pool, table)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO tasks (name, type, timeout_seconds)"
            " SELECT 'dead', 'noop', 60 FROM generate_series(1, 5000)"
        )
        await conn.execute(
            "INSERT INTO task_history (task_id, status, details)"
            " SELECT id, 0 /*QUEUED*/, 'x' FROM tasks WHERE id % 5 <> 0"
        )
        await conn.execute("DELETE FROM task_history")
        await conn.execute("DELETE FROM tasks")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")
    await eventually(lambda: dead_counted(pool, "tasks", 5000))
    await eventually(lambda: dead_counted(pool, "task_history", 4000))
    maintenance = job(store, database_url)
    first = await maintenance.run_once()
    assert first is not None
    assert first.table == "tasks"  # the most dead tuples first
    assert maintenance.interval == AGAIN_SECONDS
    second = await maintenance.run_once()
    assert second is not None
    assert second.table == "task_history"
    assert maintenance.interval == 60  # nothing else was due
    assert await maintenance.run_once() is None


async def test_dead_tuples_an_older_snapshot_holds_are_said_once_and_not_vacuumed_for_again(
    store: Store, pool: Pool, database_url: str
) -> None:
    await autovacuum_off_for(pool, "tasks")
    old = await asyncpg.connect(database_url)
    try:
        async with old.transaction(isolation="repeatable_read"):
            await old.fetchval("SELECT count(*) FROM tasks")  # its snapshot: before the deletes
            await leave_dead_tasks(pool, 5000)
            await eventually(lambda: dead_counted(pool, "tasks", 5000))
            maintenance = job(store, database_url)
            with structlog.testing.capture_logs() as logs:
                done = await maintenance.run_once()
            assert done is not None
            assert done.finished
            assert done.dead_after >= 5000  # nothing could go: the old snapshot sees them
            [said] = [e for e in logs if e["event"].startswith("maintenance: VACUUM could not remove")]
            assert (said["table"], said["dead_tuples_left"]) == ("tasks", done.dead_after)
            assert await maintenance.run_once() is None  # not again for the same dead tuples
    finally:
        await old.close()
    # More dead tuples past the margin above those: vacuumed again, and now they all go.
    await leave_dead_tasks(pool, 3000)
    await eventually(lambda: dead_counted(pool, "tasks", 8000))
    again = await maintenance.run_once()
    assert again is not None
    assert again.dead_after < 1000
