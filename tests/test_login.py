"""Dashboard login through a real OpenID Connect provider (node-oidc-provider on loopback), in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import ServerProcess
from taskservice.api.probe import free_port
from taskservice.config import Settings

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

OIDC = Path(__file__).resolve().parent / "oidc"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
CLIENT_ID, CLIENT_SECRET = "taskservice-dashboard", "test-client-secret"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def provider_and_server(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, ServerProcess]]:
    """The provider first (it must know the server's callback), then the server pointed at it."""
    if not (OIDC / "node_modules" / "oidc-provider").exists():
        pytest.fail("the test OIDC provider is not installed: run `make install-dev` (npm ci in tests/oidc)")
    node = shutil.which("node")
    assert node, "node is needed for the test OIDC provider"
    provider_port, server_port = free_port(), free_port()
    redirect = f"http://127.0.0.1:{server_port}/auth/callback"
    provider = subprocess.Popen(
        [node, str(OIDC / "provider.mjs"), str(provider_port), CLIENT_ID, CLIENT_SECRET, redirect],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert provider.stdout is not None
    said = []
    for line in provider.stdout:  # until the provider says it listens (or dies); warnings come first
        said.append(line)
        if line.startswith("ready") or len(said) > 50:
            break
    assert said, "the provider said nothing"
    assert said[-1].startswith("ready"), "".join(said)
    issuer = f"http://127.0.0.1:{provider_port}"
    server = ServerProcess(
        settings, tmp_path / "server.log", port=server_port, WORKER_COUNT="0", AUTH_REQUIRED="true",
        OIDC_ISSUER=issuer, OIDC_CLIENT_ID=CLIENT_ID, OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_ROLE_CLAIM="taskservice_role", OIDC_DEFAULT_ROLE="viewer",
    )  # fmt: skip
    try:
        server.wait_ready()
        yield issuer, server
    finally:
        server.stop()
        provider.terminate()
        provider.wait(10)


def log_in(page: Page, issuer: str, login: str) -> None:
    """Through the provider's own login and consent pages, as a person would."""
    page.goto("/")
    expect(page).to_have_url(re.compile(f"^{re.escape(issuer)}/"))
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]").click()  # consent: let the dashboard have the identity
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def test_dashboard_login_with_oidc_then_logout(
    browser: Browser, provider_and_server: tuple[str, ServerProcess], settings: Settings
) -> None:
    issuer, server = provider_and_server
    context = browser.new_context(base_url=server.url, locale="en-US", timezone_id="UTC")
    console: list[str] = []
    page = context.new_page()
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console.append(str(error)))

    log_in(page, issuer, "admin-alice")
    assert page.url == f"{server.url}/"
    expect(page.locator("#account-name")).to_have_text("admin-alice@example.com (admin)")
    [cookie] = [c for c in context.cookies() if c["name"] == "taskservice_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # served over plain HTTP here; Secure under TLS
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT subject, role FROM dashboard_sessions").fetchall() == [
            ("admin-alice@example.com", "admin")
        ]
    # The page's own calls carry the cookie: the task list loaded and the event stream is live.
    expect(page.locator("#tasks-total")).not_to_be_empty()

    page.locator("#logout").click()
    expect(page.locator("h1")).to_have_text("You are logged out")
    old = {"Cookie": f"taskservice_session={cookie['value']}", "Connect-Protocol-Version": "1"}
    after = httpx.post(f"{server.url}/cloud.v1.AuthService/WhoAmI", json={}, headers=old)
    assert after.status_code == 401, after.text
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM dashboard_sessions").fetchone() == (0,)
    assert not [c for c in context.cookies() if c["name"] == "taskservice_session"]
    page.locator("a", has_text="Log in again").click()  # the provider remembers the browser: no form
    expect(page.locator("#account-name")).to_have_text("admin-alice@example.com (admin)")
    assert not [m for m in console if "Content Security Policy" in m], console
    context.close()


def test_without_a_role_claim_the_default_role_applies(
    browser: Browser, provider_and_server: tuple[str, ServerProcess]
) -> None:
    issuer, server = provider_and_server
    context = browser.new_context(base_url=server.url, locale="en-US", timezone_id="UTC")
    page = context.new_page()
    log_in(page, issuer, "nobody-bob")
    expect(page.locator("#account-name")).to_have_text("nobody-bob@example.com (viewer)")
    # A viewer's write from the page is refused by the server, whatever the page does.
    code = page.evaluate(
        """async () => (await (await fetch("/cloud.v1.TaskManagementService/CreateTask", {
            method: "POST", headers: {"Content-Type": "application/json", "Connect-Protocol-Version": "1"},
            body: JSON.stringify({name: "x", type: "sleep", payload: {parameters: {}}}),
        })).json()).code"""
    )
    assert code == "permission_denied"
    context.close()


def test_a_forged_callback_is_refused(
    browser: Browser, provider_and_server: tuple[str, ServerProcess]
) -> None:
    _issuer, server = provider_and_server
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    response = page.goto("/auth/callback?code=stolen&state=guessed")
    assert response is not None
    assert response.status == 403
    expect(page.locator("body")).to_contain_text("Login failed")
    assert not [c for c in context.cookies() if c["name"] == "taskservice_session"]
    context.close()


# -- without a provider: log in with an API token ---------------------------------------------------


def test_without_oidc_people_log_in_with_a_token(
    browser: Browser, token_server: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, secrets = token_server
    context = browser.new_context(base_url=server.url, locale="en-US", timezone_id="UTC")
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/")
    expect(page).to_have_url(f"{server.url}/auth/login?next=/")
    for token, said in (
        ("not a token", "That is not a taskservice token"),
        ("tsk_" + "A" * 43, "unknown, expired or revoked"),
        (secrets["agent"], "is for programs"),
    ):
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text(said)
    assert not [c for c in context.cookies() if c["name"] == "taskservice_session"]
    page.get_by_label("API token").fill(secrets["viewer"])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#account-name")).to_have_text("token t-viewer (viewer)")
    [cookie] = [c for c in context.cookies() if c["name"] == "taskservice_session"]
    assert cookie["value"] != secrets["viewer"]  # a session of its own, not the token in the browser
    page.locator("#logout").click()
    expect(page).to_have_url(re.compile(r"/auth/login$"))
    old = {"Cookie": f"taskservice_session={cookie['value']}", "Connect-Protocol-Version": "1"}
    assert httpx.post(f"{server.url}/cloud.v1.AuthService/WhoAmI", json={}, headers=old).status_code == 401
    assert not [m for m in errors if "Content Security Policy" in m], errors
    context.close()


def test_the_token_form_refuses_another_sites_post(
    token_server: tuple[ServerProcess, dict[str, str]],
) -> None:
    server, secrets = token_server
    forged = httpx.post(
        f"{server.url}/auth/login",
        content=f"token={secrets['viewer']}&next=/",
        headers={"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert forged.status_code == 403
    assert "taskservice_session" not in forged.cookies


def test_logout_refuses_another_sites_post(token_server: tuple[ServerProcess, dict[str, str]]) -> None:
    server, secrets = token_server
    login = httpx.post(
        f"{server.url}/auth/login",
        content=f"token={secrets['viewer']}&next=/",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status_code == 303, login.text
    session = login.cookies["taskservice_session"]
    cookie = {"Cookie": f"taskservice_session={session}"}
    who = {**cookie, "Connect-Protocol-Version": "1"}

    forged = httpx.post(f"{server.url}/auth/logout", headers={**cookie, "Origin": "http://evil.example"})
    assert forged.status_code == 403
    assert "taskservice_session" not in forged.headers.get("set-cookie", "")
    assert httpx.post(f"{server.url}/cloud.v1.AuthService/WhoAmI", json={}, headers=who).status_code == 200

    own = httpx.post(f"{server.url}/auth/logout", headers={**cookie, "Origin": server.url})
    assert own.status_code == 303
    assert httpx.post(f"{server.url}/cloud.v1.AuthService/WhoAmI", json={}, headers=who).status_code == 401
