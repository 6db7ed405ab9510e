"""The built-in plugins against real services (an SMTP server, PostgreSQL) and the plugin registry."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, LiteralString

import psycopg
import pytest
from aiosmtpd.controller import Controller
from psycopg import sql

from taskservice.api.probe import free_port
from taskservice.config import Settings
from taskservice.db.connect import with_user
from taskservice.plugins import PermanentFailure, Registry, UnknownPluginType, is_async
from taskservice.plugins.email import SendEmail
from taskservice.plugins.query import SANDBOX_DATABASE, SANDBOX_ROLE, RunQuery
from taskservice.plugins.sleep import Sleep
from taskservice.store.databases import ensure_database

# -- send_email ------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Collector:
    """An aiosmtpd handler that keeps every message and refuses recipients at `refused.example`."""

    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such mailbox"
        if address.endswith("@busy.example"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content.replace(b"\r\n", b"\n")  # as it came over the wire: CRLF
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@dataclass
class SMTPServer:
    collector: Collector
    port: int


def _start_smtp(**kwargs: Any) -> tuple[Controller, SMTPServer]:
    collector = Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, SMTPServer(collector, port)


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    controller, server = _start_smtp()
    yield server
    controller.stop()


def _smtp_settings(settings: Settings, port: int, **update: Any) -> Settings:
    return settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False, **update}
    )


async def test_email_goes_to_a_real_smtp_server(settings: Settings, smtp_server: SMTPServer) -> None:
    plugin = SendEmail(_smtp_settings(settings, smtp_server.port))

    result = await asyncio.to_thread(
        plugin.run, {"recipient": "alice@example.com", "subject": "Hello", "body": "Hi Alice,\nbye."}
    )

    assert result["backend"] == "smtp"
    assert result["recipient"] == "alice@example.com"
    [received] = smtp_server.collector.received
    assert received.recipients == ["alice@example.com"]
    assert received.mail_from == settings.email_from
    assert received.message["Subject"] == "Hello"
    assert received.message["To"] == "alice@example.com"
    assert received.message["From"] == settings.email_from
    assert received.message["Message-ID"] == result["message_id"]
    body = received.message.get_body()
    assert body is not None
    assert body.get_content() == "Hi Alice,\nbye.\n"


def test_email_to_is_an_alias_of_recipient(settings: Settings, smtp_server: SMTPServer) -> None:
    result = SendEmail(_smtp_settings(settings, smtp_server.port)).run(
        {"to": "bob@example.org", "subject": "s", "body": "b"}
    )

    assert result["recipient"] == "bob@example.org"
    assert [r.recipients for r in smtp_server.collector.received] == [["bob@example.org"]]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_email_logs_in_when_a_username_is_set(settings: Settings) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    controller, server = _start_smtp(authenticator=authenticator, auth_require_tls=False, auth_required=True)
    try:
        plugin = SendEmail(_smtp_settings(settings, server.port, smtp_username="svc", smtp_password="s3cret"))
        plugin.run({"recipient": "carol@example.com", "subject": "s", "body": "b"})
    finally:
        controller.stop()

    assert logins == [(b"svc", b"s3cret")]
    assert len(server.collector.received) == 1


@pytest.mark.parametrize("address", ["foo", "foo@", "@example.com", "a b@example.com", "x@-bad-.com"])
def test_email_bad_address_fails_permanently(
    settings: Settings, smtp_server: SMTPServer, address: str
) -> None:
    plugin = SendEmail(_smtp_settings(settings, smtp_server.port))

    with pytest.raises(PermanentFailure, match=r"recipient '.*' is not a valid email address"):
        plugin.run({"recipient": address, "subject": "s", "body": "b"})
    with pytest.raises(PermanentFailure, match=r"^to '.*' is not a valid email address"):
        plugin.run({"to": address, "subject": "s", "body": "b"})
    assert smtp_server.collector.received == []


@pytest.mark.parametrize("parameters", [{}, {"recipient": ""}, {"to": "   "}, {"subject": "s", "body": "b"}])
def test_email_missing_recipient_fails_permanently(settings: Settings, parameters: dict[str, str]) -> None:
    with pytest.raises(PermanentFailure, match="recipient is required"):
        SendEmail(settings).run(parameters)


def test_email_conflicting_recipient_and_to_fail_permanently(settings: Settings) -> None:
    with pytest.raises(PermanentFailure, match="not both"):
        SendEmail(settings).run({"recipient": "a@example.com", "to": "b@example.com"})


def test_email_line_break_in_subject_fails_permanently(settings: Settings) -> None:
    with pytest.raises(PermanentFailure, match="line breaks"):
        SendEmail(settings).run({"recipient": "a@example.com", "subject": "hi\nBcc: x@example.com"})


def test_email_refused_recipient_fails_permanently(settings: Settings, smtp_server: SMTPServer) -> None:
    plugin = SendEmail(_smtp_settings(settings, smtp_server.port))

    with pytest.raises(PermanentFailure, match=r"refused nobody@refused\.example: 550"):
        plugin.run({"recipient": "nobody@refused.example", "subject": "s", "body": "b"})


def test_email_temporarily_refused_recipient_is_retryable(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    plugin = SendEmail(_smtp_settings(settings, smtp_server.port))

    with pytest.raises(smtplib.SMTPRecipientsRefused) as raised:
        plugin.run({"recipient": "someone@busy.example", "subject": "s", "body": "b"})
    assert not isinstance(raised.value, PermanentFailure)


def test_email_smtp_server_down_is_retryable(settings: Settings) -> None:
    plugin = SendEmail(_smtp_settings(settings, free_port()))  # nothing listens there

    with pytest.raises(ConnectionRefusedError):
        plugin.run({"recipient": "alice@example.com", "subject": "s", "body": "b"})


def test_email_starttls_unsupported_by_server_is_an_ordinary_error(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    plugin = SendEmail(_smtp_settings(settings, smtp_server.port, smtp_starttls=True))

    with pytest.raises(smtplib.SMTPNotSupportedError):
        plugin.run({"recipient": "alice@example.com", "subject": "s", "body": "b"})
    assert smtp_server.collector.received == []


def test_email_outbox_backend_writes_an_eml_file(settings: Settings) -> None:
    assert not settings.smtp_host
    outbox = settings.email_outbox_dir
    assert not outbox.exists()  # the plugin creates it

    first = SendEmail(settings).run(
        {"recipient": "dave@example.net", "subject": "Report", "body": "All good."}
    )
    second = SendEmail(settings).run({"to": "erin@example.net", "subject": "Again", "body": "x"})

    assert first["backend"] == "outbox"
    path = Path(first["path"])
    assert path.parent == outbox
    assert path.suffix == ".eml"
    assert first["path"] != second["path"]
    assert sorted(p.name for p in outbox.iterdir()) == sorted([path.name, Path(second["path"]).name])
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == "dave@example.net"
    assert message["From"] == settings.email_from
    assert message["Subject"] == "Report"
    assert message["Message-ID"] == first["message_id"]
    assert message["Date"]
    body = message.get_body()
    assert body is not None
    assert body.get_content() == "All good.\n"


# -- run_query -------------------------------------------------------------------------------------


async def test_query_select_one(settings: Settings) -> None:
    result = await RunQuery(settings).run({"query": "SELECT 1 AS one"})

    assert result == {"row_count": 1, "columns": ["one"], "rows": [[1]]}


async def test_query_runs_in_the_sandbox_not_the_service_database(settings: Settings) -> None:
    result = await RunQuery(settings).run({"query": "SELECT current_database()"})

    assert result["rows"] == [[SANDBOX_DATABASE]]
    assert SANDBOX_DATABASE not in settings.database_url


async def test_query_rows_are_counted_and_truncated(settings: Settings) -> None:
    plugin = RunQuery(settings.model_copy(update={"query_max_rows": 7}))

    result = await plugin.run({"query": "SELECT i, i * 2 AS double FROM generate_series(1, 500) AS i"})

    assert result["row_count"] == 500
    assert result["columns"] == ["i", "double"]
    assert result["rows"] == [[i, i * 2] for i in range(1, 8)]


async def test_query_values_become_json(settings: Settings) -> None:
    result = await RunQuery(settings).run(
        {
            "query": "SELECT 1.5::numeric AS n, 'NaN'::float8 AS f, ARRAY[1, 2] AS a, NULL AS z,"
            " true AS b, '\\x00ff'::bytea AS bin, DATE '2024-02-29' AS d, '{\"k\": 1}'::jsonb AS j"
        }
    )

    assert result["rows"] == [["1.5", "nan", [1, 2], None, True, "\\x00ff", "2024-02-29", '{"k": 1}']]


async def test_query_statement_without_rows(settings: Settings) -> None:
    result = await RunQuery(settings).run({"query": "SELECT WHERE false"})

    assert result == {"row_count": 0, "columns": [], "rows": []}


async def test_query_write_fails_permanently_as_read_only(settings: Settings, database_url: str) -> None:
    # Against the test's own database, where the write would otherwise succeed.
    plugin = RunQuery(settings.model_copy(update={"query_database_url": database_url}))

    with pytest.raises(PermanentFailure, match="read-only transaction"):
        await plugin.run({"query": "CREATE TABLE x(i int)"})
    with pytest.raises(PermanentFailure, match="read-write mode must be set before any query"):
        await plugin.run({"query": "SET TRANSACTION READ WRITE"})
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('x')").fetchone() == (None,)


async def test_query_sandbox_rejects_writes(settings: Settings) -> None:
    with pytest.raises(PermanentFailure, match="read-only transaction"):
        await RunQuery(settings).run({"query": "CREATE TABLE x(i int)"})


async def test_query_uses_query_database_url(settings: Settings, database_url: str) -> None:
    plugin = RunQuery(settings.model_copy(update={"query_database_url": database_url}))

    result = await plugin.run({"query": "SELECT current_database()"})

    assert result["rows"] == [[database_url.split("?", 1)[0].rsplit("/", 1)[1]]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM no_such_table", "does not exist"),
        ("SELECT 1; SELECT 2", "multiple commands"),
        ("SELECT 1/0", "division by zero"),
    ],
)
async def test_query_bad_sql_fails_permanently(settings: Settings, query: str, message: str) -> None:
    with pytest.raises(PermanentFailure, match=message):
        await RunQuery(settings).run({"query": query})


@pytest.mark.parametrize("parameters", [{}, {"query": ""}, {"query": "  \n "}])
async def test_query_missing_query_fails_permanently(settings: Settings, parameters: dict[str, str]) -> None:
    with pytest.raises(PermanentFailure, match="query is required"):
        await RunQuery(settings).run(parameters)


async def test_query_timeout_is_retryable(settings: Settings) -> None:
    plugin = RunQuery(settings.model_copy(update={"query_timeout": 0.2}))

    # Without the statement timeout this would run for an hour: the guard turns that into a failure.
    with pytest.raises(Exception, match=r"QUERY_TIMEOUT=0\.2s") as raised:
        await asyncio.wait_for(plugin.run({"query": "SELECT pg_sleep(3600)"}), 120)

    assert not isinstance(raised.value, PermanentFailure | TimeoutError)


def test_query_one_instance_serves_several_event_loops(settings: Settings) -> None:
    plugin = RunQuery(settings)

    for _ in range(2):
        result = asyncio.run(plugin.run({"query": "SELECT 1"}))
        assert result["rows"] == [[1]]


# -- run_query: the sandbox role ------------------------------------------------------------------


@pytest.fixture
def scratch_role(pg_server_url: str) -> Iterator[Callable[[LiteralString | None], str]]:
    """Makes roles of this test's own (`CREATE ROLE name <options>`, or just a name when None).

    They are dropped afterwards with whatever was granted to them; the shared sandbox role is not.
    """
    names: list[str] = []

    def make(options: LiteralString | None) -> str:
        name = f"ts_role_{uuid.uuid4().hex[:12]}"
        names.append(name)
        if options is not None:
            with psycopg.connect(pg_server_url, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name)))
        return name

    yield make
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for name in names:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(name)))


def _run_query_as(role: str, settings: Settings) -> RunQuery:
    """RunQuery whose sandbox role is `role` rather than the shared one."""

    class Plugin(RunQuery):
        sandbox_role = role

    return Plugin(settings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres:@/taskservice?host=/some/socket/dir",
            "postgresql://sandbox@/taskservice?host=/some/socket/dir",
        ),
        (
            "postgresql://user:p%40ss@db.example:5433/tasks?sslmode=require",
            "postgresql://sandbox@db.example:5433/tasks?sslmode=require",
        ),
        ("postgresql://127.0.0.1:5432/postgres", "postgresql://sandbox@127.0.0.1:5432/postgres"),
        ("postgresql://u@[::1]:5432/db", "postgresql://sandbox@[::1]:5432/db"),
        ("postgresql://u@h1:5432,h2:5433/db", "postgresql://sandbox@h1:5432,h2:5433/db"),
        (
            "postgresql:///db?user=u&password=secret&sslmode=disable",
            "postgresql://sandbox@/db?sslmode=disable",
        ),
    ],
)
def test_with_user_replaces_only_the_user_and_drops_the_password(url: str, expected: str) -> None:
    assert with_user(url, "sandbox") == expected


async def test_query_sandbox_runs_as_a_low_privilege_role(settings: Settings, pg_server_url: str) -> None:
    result = await RunQuery(settings).run({"query": "SELECT current_user, session_user"})

    assert result["rows"] == [[SANDBOX_ROLE, SANDBOX_ROLE]]
    with psycopg.connect(pg_server_url) as conn:
        attributes = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls,"
            " rolcanlogin FROM pg_roles WHERE rolname = %s",
            (SANDBOX_ROLE,),
        ).fetchone()
    assert attributes == (False, False, False, False, False, False, True)


async def test_query_sandbox_cannot_run_programs(settings: Settings) -> None:
    with pytest.raises(PermanentFailure, match=r"permission denied|must be superuser"):
        await RunQuery(settings).run({"query": "COPY (SELECT 1) TO PROGRAM 'true'"})


@pytest.mark.parametrize(
    "query",
    [
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT pg_read_binary_file('/etc/hostname')",
        "SELECT pg_stat_file('/etc/hostname')",
        "SELECT pg_ls_dir('.')",
        "COPY (SELECT 1) TO '/tmp/taskservice-sandbox-copy'",
    ],
)
async def test_query_sandbox_cannot_reach_server_files(settings: Settings, query: str) -> None:
    with pytest.raises(PermanentFailure, match=r"permission denied|must be superuser"):
        await RunQuery(settings).run({"query": query})


async def test_query_sandbox_still_reads_constants_and_catalogs(settings: Settings) -> None:
    plugin = RunQuery(settings)

    result = await plugin.run(
        {"query": "SELECT count(*) > 0 AS found FROM pg_class WHERE relname = 'pg_class'"}
    )
    assert result == {"row_count": 1, "columns": ["found"], "rows": [[True]]}
    result = await plugin.run({"query": "SELECT upper('abc') AS s, now() IS NOT NULL AS t"})
    assert result["rows"] == [["ABC", True]]


async def test_query_database_url_keeps_its_own_role(settings: Settings, database_url: str) -> None:
    plugin = RunQuery(settings.model_copy(update={"query_database_url": database_url}))

    result = await plugin.run({"query": "SELECT current_user"})

    with psycopg.connect(database_url) as conn:
        assert result["rows"] == [list(conn.execute("SELECT current_user").fetchone() or ())]
    assert result["rows"] != [[SANDBOX_ROLE]]


async def test_query_fails_permanently_when_the_sandbox_role_cannot_be_created(
    settings: Settings, pg_server_url: str, scratch_role: Callable[[LiteralString | None], str]
) -> None:
    ensure_database(pg_server_url, SANDBOX_DATABASE)  # so the failure is about the role, not the database
    service_role = scratch_role("LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB")
    settings = settings.model_copy(update={"database_url": with_user(settings.database_url, service_role)})
    plugin = _run_query_as(scratch_role(None), settings)  # a role that does not exist yet

    with pytest.raises(
        PermanentFailure,
        match=r"needs QUERY_DATABASE_URL pointing at a low-privilege role.*permission denied to create role",
    ):
        await plugin.run({"query": "SELECT 1"})


async def test_query_fails_permanently_when_the_sandbox_role_cannot_log_in(
    settings: Settings, scratch_role: Callable[[LiteralString | None], str]
) -> None:
    plugin = _run_query_as(scratch_role("NOLOGIN"), settings)

    with pytest.raises(
        PermanentFailure,
        match=r"needs QUERY_DATABASE_URL pointing at a low-privilege role.*not permitted to log in",
    ):
        await plugin.run({"query": "SELECT 1"})


@pytest.mark.parametrize(
    ("options", "grant"),
    [
        ("LOGIN SUPERUSER", None),
        ("LOGIN BYPASSRLS", None),
        ("LOGIN", "pg_execute_server_program"),
        ("LOGIN", "pg_read_server_files"),
    ],
)
async def test_query_refuses_a_sandbox_role_with_privileges(
    settings: Settings,
    pg_server_url: str,
    scratch_role: Callable[[LiteralString | None], str],
    options: LiteralString,
    grant: str | None,
) -> None:
    role = scratch_role(options)
    if grant:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(grant), sql.Identifier(role)))

    with pytest.raises(PermanentFailure, match="run_query will not use it"):
        await _run_query_as(role, settings).run({"query": "SELECT 1"})


# -- sleep -----------------------------------------------------------------------------------------


async def test_sleep_sleeps(settings: Settings) -> None:
    started = time.monotonic()
    result = await Sleep(settings).run({"seconds": "0.2"})

    assert result == {"slept": 0.2}
    assert time.monotonic() - started >= 0.15


async def test_sleep_defaults_to_no_sleep_and_no_failure(settings: Settings) -> None:
    assert await Sleep(settings).run({}) == {"slept": 0.0}


async def test_sleep_fail_rate_one_always_fails(settings: Settings) -> None:
    for _ in range(20):
        with pytest.raises(RuntimeError, match=r"simulated failure \(fail_rate=1\)"):
            await Sleep(settings).run({"seconds": "0", "fail_rate": "1"})


async def test_sleep_fail_rate_zero_never_fails(settings: Settings) -> None:
    for _ in range(200):
        assert await Sleep(settings).run({"fail_rate": "0"}) == {"slept": 0.0}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"seconds": "soon"}, "seconds must be a number"),
        ({"seconds": "-1"}, "seconds must be >= 0"),
        ({"seconds": "nan"}, "seconds must be a finite number"),
        ({"seconds": "inf"}, "seconds must be a finite number"),
        ({"fail_rate": "often"}, "fail_rate must be a number"),
        ({"fail_rate": "1.5"}, "fail_rate must be between 0 and 1"),
        ({"fail_rate": "-0.1"}, "fail_rate must be between 0 and 1"),
    ],
)
async def test_sleep_bad_values_fail_permanently(
    settings: Settings, parameters: dict[str, str], message: str
) -> None:
    with pytest.raises(PermanentFailure, match=message):
        await Sleep(settings).run(parameters)


# -- the registry ----------------------------------------------------------------------------------


def test_registry_finds_the_built_ins_by_entry_point() -> None:
    registry = Registry()

    assert {"send_email", "run_query", "sleep"} <= set(registry.names())
    assert registry.names() == sorted(registry.names())
    assert isinstance(registry.get("send_email"), SendEmail)
    assert isinstance(registry.get("run_query"), RunQuery)
    assert isinstance(registry.get("sleep"), Sleep)
    assert "sleep" in registry
    assert registry.get("sleep") is registry.get("sleep")  # loaded once


def test_registry_knows_which_built_ins_are_async() -> None:
    registry = Registry()

    assert not is_async(registry.get("send_email"))
    assert is_async(registry.get("run_query"))
    assert is_async(registry.get("sleep"))


def test_registry_unknown_type() -> None:
    registry = Registry()

    assert "nope" not in registry
    with pytest.raises(UnknownPluginType, match=r"^unknown plugin type: nope$"):
        registry.get("nope")


async def test_registry_register_functions_and_classes() -> None:
    registry = Registry(load_entry_points=False)

    def echo(parameters: dict[str, str]) -> dict[str, str]:
        return parameters

    async def shout(parameters: dict[str, str]) -> str:
        return parameters["word"].upper()

    class Count:
        def run(self, parameters: dict[str, str]) -> int:
            return len(parameters)

    registry.register("echo", echo)
    registry.register("shout", shout)
    registry.register("count", Count)

    assert registry.names() == ["count", "echo", "shout"]
    assert registry.get("echo").run({"a": "b"}) == {"a": "b"}
    assert not is_async(registry.get("echo"))
    assert await registry.get("shout").run({"word": "hi"}) == "HI"
    assert is_async(registry.get("shout"))
    assert isinstance(registry.get("count"), Count)
    assert registry.get("count").run({"a": "1", "b": "2"}) == 2
    with pytest.raises(UnknownPluginType):
        registry.get("sleep")  # no entry points loaded


def test_registry_rejects_what_is_not_a_plugin() -> None:
    with pytest.raises(TypeError, match="is not a plugin"):
        Registry(load_entry_points=False).register("bad", 42)
