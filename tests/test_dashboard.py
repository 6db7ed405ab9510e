"""The dashboard in a real headless Chromium against a real server that runs tasks with its workers."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

import conftest
from agents import AgentProcess, agent_env
from conftest import ServerProcess
from taskservice import enqueue
from taskservice.config import Settings

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

CHROMIUM = Path("/usr/bin/chromium")
# Debian's chromium, never a downloaded browser; these flags keep it from reaching the network.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
LATER = 3600.0  # delaySeconds that keeps a task QUEUED for the whole test

# Pages never see this machine's clock, time zone or locale. Each page's clock is frozen at the moment
# it opens, in a time zone where that moment's hour is BROWSER_HOUR: one digit by default, the case a
# `\d\d:` pattern gets wrong (12-hour "7:00:13 AM" as well as 24-hour "07:00:13"). .ci/run sets these.
BROWSER_LOCALE = os.environ.get("TEST_BROWSER_LOCALE", "en-US")
BROWSER_HOUR = int(os.environ.get("TEST_BROWSER_HOUR", "7"))


def zone_where_hour_is(at: datetime, hour: int) -> tuple[str, timezone]:
    """A fixed-offset IANA zone (and its tzinfo) in which the instant `at` falls in hour `hour` (0..23)."""
    ahead = (hour - at.astimezone(UTC).hour) % 24  # hours ahead of UTC
    if ahead > 14:  # the Etc/GMT zones span UTC-12 to UTC+14
        ahead -= 24
    # POSIX signs: Etc/GMT-7 is seven hours *ahead* of UTC.
    name = "Etc/UTC" if ahead == 0 else f"Etc/GMT{-ahead:+d}"
    return name, timezone(timedelta(hours=ahead))


# Tasks take a second or two to run here; auto-waiting expectations get room for a slow machine.
expect.set_options(timeout=15_000)


def rpc(server: ServerProcess, method: str, request: dict[str, Any], token: str = "") -> Any:
    """A call of the API as JSON; with `token`, as that token's holder."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{server.url}/cloud.v1.TaskManagementService/{method}"
    response = httpx.post(url, json=request, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def create(server: ServerProcess, name: str, parameters: dict[str, str], **fields: Any) -> int:
    request = {"name": name, "type": "sleep", "payload": {"parameters": parameters}, **fields}
    task_id: int = rpc(server, "CreateTask", request)["id"]
    return task_id


def api_time(text: str) -> datetime:
    """A time as the API writes it: RFC 3339 in UTC, to the second."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def shown_clock(at: datetime, zone: timezone) -> re.Pattern[str]:
    """The time of day of `at` in the page's zone as the page writes it: "7:15:26 AM" (12-hour) or
    "07:15:26" (24-hour), whichever the locale uses."""
    local = at.astimezone(zone)
    hours = {str(local.hour % 12 or 12), str(local.hour), f"{local.hour:02d}"}
    return re.compile(rf"(?<!\d)({'|'.join(sorted(hours))}):{local:%M:%S}(?!\d)")


@pytest.mark.parametrize("utc_hour", range(24))
def test_every_utc_hour_has_a_zone_where_the_page_shows_the_chosen_hour(utc_hour: int) -> None:
    from zoneinfo import ZoneInfo

    at = datetime(2026, 12, 1, utc_hour, 0, 13, tzinfo=UTC)
    name, zone = zone_where_hour_is(at, BROWSER_HOUR)
    assert at.astimezone(zone).hour == at.astimezone(ZoneInfo(name)).hour == BROWSER_HOUR


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig: pytest.Config) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Printed past pytest's capture, so CI logs always say where the screenshots are.
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\ndashboard screenshots: {SCREENSHOTS}")
    return SCREENSHOTS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Dashboard:
    """Opens the dashboard in fresh browser contexts; screenshots each page and fails on page errors."""

    def __init__(self, browser: Browser, server: ServerProcess, name: str, folder: Path) -> None:
        self.browser, self.server, self.name, self.folder = browser, server, name, folder
        self.pages: list[Page] = []
        self.shot: set[str] = set()
        self.errors: list[str] = []

    def open(
        self,
        *,
        scheme: str = "light",
        width: int = 1280,
        height: int = 900,
        hash: str = "",
        now: datetime | None = None,
        token: str = "",
    ) -> Page:
        """A page in a context of its own, its clock frozen at `now` (default: this moment); logged in
        with `token` through the login page (a server that asks for credentials)."""
        now = now or datetime.now(UTC)
        zone, _ = zone_where_hour_is(now, BROWSER_HOUR)
        context = self.browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=scheme,  # type: ignore[arg-type]
            base_url=self.server.url,
            locale=BROWSER_LOCALE,
            timezone_id=zone,
        )
        context.clock.set_fixed_time(now)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.goto(f"/{hash}")
        if token:
            page.get_by_label("API token").fill(token)
            page.get_by_role("button", name="Log in").click()
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        self.pages.append(page)
        return page

    def screenshot(self, page: Page, suffix: str = "") -> None:
        """`<test name><suffix>.png`; each page gets one without a suffix at the end unless taken before.

        The whole page, from the top, unless a dialog is open: then what the user sees.
        """
        dialog_open = page.locator("dialog[open]").count() > 0
        if not dialog_open:
            page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=self.folder / f"{self.name}{suffix}.png", full_page=not dialog_open)
        self.shot.add(suffix)

    def close(self) -> None:
        for index, page in enumerate(self.pages):
            suffix = f"-{index + 1}" if index else ""
            if suffix not in self.shot:
                self.screenshot(page, suffix)
            page.context.close()
        assert not self.errors, f"errors in the page: {self.errors}"


@pytest.fixture
def dashboard(
    browser: Browser, api_server: ServerProcess, screenshot_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Dashboard]:
    board = Dashboard(browser, api_server, request.node.name, screenshot_dir)
    yield board
    board.close()


# Records each status a task row shows, as it changes (rows carry data-key and data-status).
RECORD_STATUSES = """() => {
    window.statusesShown = {};
    const note = (row) => {
        const { key, status } = row.dataset || {};
        if (key && status) (window.statusesShown[key] ||= []).push(status);
    };
    const observer = new MutationObserver((records) => records.forEach((record) => {
        (record.type === "attributes" ? [record.target] : record.addedNodes).forEach(note);
    }));
    observer.observe(document.getElementById("tasks-body"),
        {subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"]});
}"""


def row(page: Page, task_id: int) -> Locator:
    return page.locator(f'#tasks-body tr[data-key="{task_id}"]')


def card(page: Page, status: str) -> Locator:
    return page.locator(f'#cards [data-status="{status}"] .card-value')


def limit_row(page: Page, scope: str) -> Locator:
    return page.locator(f'#limits-body tr[data-key="{scope}"]')


def schedule_row(page: Page, schedule: dict[str, Any]) -> Locator:
    return page.locator(f'#schedules-body tr[data-key="{schedule["id64"]}"]')


def make_schedule(server: ServerProcess, name: str, token: str = "", **fields: Any) -> dict[str, Any]:
    """A schedule of sleep tasks that take no time, made through the API; as the API returns it."""
    task = {"type": "sleep", "payload": {"parameters": {"seconds": "0"}}}
    made = rpc(server, "CreateSchedule", {"name": name, "task": task, **fields}, token)
    schedule: dict[str, Any] = made["schedule"]
    return schedule


# An interval counts from when it was made, so its next tick is a day away whatever the clock says.
DAILY = {"every": "1d"}


# -- the tests -----------------------------------------------------------------------------------


def test_create_task_through_the_form_and_watch_it_run(dashboard: Dashboard) -> None:
    page = dashboard.open()
    page.evaluate(RECORD_STATUSES)
    page.get_by_role("button", name="New task").click()
    form = page.get_by_role("dialog", name="New task")
    form.get_by_label("Name", exact=True).fill("Nightly report")
    form.get_by_label("Type").select_option("sleep")
    form.get_by_label("Description").fill("Crunches yesterday's numbers")
    # The keys the sleep type takes are offered; a start delay keeps it QUEUED long enough to see.
    expect(form.get_by_label("Parameter 1 name")).to_have_value("seconds")
    form.get_by_label("Parameter 1 value").fill("2.5")
    form.get_by_role("button", name="Remove parameter 2").click()
    form.get_by_text("More options").click()
    form.get_by_label("Start after (seconds)").fill("2")
    form.get_by_role("button", name="Create task").click()
    expect(form).to_be_hidden()

    task = page.locator("#tasks-body tr", has_text="Nightly report")
    expect(task).to_be_visible(timeout=2_000)  # at once, not at the next event
    status = task.locator("td.status")
    expect(status).to_have_text("Queued")
    expect(status).to_have_text("Running")
    expect(status).to_have_text("Succeeded")
    expect(task.locator("td.attempts")).to_have_text("1")
    expect(task.locator("td.type")).to_have_text("sleep")
    expect(task.locator("td.description")).to_have_text("Crunches yesterday's numbers")
    expect(card(page, "SUCCEEDED")).to_have_text("1")
    expect(card(page, "QUEUED")).to_have_text("0")
    expect(page.locator("#chart svg")).to_have_attribute("aria-label", re.compile(r"1 succeeded, 0 failed"))
    expect(page.locator("#workers-body tr")).to_have_count(1)
    expect(page.locator("#workers-body tr").first).to_contain_text("Live")
    # Every status the row showed, in order, in this same document (a reload would have lost them).
    task_id = task.get_attribute("data-key")
    shown = page.evaluate(f"window.statusesShown[{task_id}]")
    assert [s for i, s in enumerate(shown) if i == 0 or shown[i - 1] != s] == [
        "QUEUED",
        "RUNNING",
        "SUCCEEDED",
    ]


def test_failing_task_shows_its_retries_and_error(dashboard: Dashboard) -> None:
    page = dashboard.open(scheme="dark")
    task_id = create(dashboard.server, "Flaky import", {"seconds": "0.2", "fail_rate": "1"}, maxRetries=2)
    task = row(page, task_id)
    expect(task.locator("td.status")).to_have_text("Failed")  # arrived live: the page was open before
    expect(task.locator("td.attempts")).to_have_text("3")
    expect(card(page, "FAILED")).to_have_text("1")

    task.get_by_role("button", name=f"Open details of task {task_id}").click()
    details = page.get_by_role("dialog", name=f"#{task_id} Flaky import")
    expect(details).to_be_visible()
    attempts = details.locator("#details-attempts tr")
    expect(attempts).to_have_count(3)
    for index in range(3):
        expect(attempts.nth(index).locator("td").nth(4)).to_have_text("failed")
        expect(attempts.nth(index).locator("td.error .error-text")).to_have_text(
            "RuntimeError: simulated failure (fail_rate=1)"
        )
    timeline = details.locator("#details-timeline li")
    expect(details.locator('#details-timeline li[data-status="RETRYING"]')).to_have_count(2)
    expect(timeline.last).to_contain_text("Failed")
    expect(details.locator("#details-fields")).to_contain_text("2 of 2")
    expect(details.get_by_role("button", name="Retry")).to_be_visible()
    expect(details.get_by_role("button", name="Cancel task")).to_be_hidden()
    attempts.last.scroll_into_view_if_needed()
    dashboard.screenshot(page)


def test_a_failed_attempt_offers_its_traceback(dashboard: Dashboard) -> None:
    failing = create(dashboard.server, "Import orders", {"fail_rate": "1"}, maxRetries=0)
    fine = create(dashboard.server, "Export orders", {})
    page = dashboard.open()
    expect(row(page, failing).locator("td.status")).to_have_text("Failed")
    expect(row(page, fine).locator("td.status")).to_have_text("Succeeded")

    row(page, failing).get_by_role("button", name=f"Open details of task {failing}").click()
    details = page.get_by_role("dialog", name=f"#{failing} Import orders")
    error = details.locator("#details-attempts tr").first.locator("td.error")
    expect(error.locator(".error-text")).to_have_text("RuntimeError: simulated failure (fail_rate=1)")
    traceback = error.get_by_label("Traceback of attempt 1")
    expect(traceback).to_be_hidden()  # a disclosure: closed until asked for
    error.get_by_text("Traceback", exact=True).click()
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("Traceback (most recent call last):")
    expect(traceback).to_contain_text(", in run")  # the plugin's function that raised
    text = traceback.inner_text()
    assert text.rstrip().endswith("RuntimeError: simulated failure (fail_rate=1)"), text
    # Monospace and scrollable, its lines kept whole.
    style = traceback.evaluate(
        "e => { const s = getComputedStyle(e);"
        " return [s.fontFamily, s.overflowX, s.overflowY, s.whiteSpace]; }"
    )
    assert "monospace" in style[0]
    assert style[1:] == ["auto", "auto", "pre"]
    traceback.scroll_into_view_if_needed()
    dashboard.screenshot(page, "-open")
    # The live refresh of the drawer (a second attempt arrives) leaves it open.
    details.get_by_role("button", name="Retry").click()
    confirm = page.get_by_role("dialog", name=f"Retry task #{failing}?")
    confirm.get_by_role("button", name="Retry task").click()
    expect(details.locator("#details-attempts tr")).to_have_count(2)
    expect(traceback).to_be_visible()
    page.keyboard.press("Escape")

    # A successful attempt has nothing to disclose.
    row(page, fine).get_by_role("button", name=f"Open details of task {fine}").click()
    done = page.get_by_role("dialog", name=f"#{fine} Export orders")
    expect(done.locator("#details-attempts tr").first.locator("td.error")).to_have_text("—")
    expect(done.locator(".traceback")).to_have_count(0)


def test_filter_and_paginate(dashboard: Dashboard) -> None:
    server = dashboard.server
    tasks: list[dict[str, Any]] = [
        {"name": f"alpha-{i}", "type": "sleep", "payload": {"parameters": {}}} for i in range(12)
    ]
    tasks += [
        {"name": f"beta-{i}", "type": "sleep", "payload": {"parameters": {"fail_rate": "1"}}, "maxRetries": 0}
        for i in range(3)
    ]
    tasks += [
        {
            "name": f"gamma-{i}",
            "type": "send_email",
            "payload": {"parameters": {"recipient": f"g{i}@example.com", "subject": "Hi"}},
            "delaySeconds": LATER,
        }
        for i in range(10)
    ]
    ids = rpc(server, "CreateTasks", {"tasks": tasks})["ids"]
    page = dashboard.open()
    expect(card(page, "SUCCEEDED")).to_have_text("12")
    expect(card(page, "FAILED")).to_have_text("3")
    expect(card(page, "QUEUED")).to_have_text("10")

    rows = page.locator("#tasks-body tr")
    filters = page.get_by_role("search", name="Filter tasks")
    page.get_by_label("Rows per page").select_option("10")
    expect(page.locator("#page-range")).to_have_text("1–10 of 25")
    expect(rows).to_have_count(10)
    expect(rows.first).to_have_attribute("data-key", str(ids[-1]))  # newest first
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#page-range")).to_have_text("11–20 of 25")
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#page-range")).to_have_text("21–25 of 25")
    expect(rows).to_have_count(5)
    expect(rows.last).to_have_attribute("data-key", str(ids[0]))
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()

    filters.get_by_label("Status").select_option("FAILED")
    expect(page.locator("#page-range")).to_have_text("1–3 of 3")
    expect(rows.locator("td.status")).to_have_text(["Failed"] * 3)
    filters.get_by_label("Status").select_option("")
    filters.get_by_label("Type").select_option("send_email")
    expect(page.locator("#page-range")).to_have_text("1–10 of 10")
    expect(rows.locator("td.type")).to_have_text(["send_email"] * 10)
    filters.get_by_label("Type").select_option("")
    filters.get_by_label("Search by name").fill("alpha-1")
    expect(rows.locator("td.name")).to_have_text(["alpha-11", "alpha-10", "alpha-1"])
    filters.get_by_label("Search by name").fill("")
    expect(page.locator("#page-range")).to_have_text("1–10 of 25")

    # A status card is a shortcut to its filter; the filters live in the address, so a reload keeps them.
    page.locator('#cards [data-status="FAILED"]').click()
    expect(filters.get_by_label("Status")).to_have_value("FAILED")
    expect(page.locator("#page-range")).to_have_text("1–3 of 3")
    page.reload()
    expect(filters.get_by_label("Status")).to_have_value("FAILED")
    expect(rows).to_have_count(3)


def test_task_details(dashboard: Dashboard) -> None:
    server = dashboard.server
    task_id = rpc(
        server,
        "CreateTask",
        {
            "name": "Welcome mail",
            "type": "send_email",
            "description": "Greets a new user",
            "payload": {"parameters": {"recipient": "ada@example.com", "subject": "Welcome"}},
        },
    )["id"]
    created = api_time(rpc(server, "GetTask", {"id": task_id})["createdAt"])
    # The page's clock stands 13 s after the task was created, in a zone where that is BROWSER_HOUR.
    page = dashboard.open(now=created + timedelta(seconds=13))
    _, zone = zone_where_hour_is(created + timedelta(seconds=13), BROWSER_HOUR)
    task = row(page, task_id)
    expect(task.locator("td.status")).to_have_text("Succeeded")
    task.get_by_role("button", name=f"View payload of task {task_id}").click()
    payload_dialog = page.get_by_role("dialog", name=f"Payload of task #{task_id}")
    expect(payload_dialog).to_contain_text('"subject": "Welcome"')
    payload_dialog.get_by_role("button", name="Close").last.click()
    expect(payload_dialog).to_be_hidden()
    task.get_by_role("button", name="Welcome mail").click()

    details = page.get_by_role("dialog", name=f"#{task_id} Welcome mail")
    fields = details.locator("#details-fields")
    expect(fields).to_contain_text("send_email")
    expect(fields).to_contain_text("Greets a new user")
    expect(fields).to_contain_text("Succeeded")
    payload = json.dumps({"recipient": "ada@example.com", "subject": "Welcome"}, indent=2)
    assert json.loads(details.locator("#details-payload").inner_text()) == json.loads(payload)
    expect(details.locator("#details-payload")).to_contain_text('  "recipient": "ada@example.com"')
    timeline = details.locator("#details-timeline li")
    expect(timeline.locator(".badge")).to_have_text(["Queued", "Running", "Succeeded"])
    # The history row's time is taken when it is written (clock_timestamp()), the task's at the start
    # of its transaction: the two may fall either side of a second's boundary.
    queued = api_time(rpc(server, "GetTaskHistory", {"id": task_id})["history"][0]["createdAt"])
    expect(timeline.first.locator("time")).to_have_text(f"{13 - (queued - created).seconds} s ago")
    expect(timeline.first).to_contain_text(shown_clock(queued, zone))  # and when, in the page's zone
    worker = rpc(server, "ListWorkers", {})["workers"][0]["id"]
    attempt = details.locator("#details-attempts tr")
    expect(attempt).to_have_count(1)
    expect(attempt.locator("td").nth(1)).to_have_text(worker)
    expect(attempt.locator("td").nth(4)).to_have_text("succeeded")
    expect(attempt.locator("td.result")).to_contain_text('"backend":"outbox"')
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()

    # The open task is in the address too: a link to it opens its details.
    linked = dashboard.open(hash=f"#task={task_id}")
    expect(linked.get_by_role("dialog", name=f"#{task_id} Welcome mail")).to_be_visible()


def test_a_task_no_live_worker_runs_is_marked(dashboard: Dashboard, settings: Settings) -> None:
    """The server's workers run the built-in types only: a task of another type waits, and says why."""
    with psycopg.connect(settings.database_url) as conn:  # commits on leaving the block
        orphan = enqueue(conn, type="transcode_video", name="Trailer", parameters={"file": "a.mp4"})
    served = create(dashboard.server, "Later sleep", {"seconds": "1"}, delaySeconds=LATER)
    reason = "no live worker runs type transcode_video"
    page = dashboard.open()
    task = row(page, orphan)
    expect(task.locator("td.status .badge")).to_have_text("Queued")
    marker = task.locator("td.status .waiting-marker")
    expect(marker).to_have_attribute("title", reason)
    expect(page.get_by_role("img", name=reason)).to_have_count(1)
    expect(row(page, served).locator("td.status .badge")).to_have_text("Queued")
    expect(row(page, served).locator(".waiting-marker")).to_have_count(0)
    dashboard.screenshot(page, "-list")
    task.get_by_role("button", name="Trailer").click()
    details = page.get_by_role("dialog", name=f"#{orphan} Trailer")
    expect(details.locator("#details-waiting")).to_have_text(reason)
    expect(details.locator("#details-waiting")).to_be_visible()
    dashboard.screenshot(page)
    page.keyboard.press("Escape")
    row(page, served).get_by_role("button", name="Later sleep").click()
    other = page.get_by_role("dialog", name=f"#{served} Later sleep")
    expect(other.locator("#details-fields")).to_contain_text("Later sleep")
    expect(other.locator("#details-waiting")).to_be_hidden()


def test_cancel_a_queued_task(dashboard: Dashboard) -> None:
    task_id = create(dashboard.server, "Later job", {"seconds": "1"}, delaySeconds=LATER)
    page = dashboard.open()
    task = row(page, task_id)
    expect(task.locator("td.status")).to_have_text("Queued")
    task.get_by_role("button", name=f"Cancel task {task_id}").click()
    confirm = page.get_by_role("dialog", name=f"Cancel task #{task_id}?")
    expect(confirm).to_contain_text("Later job")
    confirm.get_by_role("button", name="Cancel task").click()
    expect(task.locator("td.status")).to_have_text("Cancelled")
    expect(page.get_by_role("status").filter(has_text=f"Task #{task_id} cancelled.")).to_be_visible()
    expect(task.get_by_role("button", name=f"Retry task {task_id}")).to_be_visible()
    expect(task.get_by_role("button", name=f"Cancel task {task_id}")).to_have_count(0)
    expect(card(page, "CANCELLED")).to_have_text("1")
    history = rpc(dashboard.server, "GetTaskHistory", {"id": task_id})["history"]
    assert history[-1]["exactStatus"] == "CANCELLED"
    assert "from the dashboard" in history[-1]["details"]


def test_select_rows_or_all_matching_then_act_in_bulk(dashboard: Dashboard) -> None:
    server = dashboard.server
    later = {"type": "sleep", "payload": {"parameters": {"seconds": "1"}}, "delaySeconds": LATER}
    ids = rpc(server, "CreateTasks", {"tasks": [{"name": f"bulk-{i}", **later} for i in range(25)]})["ids"]
    [other] = rpc(server, "CreateTasks", {"tasks": [{"name": "elsewhere", **later}]})["ids"]
    page = dashboard.open()
    bar = page.get_by_role("region", name="Selected tasks")
    expect(bar).to_be_hidden()

    # Two rows, one by one: the confirmation shows the count, and the server's answer is shown.
    first, second = ids[-1], ids[-2]  # newest first: on the first page
    row(page, first).get_by_role("checkbox", name=f"Select task {first}").check()
    row(page, second).get_by_role("checkbox", name=f"Select task {second}").check()
    expect(bar.locator("#bulk-count")).to_have_text("2 selected")
    bar.get_by_role("button", name="Cancel").click()
    confirm = page.get_by_role("dialog", name="Cancel 2 tasks?")
    expect(confirm).to_contain_text("running ones are stopped")
    dashboard.screenshot(page, "-confirm")
    confirm.get_by_role("button", name="Cancel 2 tasks").click()
    expect(page.get_by_role("status").filter(has_text="Cancelled 2 tasks.")).to_be_visible()
    expect(row(page, first).locator("td.status")).to_have_text("Cancelled")
    expect(row(page, second).locator("td.status")).to_have_text("Cancelled")
    expect(bar).to_be_hidden()  # acted on: the selection is cleared

    # Every task matching the filters, beyond this page: "select all N matching".
    filters = page.get_by_role("search", name="Filter tasks")
    filters.get_by_label("Search by name").fill("bulk-")
    filters.get_by_label("Status").select_option("QUEUED")
    page.get_by_label("Rows per page").select_option("10")
    expect(page.locator("#page-range")).to_have_text("1–10 of 23")
    page.get_by_role("checkbox", name="Select the tasks of this page").check()
    expect(bar.locator("#bulk-count")).to_have_text("10 selected")
    bar.get_by_role("button", name="Select all 23 matching").click()
    expect(bar.locator("#bulk-count")).to_have_text("All 23 matching tasks selected")
    bar.get_by_role("button", name="Cancel").click()
    confirm = page.get_by_role("dialog", name="Cancel 23 tasks?")
    confirm.get_by_role("button", name="Keep it").click()  # nothing happens
    expect(page.locator("#page-range")).to_have_text("1–10 of 23")
    bar.get_by_role("button", name="Cancel").click()
    confirm.get_by_role("button", name="Cancel 23 tasks").click()
    expect(page.get_by_role("status").filter(has_text="Cancelled 23 tasks.")).to_be_visible()
    expect(page.locator("#tasks-body")).to_have_text("No tasks match these filters.")
    other_task = rpc(server, "GetTask", {"id": other})
    assert other_task.get("exactStatus", "QUEUED") == "QUEUED"  # not matching: untouched

    # Delete the cancelled ones; the dry run's count is what the dialog asks about.
    filters.get_by_label("Status").select_option("CANCELLED")
    expect(page.locator("#page-range")).to_have_text("1–10 of 25")
    page.get_by_role("checkbox", name="Select the tasks of this page").check()
    bar.get_by_role("button", name="Select all 25 matching").click()
    bar.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog", name="Delete 25 tasks?")
    expect(confirm).to_contain_text("cannot be undone")
    confirm.get_by_role("button", name="Delete 25 tasks").click()
    expect(page.get_by_role("status").filter(has_text="Deleted 25 tasks.")).to_be_visible()
    expect(page.locator("#page-range")).to_have_text("0–0 of 0")
    assert rpc(server, "ListTasks", {"nameContains": "bulk-"}).get("total", "0") == "0"  # int64 0: omitted


def test_retry_a_failed_task(dashboard: Dashboard) -> None:
    task_id = create(dashboard.server, "Doomed", {"fail_rate": "1"}, maxRetries=0)
    page = dashboard.open()
    task = row(page, task_id)
    expect(task.locator("td.status")).to_have_text("Failed")
    task.get_by_role("button", name=f"Open details of task {task_id}").click()
    details = page.get_by_role("dialog", name=f"#{task_id} Doomed")
    expect(details.locator("#details-attempts tr")).to_have_count(1)
    details.get_by_role("button", name="Retry").click()
    confirm = page.get_by_role("dialog", name=f"Retry task #{task_id}?")
    confirm.get_by_role("button", name="Retry task").click()
    # It runs again, live in the open details: a second attempt, which fails like the first.
    expect(details.locator('#details-timeline li[data-status="QUEUED"]')).to_have_count(2)
    expect(details.locator('#details-timeline li[data-status="QUEUED"]').last).to_contain_text(
        "from the dashboard"
    )
    expect(details.locator("#details-attempts tr")).to_have_count(2)
    expect(details.locator("#details-timeline li").last).to_contain_text("Failed")
    page.keyboard.press("Escape")
    expect(task.locator("td.attempts")).to_have_text("2")
    expect(task.locator("td.status")).to_have_text("Failed")


def test_a_click_anywhere_on_a_row_opens_its_task(dashboard: Dashboard) -> None:
    task_id = create(
        dashboard.server, "Row target", {"seconds": "1"}, description="Select me", delaySeconds=LATER
    )
    page = dashboard.open()
    task = row(page, task_id)
    details = page.get_by_role("dialog", name=f"#{task_id} Row target")
    is_open = "document.getElementById('details').open"

    task.locator("td.status").click()  # not the name: any cell
    expect(details).to_be_visible()
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()
    expect(task).to_be_focused()  # back where the keyboard was: at the row, whose Enter opens it again

    task.blur()
    task.focus()
    page.keyboard.press("Enter")
    expect(details).to_be_visible()
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()

    # A control in the row does its own thing; the name still opens the task.
    task.get_by_role("button", name=f"View payload of task {task_id}").click()
    expect(page.get_by_role("dialog", name=f"Payload of task #{task_id}")).to_be_visible()
    assert page.evaluate(is_open) is False
    page.keyboard.press("Escape")
    task.get_by_role("button", name="Row target").click()
    expect(details).to_be_visible()
    page.keyboard.press("Escape")

    # Selecting the description's text with the mouse (to copy it) is not a click on the row.
    box = task.locator("td.description").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    assert page.evaluate("getSelection().toString()") == "Select me"
    assert page.evaluate(is_open) is False
    expect(details).to_be_hidden()


KINDS = ("worker", "agent")


def test_workers_panel_shows_each_ones_kind_types_and_tasks(
    dashboard: Dashboard, settings: Settings, tmp_path: Path
) -> None:
    server = dashboard.server  # runs tasks itself, as a worker, and an agent beside it runs one type
    agent = AgentProcess.cli(server, agent_env(settings), tmp_path / "agent.log", "--type", "send_email")
    try:
        page = dashboard.open()
        rows = page.locator("#workers-body tr")
        expect(rows).to_have_count(2, timeout=30_000)
        by_kind = {
            kind: rows.filter(has=page.locator(".kind", has_text=re.compile(f"^{kind}$"))) for kind in KINDS
        }
        expect(by_kind["agent"].locator(".types")).to_have_text("runs send_email")
        own = [w for w in rpc(server, "ListWorkers", {})["workers"] if w.get("kind") == "worker"]
        expect(by_kind["worker"].locator(".types")).to_have_text(f"runs {', '.join(own[0]['taskTypes'])}")

        # What each one runs now: the id opens the task.
        task_id = create(server, "Long nap", {"seconds": "120"})
        running = by_kind["worker"].get_by_role("button", name=f"#{task_id}")
        expect(running).to_be_visible()
        expect(by_kind["worker"].locator("td.load .count")).to_have_text("1 / 4")
        expect(by_kind["agent"].locator(".running-tasks button")).to_have_count(0)
        dashboard.screenshot(page, "-running")
        running.click()
        expect(page.get_by_role("dialog", name=f"#{task_id} Long nap")).to_be_visible()
        rpc(server, "CancelTask", {"id": task_id})
        page.keyboard.press("Escape")
        expect(running).to_have_count(0)
        expect(by_kind["worker"].locator("td.load .count")).to_have_text("0 / 4")
    finally:
        agent.stop()


def test_queues_panel_pauses_and_resumes_a_queue(dashboard: Dashboard) -> None:
    server = dashboard.server
    rpc(server, "PauseQueue", {"type": "send_email", "reason": "smtp down"})
    page = dashboard.open()
    queue = page.locator('#queues-body tr[data-key="queue:reports"]')
    expect(queue).to_have_count(0)  # no task of it yet
    paused_type = page.locator('#queues-body tr[data-key="type:send_email"]')
    expect(paused_type.locator(".why")).to_contain_text("smtp down")
    expect(paused_type.locator(".state .pill")).to_have_text("Paused")

    page.get_by_role("button", name="Pause queue default").click()
    confirm = page.get_by_role("dialog", name="Pause queue default?")
    expect(confirm).to_contain_text("No new task of queue default starts, on any worker")
    confirm.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status").filter(has_text="Queue default paused.")).to_be_visible()
    default = page.locator('#queues-body tr[data-key="queue:default"]')
    expect(default.locator(".state .pill")).to_have_text("Paused")
    # Nothing of it starts now, on the server's own workers either: a new task waits and says why.
    task_id = create(server, "Held back", {"seconds": "0"}, queue="default")
    expect(default.locator("td").nth(1)).to_have_text("1")
    expect(row(page, task_id).locator("td.status")).to_contain_text("Queued")
    expect(row(page, task_id).get_by_role("img", name="queue default is paused")).to_be_visible()
    waiting = rpc(server, "GetTask", {"id": task_id})
    assert (waiting["queue"], waiting["waitingReason"]) == ("default", "queue default is paused")
    assert rpc(server, "ListTaskExecutions", {"id": task_id}).get("executions", []) == []
    dashboard.screenshot(page, "-paused")

    page.get_by_role("button", name="Resume queue default").click()
    expect(page.get_by_role("status").filter(has_text="Queue default resumed.")).to_be_visible()
    expect(default.locator(".state .pill")).to_have_text("Active")
    expect(default.locator(".why")).to_have_text("1 worker")  # the server's own, serving every queue
    expect(row(page, task_id).locator("td.status")).to_have_text("Succeeded")
    page.get_by_role("button", name="Resume task type send_email").click()
    expect(paused_type).to_have_count(0)
    assert rpc(server, "ListQueues", {}).get("pausedTypes", []) == []


def test_queues_panel_lists_the_limits_and_a_tasks_details_name_its_own(dashboard: Dashboard) -> None:
    server = dashboard.server
    rpc(server, "SetLimit", {"type": "sleep", "concurrency": 1, "rateLimit": "100/min", "key": "customer"})
    page = dashboard.open()
    limit = limit_row(page, "type:sleep")
    expect(limit.locator(".name")).to_have_text("type sleep")
    expect(limit.locator(".why")).to_have_text("per customer · set by anonymous")
    expect(limit.locator("td").nth(1)).to_have_text("concurrency 1, rate 100/min")
    # One of acme's runs; the next of acme's waits for it, under the limit.
    running = create(server, "Acme first", {"seconds": "60"}, limitKey="acme")
    expect(row(page, running).locator("td.status")).to_have_text("Running")
    waiting = create(server, "Acme second", {"seconds": "0"}, limitKey="acme")
    expect(limit.locator("td").nth(2)).to_have_text("1")
    expect(limit.locator("td").nth(3)).to_have_text("1")
    dashboard.screenshot(page, "-limits")

    row(page, waiting).get_by_role("button", name="Acme second").click()
    details = page.get_by_role("dialog", name=f"#{waiting} Acme second")
    fields = details.locator("#details-fields")
    expect(fields.locator("dt", has_text="Limit")).to_be_visible()
    expect(fields).to_contain_text("type sleep, key acme")
    expect(fields.locator("dt", has_text="Schedule")).to_be_hidden()  # none created it
    page.keyboard.press("Escape")
    rpc(server, "CancelTask", {"id": running})
    expect(row(page, waiting).locator("td.status")).to_have_text("Succeeded")
    expect(limit.locator("td").nth(2)).to_have_text("0")
    expect(limit.locator("td").nth(3)).to_have_text("0")

    # A task outside every limit has no such field.
    mail = {"recipient": "ada@example.com", "subject": "Hi"}
    free = create(server, "Unlimited", mail, type="send_email", delaySeconds=LATER)
    row(page, free).get_by_role("button", name="Unlimited").click()
    other = page.get_by_role("dialog", name=f"#{free} Unlimited")
    expect(other.locator("#details-fields")).to_contain_text("send_email")
    expect(other.locator("#details-fields dt", has_text="Limit")).to_be_hidden()


def test_schedules_panel_shows_when_each_ticks_and_pauses_and_resumes_one(dashboard: Dashboard) -> None:
    server = dashboard.server
    daily = make_schedule(server, "nightly <b>report</b>", **DAILY)
    berlin = make_schedule(server, "berlin-night", cron="0 2 * * *", timezone="Europe/Berlin", paused=True)
    next_tick = api_time(daily["nextTick"])
    now = next_tick - timedelta(hours=2, minutes=5)  # the page's clock
    _, zone = zone_where_hour_is(now, BROWSER_HOUR)
    page = dashboard.open(now=now)
    expect(page.locator("#schedules-body tr .name")).to_have_text(["berlin-night", "nightly <b>report</b>"])
    schedule = schedule_row(page, daily)
    state, next_cell = schedule.locator("td.state"), schedule.locator("td.next")
    expect(schedule.locator(".what")).to_have_text("creates sleep · made by anonymous")
    expect(schedule.locator("td.when")).to_have_text("every 1d")
    expect(next_cell.locator("time")).to_have_text("in 2 h")
    expect(next_cell).to_contain_text(shown_clock(next_tick, zone))
    expect(schedule.locator("td.last")).to_have_text("—")
    expect(schedule.locator("td.run")).to_have_text("—")
    expect(state).to_have_text("active")
    expect(schedule.locator("td.counts")).to_have_text("0 / 0")
    # Made paused, it never ticks while the test runs.
    expect(schedule_row(page, berlin).locator("td.when")).to_have_text("0 2 * * * Europe/Berlin")
    expect(schedule_row(page, berlin).locator("td.state")).to_have_text("paused")
    expect(schedule_row(page, berlin).locator("td.next")).to_have_text("—")
    expect(page.locator("#schedules-summary")).to_have_text("2 schedules · 1 paused")
    dashboard.screenshot(page, "-listed")

    schedule.get_by_role("button", name="Pause schedule nightly <b>report</b>").click()
    expect(
        page.get_by_role("status").filter(has_text="Schedule nightly <b>report</b> paused.")
    ).to_be_visible()
    expect(state).to_have_text("paused")
    expect(next_cell).to_have_text("—")
    assert rpc(server, "GetSchedule", {"name": daily["name"]})["schedule"]["paused"] is True
    schedule.get_by_role("button", name="Resume schedule nightly <b>report</b>").click()
    expect(
        page.get_by_role("status").filter(has_text="Schedule nightly <b>report</b> resumed.")
    ).to_be_visible()
    expect(state).to_have_text("active")
    expect(next_cell.locator("time")).to_have_text("in 2 h")  # a day after resuming, by the page's clock
    assert rpc(server, "GetSchedule", {"name": daily["name"]})["schedule"]["paused"] is False


def test_schedules_panel_runs_one_now_and_deletes_it_when_confirmed(dashboard: Dashboard) -> None:
    server = dashboard.server
    daily = make_schedule(server, "nightly <b>report</b>", **DAILY)
    page = dashboard.open()
    schedule = schedule_row(page, daily)
    run = schedule.locator("td.run")
    # Run now: a task by hand, which the server's worker runs; the last run links to it.
    schedule.get_by_role("button", name="Run schedule nightly <b>report</b> now").click()
    notice = page.get_by_role("status").filter(has_text=re.compile(r"Task #\d+ created"))
    expect(notice).to_contain_text("(schedule nightly <b>report</b>, by hand)")
    task_id = int(rpc(server, "GetSchedule", {"name": daily["name"]})["schedule"]["lastTaskId64"])
    expect(row(page, task_id).locator("td.status")).to_have_text("Succeeded")
    expect(run.locator(".badge")).to_have_text("Succeeded")
    expect(schedule.locator("td.last")).to_have_text("—")  # a run by hand is no tick
    dashboard.screenshot(page, "-ran")
    run.get_by_role("button", name=f"#{task_id}").click()
    details = page.get_by_role("dialog", name=f"#{task_id} nightly <b>report</b>")
    field = details.locator("#details-fields dd", has_text="triggered by hand")
    expect(field).to_have_text("nightly <b>report</b> (triggered by hand)")
    field.get_by_role("button", name="nightly <b>report</b>").click()  # to its schedule
    expect(details).to_be_hidden()
    expect(schedule).to_be_focused()

    schedule.get_by_role("button", name="Delete schedule nightly <b>report</b>").click()
    confirm = page.get_by_role("dialog", name="Delete schedule nightly <b>report</b>?")
    expect(confirm).to_contain_text("The tasks it created stay.")
    confirm.get_by_role("button", name="Keep it").click()
    expect(schedule).to_be_visible()
    schedule.get_by_role("button", name="Delete schedule nightly <b>report</b>").click()
    confirm.get_by_role("button", name="Delete schedule").click()
    expect(schedule).to_have_count(0)
    empty = page.locator("#schedules-body tr.empty")
    expect(empty).to_contain_text("task-cli schedule create")
    expect(empty).to_contain_text('@task("T", cron=')
    assert rpc(server, "ListSchedules", {}).get("schedules", []) == []
    expect(row(page, task_id)).to_be_visible()  # its tasks stay
    # Its task's details say so, without a link.
    row(page, task_id).get_by_role("button", name="nightly <b>report</b>").click()
    expect(details.locator("#details-fields")).to_contain_text(
        f"schedule {daily['id64']} (deleted) (triggered by hand)"
    )


def test_a_ticks_task_names_its_schedule_and_tick(dashboard: Dashboard) -> None:
    server = dashboard.server
    often = make_schedule(server, "often", every="1s")
    now = datetime.now(UTC)  # the page's clock: its times are shown in a zone where this is BROWSER_HOUR
    _, zone = zone_where_hour_is(now, BROWSER_HOUR)
    page = dashboard.open(now=now)
    schedule = schedule_row(page, often)
    expect(schedule.locator("td.run button")).to_be_visible()  # it ticked, and its task was created
    schedule.get_by_role("button", name="Pause schedule often").click()
    expect(schedule.locator("td.state")).to_have_text("paused")
    paused = rpc(server, "GetSchedule", {"name": "often"})["schedule"]
    last_id, last_tick = int(paused["lastTaskId64"]), api_time(paused["lastTick"])
    link = schedule.locator("td.run").get_by_role("button", name=f"#{last_id}")
    expect(link).to_be_visible()
    expect(schedule.locator("td.last")).to_contain_text(shown_clock(last_tick, zone))
    link.click()
    details = page.get_by_role("dialog", name=f"#{last_id} often")
    field = details.locator("#details-fields dd", has_text="tick")
    expect(field).to_have_text(re.compile(r"^often, tick "))
    expect(field).to_contain_text(shown_clock(last_tick, zone))
    dashboard.screenshot(page, "-details")
    field.get_by_role("button", name="often").click()
    expect(details).to_be_hidden()
    expect(schedule).to_be_focused()


def test_a_viewer_sees_schedules_and_limits_without_the_buttons_that_change_them(
    browser: Browser, token_server: tuple[ServerProcess, dict[str, str]], screenshot_dir: Path
) -> None:
    server, secrets = token_server
    operator = secrets["operator"]
    hourly = make_schedule(server, "hourly", operator, every="1h")
    # Its run by hand waits, in queue default: no worker runs here.
    task_id = int(rpc(server, "TriggerSchedule", {"name": "hourly"}, operator)["taskId64"])
    rpc(server, "SetLimit", {"queue": "default", "concurrency": 2}, operator)
    changes = re.compile(r"^(Pause|Resume|Run|Delete) (schedule|queue) ")
    board = Dashboard(browser, server, "test_a_viewer_sees_schedules_and_limits", screenshot_dir)
    try:
        viewer = board.open(token=secrets["viewer"])
        expect(viewer.locator("#account-name")).to_have_text("token t-viewer (viewer)")
        schedule = schedule_row(viewer, hourly)
        expect(schedule.locator("td.when")).to_have_text("every 1h")
        expect(schedule.locator(".what")).to_have_text("creates sleep · made by token:t-operator")
        expect(limit_row(viewer, "queue:default").locator("td").nth(1)).to_have_text("concurrency 2")
        expect(viewer.locator('#queues-body tr[data-key="queue:default"]')).to_be_visible()
        expect(viewer.get_by_role("button", name=changes)).to_have_count(0)
        # Reading is a viewer's: the last run opens.
        schedule.locator("td.run").get_by_role("button", name=f"#{task_id}").click()
        expect(viewer.get_by_role("dialog", name=f"#{task_id} hourly")).to_be_visible()
        board.screenshot(viewer)

        # An operator, on the same server, is offered each.
        op = board.open(token=operator)
        expect(op.locator("#account-name")).to_have_text("token t-operator (operator)")
        for name in (
            "Pause schedule hourly",
            "Run schedule hourly now",
            "Delete schedule hourly",
            "Pause queue default",
        ):
            expect(op.get_by_role("button", name=name)).to_be_visible()
    finally:
        board.close()


THEMES_BACKGROUND = {"light": "rgb(245, 246, 248)", "dark": "rgb(14, 16, 20)"}


def test_theme_switch_light_dark_or_the_systems(dashboard: Dashboard) -> None:
    page = dashboard.open(scheme="light")
    body = page.locator("body")
    switch = page.get_by_role("group", name="Theme")
    system, light, dark = (
        switch.get_by_role("button", name=f"{n} theme") for n in ("System", "Light", "Dark")
    )
    expect(system).to_have_attribute("aria-pressed", "true")
    expect(body).to_have_css("background-color", THEMES_BACKGROUND["light"])

    dark.click()
    expect(dark).to_have_attribute("aria-pressed", "true")
    expect(system).to_have_attribute("aria-pressed", "false")
    expect(body).to_have_css("background-color", THEMES_BACKGROUND["dark"])
    dashboard.screenshot(page, "-dark")
    # Remembered: a reload keeps it, whatever the system says.
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(dark).to_have_attribute("aria-pressed", "true")
    expect(body).to_have_css("background-color", THEMES_BACKGROUND["dark"])
    light.click()
    page.emulate_media(color_scheme="dark")
    expect(body).to_have_css("background-color", THEMES_BACKGROUND["light"])

    # The system's, live: the page follows when the system changes, without a reload.
    system.click()
    expect(system).to_have_attribute("aria-pressed", "true")
    expect(body).to_have_css("background-color", THEMES_BACKGROUND["dark"])
    page.emulate_media(color_scheme="light")
    expect(body).to_have_css("background-color", THEMES_BACKGROUND["light"])
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(system).to_have_attribute("aria-pressed", "true")
    page.emulate_media(color_scheme="dark")
    expect(body).to_have_css("background-color", THEMES_BACKGROUND["dark"])


def test_outcomes_are_shown_in_words(dashboard: Dashboard) -> None:
    task_id = create(dashboard.server, "Too slow", {"seconds": "60"}, timeoutSeconds=0.5, maxRetries=0)
    page = dashboard.open()
    task = row(page, task_id)
    expect(task.locator("td.status")).to_have_text("Failed")
    task.get_by_role("button", name="Too slow").click()
    details = page.get_by_role("dialog", name=f"#{task_id} Too slow")
    outcome = details.locator("#details-attempts tr td").nth(4)
    expect(outcome).to_have_text("timed out")
    expect(outcome.locator(".outcome")).to_have_attribute("title", re.compile("ran past the task's timeout"))
    dashboard.screenshot(page)


def test_validation_errors_appear_beside_their_field(dashboard: Dashboard) -> None:
    page = dashboard.open()
    page.get_by_role("button", name="New task").click()
    form = page.get_by_role("dialog", name="New task")
    name = form.get_by_label("Name", exact=True)
    name.fill("   ")
    form.get_by_role("button", name="Create task").click()
    expect(form.locator("#create-name-error")).to_have_text("is required and must not be blank")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_be_focused()

    name.fill("Bad parameters")
    form.get_by_label("Type").select_option("sleep")
    form.get_by_label("Parameter 2 name").fill("fail rate")
    form.get_by_label("Parameter 2 value").fill("0")
    form.get_by_role("button", name="Create task").click()
    expect(form.locator("#create-name-error")).to_be_hidden()
    expect(form.locator("#create-payload-error")).to_contain_text("['fail rate']: key must match")
    expect(form.get_by_label("Parameter 2 name")).to_have_attribute("aria-invalid", "true")
    dashboard.screenshot(page, "-error")

    # The raw JSON view edits the same parameters; numbers become the strings the API takes.
    form.get_by_label("Edit as JSON").check()
    json_text = form.get_by_label("Parameters as JSON")
    assert json.loads(json_text.input_value()) == {"fail rate": "0"}
    json_text.fill('{"seconds": 0.1')
    form.get_by_role("button", name="Create task").click()
    expect(form.locator("#create-payload-error")).to_contain_text("not valid JSON")
    json_text.fill('{"seconds": 0.1}')
    form.get_by_role("button", name="Create task").click()
    expect(form).to_be_hidden()
    expect(page.locator("#tasks-body tr", has_text="Bad parameters").locator("td.status")).to_have_text(
        "Succeeded"
    )
    tasks = rpc(dashboard.server, "ListTasks", {})["tasks"]
    assert [t["payload"]["parameters"] for t in tasks] == [{"seconds": "0.1"}]


def test_phone_width_in_dark_mode(dashboard: Dashboard) -> None:
    for index in range(3):
        create(dashboard.server, f"Phone task {index}", {"seconds": "0"}, description="Fits a small screen")
    create(dashboard.server, "Waiting", {}, delaySeconds=LATER)
    make_schedule(dashboard.server, "Phone schedule", **DAILY)
    page = dashboard.open(scheme="dark", width=390, height=844)
    expect(page.locator("#tasks-body tr")).to_have_count(4)
    expect(card(page, "SUCCEEDED")).to_have_text("3")
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at phone width: {width}"
    expect(page.get_by_role("button", name="New task")).to_be_in_viewport()
    # Keyboard: the first Tab reaches the skip link; a task's name is a button that Enter opens.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to tasks")).to_be_focused()
    page.get_by_role("button", name="Phone task 0").focus()
    page.keyboard.press("Enter")
    details = page.get_by_role("dialog", name=re.compile("Phone task 0"))
    expect(details.locator("#details-timeline li")).to_have_count(3)
    dashboard.screenshot(page, "-details")
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()
    dashboard.screenshot(page)


def test_lost_connection_is_shown_and_recovers(
    dashboard: Dashboard, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = dashboard.open()
    old = dashboard.server
    old.process.kill()  # a crash: no goodbye on the stream
    old.process.wait(10)
    expect(page.locator("#connection")).to_have_attribute("data-state", "lost")
    expect(page.get_by_role("alert").filter(has_text="Connection to the server lost")).to_be_visible()
    dashboard.screenshot(page, "-lost")

    monkeypatch.setattr(conftest, "free_port", lambda: old.port)  # the same address as before
    server = ServerProcess(settings, tmp_path / "server-2.log", WORKER_COUNT="4")
    try:
        server.wait_ready()
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)
        expect(page.locator("#banner")).to_be_hidden()
        task_id = create(server, "After the outage", {"seconds": "0"})
        expect(row(page, task_id).locator("td.status")).to_have_text("Succeeded")
        # The crashed server's worker stopped beating: greyed out as gone, beside the new live one.
        expect(page.locator("#workers-body tr.gone")).to_have_count(1)
        expect(page.locator("#workers-body tr:not(.gone)")).to_contain_text("Live")
        dashboard.screenshot(page)
    finally:
        server.stop()


def test_event_stream_envelopes_split_across_chunks(dashboard: Dashboard) -> None:
    page = dashboard.open()
    # The Connect envelopes of a stream, delivered one byte per chunk: the worst a network can do.
    parsed = page.evaluate(
        """async () => {
            const { envelopes } = await import("/static/api.js");
            const frame = (flag, message) => {
                const data = new TextEncoder().encode(JSON.stringify(message));
                const out = new Uint8Array(5 + data.length);
                out[0] = flag;
                new DataView(out.buffer).setUint32(1, data.length);
                out.set(data, 5);
                return [...out];
            };
            const bytes = [...frame(0, {taskId: 7, status: "RUNNING", details: "é ✓"}),
                           ...frame(0, {keepalive: true}), ...frame(2, {})];
            const body = new ReadableStream({start(controller) {
                for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
                controller.close();
            }});
            const seen = [];
            for await (const envelope of envelopes(body)) seen.push(envelope);
            return seen;
        }"""
    )
    assert parsed == [
        [0, {"taskId": 7, "status": "RUNNING", "details": "é ✓"}],
        [0, {"keepalive": True}],
        [2, {}],
    ]
