"""The dashboard an operator lives in (issue 24), in a real Chromium against a real server: the chart's
time range and the figures by type, the task list's last-attempt columns, its orders and id search, and a
worker's page; then the same at a million tasks (tests/million.py), each within a page's budget."""

from __future__ import annotations

import importlib.metadata
import re
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

import million
from conftest import ServerProcess
from taskservice.config import Settings
from test_dashboard import Dashboard, browser, create, dashboard, row, rpc, screenshot_dir

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

__all__ = ["browser", "dashboard", "screenshot_dir"]  # fixtures, used by name

ERROR = "RuntimeError: simulated failure (fail_rate=1)"
BUDGET_MS = 3000  # a page's budget on this shared 2-core machine: a guard, not a benchmark


def type_row(page: Page, task_type: str) -> Locator:
    return page.locator(f'#type-stats-body tr[data-key="{task_type}"]')


def sort_by_the_headers(page: Page, ok: int, bad: int) -> None:
    """The task list's orders from its headers: `ok` ("Nightly report") was created before `bad`
    ("Import orders", failed)."""
    # Oldest first from the Created header, and back.
    page.locator("#sort-order").click()
    expect(page.locator("#sort-created")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#tasks-body tr[data-key]").first).to_have_attribute("data-key", str(ok))
    expect(page).to_have_url(re.compile(r"order=created_asc"))
    page.locator("#sort-order").click()
    expect(page.locator("#tasks-body tr[data-key]").first).to_have_attribute("data-key", str(bad))

    # By another column's header ("Import orders" before "Nightly report"), and the other way.
    first = page.locator("#tasks-body tr[data-key]").first
    page.locator("#sort-name button").click()
    expect(page.locator("#sort-name")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#sort-created")).not_to_have_attribute("aria-sort", re.compile("."))
    expect(first).to_have_attribute("data-key", str(bad))
    expect(page).to_have_url(re.compile(r"order=name_asc"))
    page.locator("#sort-name button").click()
    expect(page.locator("#sort-name")).to_have_attribute("aria-sort", "descending")
    expect(first).to_have_attribute("data-key", str(ok))
    page.locator("#sort-status button").click()  # Failed before Succeeded
    expect(first).to_have_attribute("data-key", str(bad))
    expect(page.locator("#sort-duration button")).to_have_attribute(
        "title", "Of its last attempt. Click to sort by duration, descending"
    )
    page.locator("#sort-order").click()  # back to creation's order, newest first
    expect(page.locator("#sort-created")).to_have_attribute("aria-sort", "descending")
    expect(first).to_have_attribute("data-key", str(bad))


def test_figures_by_type_over_a_range_and_the_task_lists_last_attempt_columns(dashboard: Dashboard) -> None:
    server = dashboard.server
    ok = create(server, "Nightly report", {"seconds": "0"})
    bad = create(server, "Import orders", {"fail_rate": "1"}, maxRetries=0)
    page = dashboard.open()
    expect(row(page, bad).locator("td.status")).to_have_text("Failed")
    expect(row(page, ok).locator("td.status")).to_have_text("Succeeded")

    # By type over the last 15 minutes: both attempts, one of them failed.
    sleep = type_row(page, "sleep")
    expect(sleep.locator("td.finished")).to_have_text("2")
    expect(sleep.locator("td.failure-rate")).to_have_text("50.0%")
    expect(page.locator("#chart svg")).to_have_attribute(
        "aria-label", re.compile(r"^Last 15 minutes: 1 succeeded, 1 failed")
    )
    # Another range: the chart and the figures follow it, and the address keeps it.
    page.locator("#chart-range").select_option("604800")
    expect(page.locator("#chart svg")).to_have_attribute(
        "aria-label", re.compile(r"^Last 7 days: 1 succeeded, 1 failed")
    )
    expect(page.locator("#type-stats-summary")).to_have_text("Attempts finished in the last 7 days")
    expect(page.locator("#chart")).to_contain_text("−6 d")
    expect(page).to_have_url(re.compile(r"range=604800"))
    dashboard.screenshot(page, "-range")

    # Each task's last attempt: its duration, its worker and its error.
    [attempt] = rpc(server, "ListTaskExecutions", {"id": bad})["executions"]
    failed = row(page, bad)
    expect(failed.locator("td.last-error")).to_have_text(ERROR)
    expect(failed.locator("td.worker button")).to_have_text(attempt["workerId"])
    expect(failed.locator("td.duration")).to_have_text(re.compile(r"^\d+(\.\d+)? m?s$"))
    expect(row(page, ok).locator("td.last-error")).to_have_text("")

    sort_by_the_headers(page, ok, bad)

    # An id in the search shows that task alone; Enter opens it.
    search = page.get_by_label("Search by name or id")
    search.fill(f"#{ok}")
    expect(page.locator("#tasks-body tr[data-key]")).to_have_count(1)
    expect(row(page, ok)).to_be_visible()
    search.press("Enter")
    expect(page.get_by_role("dialog", name=f"#{ok} Nightly report")).to_be_visible()
    page.keyboard.press("Escape")
    search.fill("")
    expect(page.locator("#tasks-body tr[data-key]")).to_have_count(2)

    # The worker's page, from the row.
    failed.locator("td.worker button").click()
    shows_the_worker_page(dashboard, page, attempt["workerId"], ok, bad)


def shows_the_worker_page(dashboard: Dashboard, page: Page, worker_id: str, ok: int, bad: int) -> None:
    """What the worker is, its failure and its attempts; a task opens from it."""
    worker = page.get_by_role("dialog", name=worker_id)
    expect(worker).to_be_visible()
    expect(worker.locator("#worker-page-fields")).to_contain_text("worker (claims from PostgreSQL)")
    expect(worker.locator("#worker-page-fields")).to_contain_text(importlib.metadata.version("taskservice"))
    expect(worker.locator("#worker-page-fields")).to_contain_text("run_query, send_email, sleep")
    expect(worker.locator("#worker-page-state")).to_have_text("Live")
    expect(worker.locator("#worker-failures tr")).to_have_count(1)
    expect(worker.locator("#worker-failures tr").first).to_contain_text(f"#{bad}")
    expect(worker.locator("#worker-failures tr").first).to_contain_text(ERROR)
    expect(worker.locator("#worker-attempts tr")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"worker="))
    dashboard.screenshot(page, "-worker")
    worker.get_by_role("button", name=f"#{ok}").click()
    details = page.get_by_role("dialog", name=f"#{ok} Nightly report")
    expect(details).to_be_visible()
    # Escape closes the top one, then the worker's; a task's attempt opens its worker's page again.
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()
    expect(worker).to_be_visible()
    page.keyboard.press("Escape")
    expect(worker).to_be_hidden()
    expect(page).not_to_have_url(re.compile(r"worker="))
    row(page, ok).get_by_role("button", name=f"Open details of task {ok}").click()
    details.locator("#details-attempts").get_by_role("button", name=worker_id).click()
    expect(worker).to_be_visible()


def test_a_worker_opens_from_the_workers_panel(dashboard: Dashboard) -> None:
    page = dashboard.open()
    [own] = rpc(dashboard.server, "ListWorkers", {})["workers"]
    page.locator("#workers-body").get_by_role("button", name=own["id"]).click()
    worker = page.get_by_role("dialog", name=own["id"])
    expect(worker.locator("#worker-page-fields")).to_contain_text(f"{own['host']} · pid {own['pid']}")
    expect(worker.locator("#worker-attempts")).to_have_text("It has run no attempt yet.")
    expect(worker.locator("#worker-failures")).to_have_text("No failure among its latest attempts.")


# -- at a million tasks ----------------------------------------------------------------------------


@pytest.fixture
def million_server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server (running no task itself) on a database of a million finished tasks and their attempts."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for statement in million.FILL:
            conn.execute(statement)
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def within_budget(started: float, what: str) -> None:
    elapsed = (time.monotonic() - started) * 1000
    assert elapsed < BUDGET_MS, f"{what} took {elapsed:.0f} ms"


def sort_a_million(page: Page) -> None:
    """Sorting by another column than creation at a million tasks: refused, then on a narrowed search."""
    # Another column sorts every matching task: refused for a million, said so, newest first again.
    page.locator("#sort-duration button").click()
    expect(page.locator("#notices .notice.error")).to_contain_text(
        "sorting by duration takes at most 10,000 matching tasks (1,000,000 match)"
    )
    expect(page.locator("#sort-created")).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#tasks-body tr[data-key]").first).to_have_attribute("data-key", str(million.TASKS))
    # Narrowed by a search to the 11 named "bulk 12345…", it sorts: the longest (7 s) first.
    started = time.monotonic()
    page.get_by_label("Search by name or id").fill("bulk 12345")
    expect(page.locator("#tasks-body tr[data-key]")).to_have_count(11)
    within_budget(started, "a search by name")
    started = time.monotonic()
    page.locator("#sort-duration button").click()
    expect(page.locator("#sort-duration")).to_have_attribute("aria-sort", "descending")
    named = [12345, *range(123450, 123460)]
    longest = sorted(named, key=lambda g: (g % 7 + 1, g), reverse=True)  # ties: newest first
    ranked = page.locator("#tasks-body tr[data-key]")
    expect(ranked.nth(0)).to_have_attribute("data-key", str(longest[0]))
    expect(ranked.nth(1)).to_have_attribute("data-key", str(longest[1]))
    within_budget(started, "a search sorted by duration")


@pytest.mark.slow
def test_at_a_million_tasks_the_figures_and_a_workers_page_render_within_the_budget(
    browser: Browser, million_server: ServerProcess, screenshot_dir: Path, request: pytest.FixtureRequest
) -> None:
    board = Dashboard(browser, million_server, request.node.name, screenshot_dir)
    try:
        started = time.monotonic()
        page = board.open()
        for task_type in million.TYPES:  # about 150 attempts of each in the last 15 minutes
            expect(type_row(page, task_type).locator("td.finished")).to_have_text(re.compile(r"^1\d\d$"))
        within_budget(started, "the page with its figures by type (15 min)")

        for seconds, shown in ((86400, r"^14,\d\d\d$"), (604800, r"^10\d,\d\d\d$")):
            started = time.monotonic()
            page.locator("#chart-range").select_option(str(seconds))
            expect(type_row(page, "sleep").locator("td.finished")).to_have_text(re.compile(shown))
            within_budget(started, f"the figures by type over {seconds} s")
        expect(type_row(page, "sleep").locator("td.failure-rate")).to_have_text("10.0%")
        board.screenshot(page, "-week")

        # A busy worker's page: its latest 50 attempts, and its failures among its latest 1000.
        started = time.monotonic()
        page.locator("#workers-body").get_by_role("button", name="worker-2").click()
        worker = page.get_by_role("dialog", name="worker-2")
        expect(worker.locator("#worker-attempts tr")).to_have_count(50)
        expect(worker.locator("#worker-failures tr")).to_have_count(20)
        within_budget(started, "a busy worker's page")
        expect(worker.locator("#worker-attempts tr").first).to_contain_text(f"#{million.TASKS - 2}")
        board.screenshot(page, "-worker")

        # A worker gone for 20 days, its attempts the oldest of the million: by its address.
        started = time.monotonic()
        gone = board.open(hash=f"#worker={million.GONE}")
        worker = gone.get_by_role("dialog", name=million.GONE)
        expect(worker.locator("#worker-page-state")).to_have_text("Stopped")
        expect(worker.locator("#worker-attempts tr")).to_have_count(50)
        expect(worker.locator("#worker-attempts tr").first).to_contain_text(f"#{million.GONE_RAN}")
        within_budget(started, "a gone worker's page")

        # The task list, oldest first: the first task of the million.
        started = time.monotonic()
        gone.keyboard.press("Escape")
        gone.locator("#sort-order").click()
        expect(gone.locator("#tasks-body tr[data-key]").first).to_have_attribute("data-key", "1")
        expect(row(gone, 1).locator("td.worker button")).to_have_text(million.GONE)
        within_budget(started, "the task list oldest first")

        sort_a_million(gone)
    finally:
        board.close()


def test_a_tasks_trace_id_links_to_the_configured_trace_viewer(
    browser: Browser, settings: Settings, tmp_path: Path, screenshot_dir: Path, request: pytest.FixtureRequest
) -> None:
    """TRACE_UI_URL, {trace_id} standing for the id: a task's details link its trace there."""
    server = ServerProcess(
        settings,
        tmp_path / "server.log",
        WORKER_COUNT="0",
        TRACE_UI_URL="http://traces.example/trace/{trace_id}",
    )
    board = Dashboard(browser, server, request.node.name, screenshot_dir)
    try:
        server.wait_ready()
        traced = create(server, "Traced", {"seconds": "0"}, delaySeconds=3600)
        plain = create(server, "Untraced", {"seconds": "0"}, delaySeconds=3600)
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE tasks SET trace_parent = %s WHERE id = %s",
                (f"00-{trace_id}-00f067aa0ba902b7-01", traced),
            )
        page = board.open()
        row(page, traced).get_by_role("button", name=f"Open details of task {traced}").click()
        details = page.get_by_role("dialog", name=f"#{traced} Traced")
        link = details.get_by_role("link", name=trace_id)
        expect(link).to_have_attribute("href", f"http://traces.example/trace/{trace_id}")
        details.get_by_role("button", name="Close").click()
        row(page, plain).get_by_role("button", name=f"Open details of task {plain}").click()
        untraced = page.get_by_role("dialog", name=f"#{plain} Untraced")
        expect(untraced).to_be_visible()
        expect(untraced.locator("dt", has_text="Trace")).to_be_hidden()
    finally:
        board.close()
        server.stop()
