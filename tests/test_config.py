"""Settings: defaults, the environment, `.env`, the database URL, and one-line errors for wrong values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from taskservice.config import ConfigError, Settings, load_settings

VARIABLES = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting comes from the environment or a `.env` of whoever runs the tests."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.server_host == "127.0.0.1"
    assert settings.server_port == 8080
    assert settings.worker_concurrency == 10
    assert settings.task_time_out == 60.0
    assert settings.max_retries == 3
    assert (settings.retry_backoff_base, settings.retry_backoff_max) == (1.0, 300.0)
    assert settings.lease_seconds == 30.0
    assert settings.db_pool_max_conns == 10
    assert settings.db_port == 5432
    assert settings.db_ssl_mode == "prefer"
    assert settings.log_level == "info"
    assert settings.embedded_data_dir.name == "postgres"
    assert settings.configured_database_url is None


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SERVER_PORT", "9090")
    monkeypatch.setenv("WORKER_COUNT", "4")
    monkeypatch.setenv("TASK_TIME_OUT", "2.5")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("SMTP_STARTTLS", "false")
    monkeypatch.setenv("EMBEDDED_DATA_DIR", str(tmp_path / "pg"))
    monkeypatch.setenv("server_host", "0.0.0.0")  # names are not case-sensitive

    settings = load_settings()
    assert settings.server_port == 9090
    assert settings.worker_concurrency == 4  # WORKER_COUNT: the seed's name of the setting
    assert settings.task_time_out == 2.5
    assert settings.log_level == "debug"
    assert settings.smtp_starttls is False
    assert settings.embedded_data_dir == tmp_path / "pg"
    assert settings.server_host == "0.0.0.0"


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# settings of this checkout\n"
        "SERVER_PORT=9191\n"
        "WORKER_COUNT=3\n"
        "DATABASE_URL=postgresql://app@db.example.com/tasks\n"
        "SOMETHING_ELSE=ignored\n"
    )
    settings = load_settings()
    assert settings.server_port == 9191
    assert settings.worker_concurrency == 3
    assert settings.configured_database_url == "postgresql://app@db.example.com/tasks"

    # The environment wins over `.env`.
    monkeypatch.setenv("SERVER_PORT", "9292")
    assert load_settings().server_port == 9292


def test_worker_concurrency_is_also_read_as_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_CONCURRENCY", "6")
    assert load_settings().worker_concurrency == 6
    monkeypatch.setenv("WORKER_COUNT", "6")  # both names, one value: taken
    assert load_settings().worker_concurrency == 6
    monkeypatch.delenv("WORKER_CONCURRENCY")
    monkeypatch.setenv("WORKER_COUNT", "0")
    assert load_settings().worker_concurrency == 0  # the seed's name alone


@pytest.mark.parametrize("dotenv", [False, True])
def test_worker_concurrency_and_worker_count_that_disagree_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dotenv: bool
) -> None:
    monkeypatch.setenv("WORKER_COUNT", "4")
    if dotenv:  # one from the environment, the other from `.env`: still one setting given twice
        (tmp_path / ".env").write_text("WORKER_CONCURRENCY=8\n")
    else:
        monkeypatch.setenv("WORKER_CONCURRENCY", "8")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        "invalid settings: WORKER_CONCURRENCY=8 and WORKER_COUNT=4 disagree: they are one setting "
        "(WORKER_COUNT is its older name); set one of them"
    )


def test_database_url_wins_over_db_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@primary/tasks")
    monkeypatch.setenv("DB_HOST", "secondary")
    monkeypatch.setenv("DB_USERNAME", "other")
    assert load_settings().configured_database_url == "postgresql://app@primary/tasks"


@pytest.mark.parametrize("host", ["db.example.com", "10.1.2.3", "::1", "/var/run/postgresql"])
def test_db_variables_build_a_url(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("DB_HOST", host)
    monkeypatch.setenv("DB_PORT", "6543")
    monkeypatch.setenv("DB_USERNAME", "task user@corp")
    monkeypatch.setenv("DB_PASSWORD", "p@ss:w/rd %?#")
    monkeypatch.setenv("DB_DATABASE", "tasks db")
    monkeypatch.setenv("DB_SSL_MODE", "require")

    url = load_settings().configured_database_url
    assert url is not None
    assert url.startswith("postgresql://")
    # Read back by libpq's own parser: every part survives quoting.
    assert conninfo_to_dict(url) == {
        "user": "task user@corp",
        "password": "p@ss:w/rd %?#",
        "host": host,
        "port": "6543",
        "dbname": "tasks db",
        "sslmode": "require",
    }


def test_db_variables_without_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db.example.com")
    assert load_settings().configured_database_url == (
        "postgresql://postgres@db.example.com:5432/postgres?sslmode=prefer"
    )


def test_nothing_set_means_the_embedded_database() -> None:
    assert load_settings().configured_database_url is None


async def test_db_variables_reach_the_test_server(
    monkeypatch: pytest.MonkeyPatch, pg_server_url: str
) -> None:
    """The URL built from DB_* connects, with both drivers the service uses (a socket dir as DB_HOST too)."""
    server = conninfo_to_dict(pg_server_url)
    monkeypatch.setenv("DB_HOST", str(server.get("host") or "localhost"))
    monkeypatch.setenv("DB_PORT", str(server.get("port") or 5432))
    monkeypatch.setenv("DB_USERNAME", str(server.get("user") or "postgres"))
    monkeypatch.setenv("DB_PASSWORD", str(server.get("password") or ""))
    monkeypatch.setenv("DB_DATABASE", str(server.get("dbname") or "postgres"))
    url = load_settings().configured_database_url
    assert url is not None

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == (server.get("user") or "postgres", server.get("dbname") or "postgres")

    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT 40 + 2") == 42
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"WORKER_COUNT": "abc"}, "WORKER_COUNT"),
        ({"WORKER_CONCURRENCY": "-1"}, "WORKER_CONCURRENCY"),
        ({"SERVER_PORT": "70000"}, "SERVER_PORT"),
        ({"DB_SSL_MODE": "bogus"}, "DB_SSL_MODE"),
        ({"RETRY_BACKOFF_BASE": "10", "RETRY_BACKOFF_MAX": "5"}, "RETRY_BACKOFF_MAX"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"TASK_TIME_OUT": "0"}, "TASK_TIME_OUT"),
        ({"MAX_RETRIES": "11"}, "MAX_RETRIES"),
        ({"DB_PORT": "-1"}, "DB_PORT"),
    ],
)
def test_wrong_values_are_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "\n" not in message
    assert named in message
    assert error.value.__cause__ is None
    assert error.value.__suppress_context__  # no pydantic error chained under it


def test_wrong_value_in_dotenv_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SERVER_PORT=http\n")
    with pytest.raises(ConfigError, match="SERVER_PORT"):
        load_settings()


@pytest.mark.e2e
def test_cli_reports_a_wrong_setting_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in VARIABLES and k != "TEST_DATABASE_URL"}
    env["WORKER_COUNT"] = "abc"
    # Were the value accepted, nothing would start an embedded server or reach a real database.
    env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"
    env["EMBEDDED_DATA_DIR"] = str(tmp_path / "never")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "task-cli"), "db", "upgrade"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "WORKER_COUNT" in lines[0]


def test_the_trace_viewers_address_is_a_web_address() -> None:
    assert load_settings(trace_ui_url="https://tempo.example/trace/{trace_id}").trace_ui_url.startswith(
        "https:"
    )
    assert load_settings().trace_ui_url == ""
    with pytest.raises(ConfigError, match="TRACE_UI_URL"):
        load_settings(trace_ui_url="javascript:alert(1)//{trace_id}")
