"""Authentication and roles against real server processes: every RPC, every role, tokens, revocation."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from conftest import Served, ServerProcess, serving, subprocess_env
from taskservice.auth import roles
from taskservice.auth.exposure import InsecureRefused, auth_required
from taskservice.auth.secrets import SESSION_PREFIX, new_secret, secret_hash
from taskservice.auth.tokens import issue
from taskservice.cli import cli
from taskservice.config import load_settings
from taskservice.db.connect import create_pool
from taskservice.gen.cloud.v1 import auth_pb2, task_pb2
from taskservice.gen.grpc.health.v1 import health_pb2
from taskservice.gen.grpc.reflection.v1 import reflection_pb2 as reflection_v1
from taskservice.gen.grpc.reflection.v1alpha import reflection_pb2 as reflection_v1alpha
from taskservice.store import Credentials

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

ROLES = ("viewer", "operator", "admin", "agent")
EVERYONE = frozenset(ROLES)
READERS = frozenset({"viewer", "operator", "admin"})
WRITERS = frozenset({"operator", "admin"})
ADMINS = frozenset({"admin"})
AGENTS = frozenset({"agent", "admin"})
PUBLIC = None

# Who may call what, written out by hand (not read from auth/roles.py): the issue's table.
EXPECTED: dict[str, frozenset[str] | None] = {
    "cloud.v1.TaskManagementService/CreateTask": WRITERS,
    "cloud.v1.TaskManagementService/GetTask": READERS,
    "cloud.v1.TaskManagementService/ListTasks": READERS,
    "cloud.v1.TaskManagementService/GetTaskHistory": READERS,
    # An agent only for a task running its own attempt (tests/test_ownership.py).
    "cloud.v1.TaskManagementService/UpdateTaskStatus": AGENTS,
    "cloud.v1.TaskManagementService/GetStatus": READERS,
    "cloud.v1.TaskManagementService/CreateTasks": WRITERS,
    "cloud.v1.TaskManagementService/CancelTask": WRITERS,
    "cloud.v1.TaskManagementService/RetryTask": WRITERS,
    "cloud.v1.TaskManagementService/CancelTasks": WRITERS,
    "cloud.v1.TaskManagementService/RetryTasks": WRITERS,
    # Deleting erases the record of what happened: admins only (auth/roles.py, Right.DELETE).
    "cloud.v1.TaskManagementService/DeleteTasks": ADMINS,
    "cloud.v1.TaskManagementService/ListTaskExecutions": READERS,
    "cloud.v1.TaskManagementService/ListWorkers": READERS,
    "cloud.v1.TaskManagementService/ListTaskTypes": EVERYONE,
    "cloud.v1.TaskManagementService/WatchEvents": READERS,
    "cloud.v1.TaskManagementService/PauseQueue": WRITERS,
    "cloud.v1.TaskManagementService/ResumeQueue": WRITERS,
    "cloud.v1.TaskManagementService/ListQueues": READERS,
    "cloud.v1.TaskManagementService/SetLimit": WRITERS,
    "cloud.v1.TaskManagementService/ListLimits": READERS,
    "cloud.v1.TaskManagementService/ResetLimit": WRITERS,
    "cloud.v1.TaskManagementService/CreateSchedule": WRITERS,
    "cloud.v1.TaskManagementService/GetSchedule": READERS,
    "cloud.v1.TaskManagementService/ListSchedules": READERS,
    "cloud.v1.TaskManagementService/UpdateSchedule": WRITERS,
    "cloud.v1.TaskManagementService/DeleteSchedule": WRITERS,
    "cloud.v1.TaskManagementService/TriggerSchedule": WRITERS,
    "cloud.v1.TaskManagementService/CreateWorkflow": WRITERS,
    "cloud.v1.TaskManagementService/GetWorkflow": READERS,
    "cloud.v1.TaskManagementService/ListWorkflows": READERS,
    "cloud.v1.TaskManagementService/CancelWorkflow": WRITERS,
    "cloud.v1.TaskManagementService/RetryWorkflow": WRITERS,
    "cloud.v1.TaskManagementService/GetTypeStats": READERS,
    "cloud.v1.TaskManagementService/GetWorker": READERS,
    "cloud.v1.TaskManagementService/Heartbeat": AGENTS,
    "cloud.v1.TaskManagementService/PullEvents": AGENTS,
    "cloud.v1.TaskManagementService/ReportOutcomes": AGENTS,
    "cloud.v1.AuthService/WhoAmI": EVERYONE,
    "cloud.v1.AuthService/CreateToken": ADMINS,
    "cloud.v1.AuthService/ListTokens": ADMINS,
    "cloud.v1.AuthService/RevokeToken": ADMINS,
    "grpc.health.v1.Health/Check": PUBLIC,
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo": EVERYONE,
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": EVERYONE,
}
SERVICES = (
    task_pb2.DESCRIPTOR.services_by_name["TaskManagementService"],
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_v1.DESCRIPTOR.services_by_name["ServerReflection"],
    reflection_v1alpha.DESCRIPTOR.services_by_name["ServerReflection"],
)
SERVED_METHODS = [(service, method) for service in SERVICES for method in service.methods]


def path_of(service: Any, method: Any) -> str:
    return f"{service.full_name}/{method.name}"


# -- the table -------------------------------------------------------------------------------


def test_every_served_rpc_has_a_row_in_the_table_and_in_this_test() -> None:
    served = {path_of(s, m) for s, m in SERVED_METHODS}
    assert served == set(EXPECTED), "a new RPC needs a row in auth/roles.py and in EXPECTED here"
    assert {p.lstrip("/") for p in roles.RPC_RIGHTS} == served


@pytest.mark.parametrize(("service", "method"), SERVED_METHODS, ids=lambda x: getattr(x, "name", ""))
def test_the_table_gives_each_rpc_to_exactly_the_expected_roles(service: Any, method: Any) -> None:
    path = path_of(service, method)
    rule = roles.rule(f"/{path}")
    if EXPECTED[path] is None:
        assert rule.public
        return
    assert not rule.public
    assert rule.right is not None
    assert frozenset(r for r in ROLES if roles.may(r, rule.right)) == EXPECTED[path]


def test_an_rpc_missing_from_the_table_is_refused_to_everyone() -> None:
    rule = roles.rule("/cloud.v1.TaskManagementService/SomethingNew")
    assert not rule.known
    assert not rule.public


# -- servers and tokens ----------------------------------------------------------------------


@dataclass
class AuthServer:
    served: Served
    tokens: dict[str, str]  # role -> secret

    @property
    def url(self) -> str:
        return self.served.url


async def _issue_tokens(database_url: str) -> dict[str, str]:
    pool = await create_pool(database_url, max_size=2)
    try:
        credentials = Credentials(pool)
        return {role: (await issue(credentials, f"test-{role}", role, 0, "tests"))[1] for role in ROLES}
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def auth_server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    import asyncio

    folder = tmp_path_factory.mktemp("auth")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="0", AUTH_REQUIRED="true") as served:
        secrets = asyncio.run(_issue_tokens(served.settings.database_url))
        yield AuthServer(served, secrets)


@pytest.fixture
async def http(auth_server: AuthServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def call(
    http: httpx.AsyncClient, service: Any, method: Any, headers: dict[str, str]
) -> tuple[int, str, str]:
    """(HTTP status, Connect code or "ok", message) of calling `method` with an empty request."""
    url = f"/{path_of(service, method)}"
    if method.server_streaming:
        request = b"{}"
        if method.name == "PullEvents":  # as our agent: an original-style stream is sent only work
            probe = {"agentId": f"probe-{uuid.uuid4().hex[:12]}", "taskTypes": ["probe"]}
            request = json.dumps(probe).encode()
        body = struct.pack(">BI", 0, len(request)) + request
        stream_headers = {"Content-Type": "application/connect+json", **headers}
        async with http.stream("POST", url, content=body, headers=stream_headers) as response:
            data = b""
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) >= 5 and len(data) >= 5 + struct.unpack(">I", data[1:5])[0]:
                    break  # the first envelope is enough: a message, or the end with an error
        flags, length = struct.unpack(">BI", data[:5])
        message = json.loads(data[5 : 5 + length])
        if flags & 0b10 and "error" in message:
            return response.status_code, message["error"]["code"], message["error"].get("message", "")
        return response.status_code, "ok", ""
    response = await http.post(url, json={}, headers=headers)
    if response.status_code == 200:
        return 200, "ok", ""
    error = response.json()
    return response.status_code, error["code"], error.get("message", "")


# -- every RPC, RPC by RPC -------------------------------------------------------------------


@pytest.mark.parametrize(("service", "method"), SERVED_METHODS, ids=lambda x: getattr(x, "name", ""))
async def test_without_a_token_every_rpc_is_unauthenticated(
    http: httpx.AsyncClient, service: Any, method: Any
) -> None:
    status, code, message = await call(http, service, method, {})
    if EXPECTED[path_of(service, method)] is None:
        assert code not in ("unauthenticated", "permission_denied")
        return
    assert code == "unauthenticated", (status, message)
    assert "token" in message
    if not method.server_streaming:
        assert status == 401


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("service", "method"), SERVED_METHODS, ids=lambda x: getattr(x, "name", ""))
async def test_each_role_may_call_exactly_its_rpcs(
    http: httpx.AsyncClient, auth_server: AuthServer, service: Any, method: Any, role: str
) -> None:
    status, code, message = await call(http, service, method, bearer(auth_server.tokens[role]))
    allowed = EXPECTED[path_of(service, method)]
    if allowed is None or role in allowed:
        # Let through: the call may still fail on its empty request (invalid_argument, not_found).
        assert code not in ("unauthenticated", "permission_denied"), (status, code, message)
    else:
        assert code == "permission_denied", (status, code, message)
        right = roles.RPC_RIGHTS[f"/{path_of(service, method)}"]
        assert right is not None
        assert f"needs the right {right.value!r}" in message
        assert f"role {role}" in message
        if not method.server_streaming:
            assert status == 403


WRITES = [(s, m) for s, m in SERVED_METHODS if EXPECTED[path_of(s, m)] in (WRITERS, ADMINS)]


@pytest.mark.parametrize(("service", "method"), WRITES, ids=lambda x: getattr(x, "name", ""))
async def test_with_a_viewer_token_every_write_is_permission_denied(
    http: httpx.AsyncClient, auth_server: AuthServer, service: Any, method: Any
) -> None:
    _status, code, _message = await call(http, service, method, bearer(auth_server.tokens["viewer"]))
    assert code == "permission_denied"


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token", f"Bearer {new_secret()}", "tsk_abc"],
    ids=["basic", "empty", "malformed", "unknown", "no-scheme"],
)
async def test_bad_credentials_are_unauthenticated(http: httpx.AsyncClient, authorization: str) -> None:
    response = await http.post(
        "/cloud.v1.TaskManagementService/GetStatus", json={}, headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_server_that_checks_tokens_does_not_say_it_ignored_one(
    http: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    response = await http.post(
        "/cloud.v1.TaskManagementService/GetStatus", json={}, headers=bearer(auth_server.tokens["viewer"])
    )
    assert response.status_code == 200
    assert "task-token-ignored" not in response.headers


async def test_whoami_names_the_caller(http: httpx.AsyncClient, auth_server: AuthServer) -> None:
    response = await http.post(
        "/cloud.v1.AuthService/WhoAmI", json={}, headers=bearer(auth_server.tokens["operator"])
    )
    assert response.status_code == 200
    me = response.json()
    assert (me["name"], me["role"], me["kind"]) == ("test-operator", "operator", "token")
    assert "write" in me["rights"]
    assert "set_status" not in me["rights"]


async def test_the_other_routes(http: httpx.AsyncClient, auth_server: AuthServer) -> None:
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/readyz")).status_code == 200
    assert (await http.get("/static/app.js")).status_code == 200  # code, no data
    assert (await http.get("/metrics")).status_code == 401
    assert (await http.get("/metrics", headers=bearer(auth_server.tokens["agent"]))).status_code == 403
    assert (await http.get("/metrics", headers=bearer(auth_server.tokens["viewer"]))).status_code == 200
    page = await http.get("/")  # no OIDC configured: to the page that takes a token
    assert (page.status_code, page.headers["location"]) == (303, "/auth/login?next=/")
    assert (await http.get("/", headers=bearer(auth_server.tokens["viewer"]))).status_code == 200
    # A path the table does not know needs credentials before it may even be told it is not there.
    assert (await http.get("/no/such/page")).status_code == 401
    assert (await http.get("/no/such/page", headers=bearer(auth_server.tokens["agent"]))).status_code == 404


# -- tokens: create, use, revoke, expire -----------------------------------------------------


async def test_token_lifecycle_through_the_api(http: httpx.AsyncClient, auth_server: AuthServer) -> None:
    admin = bearer(auth_server.tokens["admin"])
    created = await http.post(
        "/cloud.v1.AuthService/CreateToken", json={"name": "ci-bot", "role": "operator"}, headers=admin
    )
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    assert secret.startswith("tsk_")
    assert created.json()["token"]["createdBy"] == "test-admin"
    duplicate = await http.post(
        "/cloud.v1.AuthService/CreateToken", json={"name": "ci-bot", "role": "viewer"}, headers=admin
    )
    assert duplicate.json()["code"] == "already_exists"
    assert (
        await http.post("/cloud.v1.TaskManagementService/GetStatus", json={}, headers=bearer(secret))
    ).status_code == 200

    listed = (await http.post("/cloud.v1.AuthService/ListTokens", json={}, headers=admin)).json()["tokens"]
    mine = next(t for t in listed if t["name"] == "ci-bot")
    assert mine["state"] == "active"
    assert mine["lastUsedAt"]  # it was just used
    assert secret not in json.dumps(listed)

    revoked = await http.post("/cloud.v1.AuthService/RevokeToken", json={"name": "ci-bot"}, headers=admin)
    assert revoked.json()["state"] == "revoked"
    after = await http.post("/cloud.v1.TaskManagementService/GetStatus", json={}, headers=bearer(secret))
    assert after.status_code == 401
    again = await http.post("/cloud.v1.AuthService/RevokeToken", json={"name": "ci-bot"}, headers=admin)
    assert again.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "role": "viewer"}, "name"),
        ({"name": "a b", "role": "viewer"}, "name"),
        ({"name": "a\n", "role": "viewer"}, "name"),
        ({"name": "a\x00", "role": "viewer"}, "name"),
        ({"name": "x", "role": "root"}, "role"),
        ({"name": "x", "role": "viewer", "expiresInSeconds": -1}, "expires_in_seconds"),
    ],
)
async def test_create_token_validates(
    http: httpx.AsyncClient, auth_server: AuthServer, body: dict[str, Any], field: str
) -> None:
    response = await http.post(
        "/cloud.v1.AuthService/CreateToken", json=body, headers=bearer(auth_server.tokens["admin"])
    )
    assert response.json()["code"] == "invalid_argument"
    assert response.json()["message"].startswith(f"{field}:")


@pytest.mark.parametrize("content_type", ["application/json", "application/proto"])
async def test_revoke_token_refuses_nul_in_the_name(
    http: httpx.AsyncClient, auth_server: AuthServer, content_type: str
) -> None:
    from taskservice.gen.cloud.v1 import auth_pb2

    body = (
        json.dumps({"name": "ci\x00bot"}).encode()
        if content_type == "application/json"
        else auth_pb2.RevokeTokenRequest(name="ci\x00bot").SerializeToString()
    )
    headers = {**bearer(auth_server.tokens["admin"]), "Content-Type": content_type}
    response = await http.post("/cloud.v1.AuthService/RevokeToken", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_argument"
    assert response.json()["message"].startswith("name: must not contain NUL"), response.json()


async def test_an_expired_token_is_refused(http: httpx.AsyncClient, auth_server: AuthServer) -> None:
    url = auth_server.served.settings.database_url
    pool = await create_pool(url, max_size=1)
    try:
        record, secret = await issue(Credentials(pool), "short-lived", "viewer", 3600, "tests")
    finally:
        await pool.close()
    ok = await http.post("/cloud.v1.TaskManagementService/GetStatus", json={}, headers=bearer(secret))
    assert ok.status_code == 200
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s", (record.id,)
        )
    refused = await http.post("/cloud.v1.TaskManagementService/GetStatus", json={}, headers=bearer(secret))
    assert refused.status_code == 401
    assert "expired" in refused.json()["message"]


def test_tokens_are_stored_hashed(auth_server: AuthServer) -> None:
    with psycopg.connect(auth_server.served.settings.database_url) as conn:
        dump = json.dumps(
            [list(map(str, row)) for row in conn.execute("SELECT * FROM api_tokens").fetchall()]
        )
        hashes = {bytes(h) for (h,) in conn.execute("SELECT secret_hash FROM api_tokens").fetchall()}
    for secret in auth_server.tokens.values():
        assert secret not in dump
        assert secret_hash(secret) in hashes


def test_revocation_holds_at_once_on_every_replica(auth_server: AuthServer, tmp_path: Path) -> None:
    """A second server on the same database: a token revoked through one is refused by the other."""
    replica = ServerProcess(
        auth_server.served.settings, tmp_path / "replica.log", WORKER_COUNT="0", AUTH_REQUIRED="true"
    )
    try:
        replica.wait_ready()
        admin = bearer(auth_server.tokens["admin"])
        with httpx.Client(timeout=30) as client:
            secret = client.post(
                f"{auth_server.url}/cloud.v1.AuthService/CreateToken",
                json={"name": "replicated", "role": "viewer"}, headers=admin,
            ).json()["secret"]  # fmt: skip
            status = f"{replica.url}/cloud.v1.TaskManagementService/GetStatus"
            assert client.post(status, json={}, headers=bearer(secret)).status_code == 200
            client.post(
                f"{auth_server.url}/cloud.v1.AuthService/RevokeToken",
                json={"name": "replicated"},
                headers=admin,
            ).raise_for_status()
            assert client.post(status, json={}, headers=bearer(secret)).status_code == 401
    finally:
        replica.stop()


# -- dashboard sessions and CSRF -------------------------------------------------------------


async def _session(database_url: str, role: str) -> str:
    secret = new_secret(SESSION_PREFIX)
    pool = await create_pool(database_url, max_size=1)
    try:
        await Credentials(pool).create_session(secret_hash(secret), "someone@example.com", role, 3600)
    finally:
        await pool.close()
    return secret


async def test_a_session_cookie_works_only_from_the_same_origin(
    http: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    secret = await _session(auth_server.served.settings.database_url, "operator")
    cookie = {"Cookie": f"taskservice_session={secret}"}
    url = "/cloud.v1.AuthService/WhoAmI"
    same = {
        **cookie,
        "Connect-Protocol-Version": "1",
        "Origin": auth_server.url,
        "Sec-Fetch-Site": "same-origin",
    }
    me = await http.post(url, json={}, headers=same)
    assert me.status_code == 200, me.text
    assert (me.json()["name"], me.json()["kind"]) == ("someone@example.com", "session")
    # A form on another site can neither add the header nor fake Origin or Sec-Fetch-Site.
    for headers in (
        cookie,
        {**same, "Origin": "https://evil.example"},
        {**same, "Sec-Fetch-Site": "cross-site"},
    ):
        refused = await http.post(url, json={}, headers=headers)
        assert refused.json()["code"] == "permission_denied", headers
    assert (await http.get("/", headers=cookie)).status_code == 200  # the page itself: a plain navigation


# -- the CLI ---------------------------------------------------------------------------------


def task_cli(settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskservice.cli", *args],
        env=settings_env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_tokens_from_the_database_then_through_the_api(auth_server: AuthServer) -> None:
    env = subprocess_env(auth_server.served.settings)
    env.pop("TASK_SERVICE_TOKEN", None)
    made = task_cli(env, "token", "create", "--name", "first-admin", "--role", "admin", "--expires", "30d")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("tsk_")
    assert "only time it is shown" in made.stderr

    runner = CliRunner()
    base = ["--address", auth_server.url]
    listed = runner.invoke(
        cli, [*base, "--token", secret, "token", "list", "-o", "json"], catch_exceptions=False
    )
    assert listed.exit_code == 0, listed.output
    entry = next(t for t in json.loads(listed.stdout)["tokens"] if t["name"] == "first-admin")
    assert (entry["role"], entry["state"], entry["createdBy"]) == ("admin", "active", "task-cli (database)")
    assert entry["expiresAt"]

    created = runner.invoke(
        cli, [*base, "--token", secret, "token", "create", "--name", "cli-viewer", "--role", "viewer"]
    )
    assert created.exit_code == 0, created.output
    viewer = created.stdout.strip()
    status = runner.invoke(cli, [*base, "task", "status"], env={"TASK_SERVICE_TOKEN": viewer})
    assert status.exit_code == 0, status.output
    denied = runner.invoke(cli, [*base, "--token", viewer, "task", "create", "x", "-t", "sleep"])
    assert denied.exit_code == 1
    assert "permission_denied" in denied.stderr
    assert "'write'" in denied.stderr

    revoked = runner.invoke(cli, [*base, "--token", secret, "token", "revoke", "cli-viewer"])
    assert revoked.exit_code == 0, revoked.output
    gone = runner.invoke(cli, [*base, "--token", viewer, "task", "status"])
    assert gone.exit_code == 1
    assert "unauthenticated" in gone.stderr
    anonymous = runner.invoke(cli, [*base, "task", "status"])
    assert "TASK_SERVICE_TOKEN" in anonymous.stderr


def test_cli_without_a_database_or_token_says_what_to_do(tmp_path: Path) -> None:
    env = {
        k: v for k, v in subprocess_env(load_settings()).items() if not k.startswith(("DATABASE_URL", "DB_"))
    }
    env["EMBEDDED_DATA_DIR"] = str(tmp_path / "none")
    result = task_cli(env, "token", "list")
    assert result.returncode == 1
    assert "--token" in result.stderr
    assert "DATABASE_URL" in result.stderr
    assert not (tmp_path / "none").exists()  # no embedded PostgreSQL made up on the spot


# -- secure defaults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "env", "expected"),
    [
        ("127.0.0.1", {}, False),
        ("::1", {}, False),
        ("localhost", {}, False),
        ("0.0.0.0", {}, True),
        ("10.1.2.3", {}, True),
        ("127.0.0.1", {"auth_required": True}, True),
        ("0.0.0.0", {"auth_required": False, "allow_insecure": True}, False),
    ],
)
def test_auth_is_required_beyond_loopback(host: str, env: dict[str, Any], expected: bool) -> None:
    assert auth_required(load_settings(**env), host) is expected


def test_no_auth_beyond_loopback_is_refused_without_allow_insecure() -> None:
    with pytest.raises(InsecureRefused, match="ALLOW_INSECURE"):
        auth_required(load_settings(auth_required=False), "0.0.0.0")


def test_the_server_refuses_to_start_open_beyond_loopback(auth_server: AuthServer) -> None:
    env = subprocess_env(auth_server.served.settings, AUTH_REQUIRED="false")
    result = task_cli(env, "server", "--host", "0.0.0.0", "--port", "1")  # refused before it binds
    assert result.returncode == 1
    assert "ALLOW_INSECURE" in result.stderr
