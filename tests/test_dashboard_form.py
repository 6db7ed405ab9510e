"""The dashboard's "New task" form is built from the task types' declarations (real Chromium, real
server): a row per declared parameter with its rules and description, lists for booleans and enums,
an e-mail input for an address, and the server's refusal of a missing required parameter or an
address that is none shown beside it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from conftest import ServerProcess
from taskservice.config import Settings
from taskservice.db.connect import create_pool
from taskservice.plugins.container_types import container_type
from taskservice.plugins.declare import ParameterSpec, TaskTypeSpec
from taskservice.store import Store
from test_dashboard import Dashboard, browser, rpc, screenshot_dir

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

__all__ = ["browser", "screenshot_dir"]  # fixtures, used by name

EXPORT = TaskTypeSpec(
    description="Export a table (run by a worker elsewhere).",
    parameters=(
        ParameterSpec(name="table", required=True, description="Which table."),
        ParameterSpec(name="format", type="enum", choices=("csv", "parquet"), default="csv"),
        ParameterSpec(name="gzip", type="boolean", description="Compress it."),
    ),
)


# A container task type (issue 25), as the Kubernetes agent publishes it.
TRANSCODE = container_type(
    "transcode",
    {"image": "ghcr.io/acme/transcode:2", "args": ["${video}"], "description": "Transcode a video.",
     "parameters": {"video": {"required": True}}},
)  # fmt: skip


async def _publish(database_url: str) -> None:
    """A live worker elsewhere runs `export` and published its declaration; a Kubernetes agent
    `transcode`."""
    pool = await create_pool(database_url, max_size=1)
    try:
        store = Store(pool)
        await store.register_task_types({"export": EXPORT.to_json(), "transcode": TRANSCODE.declaration()})
        await store.register_worker("export-worker", "elsewhere", 1, 1, ["export"])
        await store.register_worker("k8s-agent", "cluster", 1, 1, ["transcode"])
    finally:
        await pool.close()


@pytest.fixture
def dashboard(
    browser: Browser, settings: Settings, tmp_path: Path, screenshot_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Dashboard]:
    """A server without workers (tasks stay QUEUED) that counts a worker live for a minute after its
    last heartbeat: the one that published `export` beats only once."""
    with ThreadPoolExecutor(1) as thread:  # Playwright runs an event loop in this one
        thread.submit(asyncio.run, _publish(settings.database_url)).result()
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", LEASE_SECONDS="60")
    try:
        server.wait_ready()
        board = Dashboard(browser, server, request.node.name, screenshot_dir)
        yield board
        board.close()
    finally:
        server.stop()


def test_the_create_form_follows_the_declarations(dashboard: Dashboard) -> None:
    page = dashboard.open()
    page.get_by_role("button", name="New task").click()
    form = page.get_by_role("dialog", name="New task")
    form.get_by_label("Name", exact=True).fill("Welcome mail")
    form.get_by_label("Type").select_option("send_email")
    expect(form.locator("#create-type-note")).to_have_text(
        "Send one email: over SMTP when SMTP_HOST is set, else into the outbox directory."
    )
    keys = form.locator(".param-key")
    expect(keys).to_have_count(3)
    assert [keys.nth(i).input_value() for i in range(3)] == ["recipient", "subject", "body"]
    recipient = form.get_by_label("Parameter 1 value")
    expect(recipient).to_have_attribute("aria-required", "true")
    expect(recipient).to_have_accessible_description(
        "string, required, format email, also as to: The address to send to."
    )
    expect(recipient).to_have_attribute("type", "email")  # its declared format: an e-mail address
    # Sent without the recipient: refused, and the message stands beside the parameter.
    form.get_by_role("button", name="Create task").click()
    expect(form.locator("#create-payload-error")).to_have_text("['recipient']: is required (or to)")
    expect(form.get_by_label("Parameter 1 name")).to_have_attribute("aria-invalid", "true")
    dashboard.screenshot(page, "-refused")
    # Not an address: refused by the server (not only by the browser), saying which rule.
    recipient.fill("not-an-address")
    form.get_by_role("button", name="Create task").click()
    expect(form.locator("#create-payload-error")).to_have_text(
        "['recipient']: must be an e-mail address (got 'not-an-address'):"
        " An email address must have an @-sign."
    )
    assert rpc(dashboard.server, "ListTasks", {}).get("tasks", []) == []
    recipient.fill("ada@example.com")
    form.get_by_label("Parameter 2 value").fill("Welcome")
    form.get_by_role("button", name="Create task").click()
    expect(form).to_be_hidden()
    [created] = rpc(dashboard.server, "ListTasks", {})["tasks"]
    assert created["payload"]["parameters"] == {"recipient": "ada@example.com", "subject": "Welcome"}

    # Another type, another form: defaults as placeholders, lists for enums and booleans.
    page.get_by_role("button", name="New task").click()
    form.get_by_label("Type").select_option("sleep")
    seconds = form.get_by_label("Parameter 1 value")
    expect(seconds).to_have_attribute("placeholder", "default: 0")
    expect(seconds).to_have_accessible_description("number, default 0, >= 0: How long to sleep.")
    form.get_by_label("Type").select_option("export")
    expect(form.locator("#create-type-note")).to_have_text(EXPORT.description)
    fit = form.get_by_label("Parameter 2 value")
    expect(fit.locator("option")).to_have_text(["default: csv", "csv", "parquet"])
    gzip = form.get_by_label("Parameter 3 value")
    expect(gzip.locator("option")).to_have_text(["choose…", "true", "false"])
    form.get_by_label("Name", exact=True).fill("Export orders")
    form.get_by_label("Parameter 1 value").fill("orders")
    gzip.select_option("true")
    dashboard.screenshot(page, "-export")
    form.get_by_role("button", name="Create task").click()
    expect(form).to_be_hidden()
    exported = [t for t in rpc(dashboard.server, "ListTasks", {})["tasks"] if t["type"] == "export"]
    assert [t["payload"]["parameters"] for t in exported] == [{"table": "orders", "gzip": "true"}]


def test_a_container_type_shows_its_image(dashboard: Dashboard) -> None:
    page = dashboard.open()
    page.get_by_role("button", name="New task").click()
    form = page.get_by_role("dialog", name="New task")
    form.get_by_label("Type").select_option("transcode")
    note = "Transcode a video. Runs in a container: ghcr.io/acme/transcode:2"
    expect(form.locator("#create-type-note")).to_have_text(note)
    form.get_by_label("Name", exact=True).fill("Holiday video")
    form.get_by_label("Parameter 1 value").fill("holiday.mp4")
    form.get_by_role("button", name="Create task").click()
    expect(form).to_be_hidden()
    [created] = [t for t in rpc(dashboard.server, "ListTasks", {})["tasks"] if t["type"] == "transcode"]
    assert (created["baseImage"], created["args"]) == ("ghcr.io/acme/transcode:2", ["holiday.mp4"])
    page.get_by_role("button", name="Holiday video").click()
    details = page.get_by_role("dialog", name=f"#{created['id']} Holiday video")
    expect(details.locator("#details-fields")).to_contain_text(
        "transcode (container ghcr.io/acme/transcode:2)"
    )
    dashboard.screenshot(page, "-container")
