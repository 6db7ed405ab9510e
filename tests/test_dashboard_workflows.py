"""The dashboard's workflows (real Chromium, real server): the Workflows panel, a workflow's graph in
layers with its steps' statuses, a step's details linking back to its workflow, Cancel and Retry, who is
offered them, and a layer of many steps that keeps the page readable."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, FloatRect, Locator, Page, expect

from agents import AgentProcess
from conftest import ServerProcess, subprocess_env
from taskservice.config import Settings
from test_dashboard import (
    BROWSER_HOUR,
    Dashboard,
    api_time,
    browser,
    card,
    dashboard,
    rpc,
    screenshot_dir,
    shown_clock,
    zone_where_hour_is,
)

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

__all__ = ["browser", "dashboard", "screenshot_dir"]  # fixtures, used by name

NAME = "nightly <b>etl</b>"  # shown as text, never as markup
HELD = "held"  # a paused queue: a step in it stays QUEUED
# A diamond's steps once A and B ran: C waits in its paused queue, D for C.
STATUSES = {"A": "Succeeded", "B": "Succeeded", "C": "Queued", "D": "Waiting"}


def step(name: str, depends_on: list[str] | None = None, queue: str = "") -> dict[str, Any]:
    """A step of a CreateWorkflowRequest, as JSON: a task that takes no time, in `queue` if named."""
    task = {
        "type": "sleep",
        "payload": {"parameters": {"seconds": "0"}},
        **({"queue": queue} if queue else {}),
    }
    return {"name": name, "task": task, "dependsOn": depends_on or []}


def diamond(server: ServerProcess, token: str = "", name: str = NAME) -> str:
    """A, then B and C, then D; C in a paused queue. Its id (an int64, so a JSON string)."""
    rpc(server, "PauseQueue", {"queue": HELD, "reason": "a step that stays queued"}, token)
    steps = [step("A"), step("B", ["A"]), step("C", ["A"], HELD), step("D", ["B", "C"])]
    workflow_id: str = rpc(server, "CreateWorkflow", {"name": name, "steps": steps}, token)["id"]
    return workflow_id


def steps_of(server: ServerProcess, workflow_id: str, token: str = "") -> dict[str, dict[str, Any]]:
    """The workflow's steps by name, as GetWorkflow returns them."""
    answer = rpc(server, "GetWorkflow", {"id": workflow_id}, token)
    return {s["name"]: s for s in answer["steps"]}


def workflow_row(page: Page, workflow_id: str) -> Locator:
    return page.locator(f'#workflows-body tr[data-key="{workflow_id}"]')


def node(graph: Locator, name: str) -> Locator:
    return graph.locator(f'.node[data-step="{name}"]')


def box(locator: Locator) -> FloatRect:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not shown"
    return found


def test_a_workflow_is_listed_live_and_its_waiting_step_counted(dashboard: Dashboard) -> None:
    server = dashboard.server
    workflow_id = diamond(server)
    created = api_time(rpc(server, "GetWorkflow", {"id": workflow_id})["workflow"]["createdAt"])
    # The page's clock stands 13 s after the workflow was created, in a zone where that is BROWSER_HOUR.
    now = created + timedelta(seconds=13)
    _, zone = zone_where_hour_is(now, BROWSER_HOUR)
    page = dashboard.open(now=now)

    # Listed, live: A and B run and succeed; C waits in its paused queue, D for C.
    row = workflow_row(page, workflow_id)
    expect(row.locator(".name")).to_have_text(NAME)
    expect(row.locator(".what")).to_have_text(f"#{workflow_id} · by anonymous")
    expect(row.locator("td.status")).to_have_text("Running")
    expect(row.locator(".progress")).to_have_text("2/4 succeeded")
    expect(row.locator(".others")).to_have_text("1 waiting · 1 queued")
    expect(row.locator(".stepbar > span")).to_have_count(3)  # succeeded, queued, waiting
    expect(row.locator("td.created time")).to_have_text("13 s ago")
    expect(row.locator("td.created")).to_contain_text(shown_clock(created, zone))
    expect(page.locator("#workflows-summary")).to_have_text("1 workflow · 1 running")
    # WAITING is a status of its own: a card, a filter, a badge.
    expect(card(page, "WAITING")).to_have_text("1")
    expect(card(page, "QUEUED")).to_have_text("1")
    page.locator("#filter-status").select_option("WAITING")
    tasks = page.locator("#tasks-body tr[data-key]")
    expect(tasks).to_have_count(1)
    expect(tasks.locator("td.name")).to_have_text("D")
    expect(tasks.locator("td.status")).to_have_text("Waiting")
    dashboard.screenshot(page)


def test_a_workflows_graph_has_its_steps_in_layers_and_they_open_their_tasks(dashboard: Dashboard) -> None:
    server = dashboard.server
    workflow_id = diamond(server)
    page = dashboard.open()
    row = workflow_row(page, workflow_id)
    expect(row.locator(".progress")).to_have_text("2/4 succeeded")

    # Its graph: 4 nodes in 3 layers, each below the steps it depends on, with their statuses.
    row.get_by_role("button", name=f"Open workflow {NAME}").click()
    graph = page.get_by_role("dialog", name=NAME)
    expect(graph.locator("#workflow-meta")).to_contain_text("2/4 succeeded · 1 waiting · 1 queued")
    layers = graph.locator(".layer")
    expect(layers).to_have_count(3)
    for index, names in enumerate((["A"], ["B", "C"], ["D"])):
        layer = graph.get_by_role("group", name=f"Layer {index + 1} of 3")
        expect(layer.locator(".node .node-name")).to_have_text(names)
    for name, status in STATUSES.items():
        expect(node(graph, name).locator(".badge")).to_have_text(status)
    expect(graph.get_by_role("button", name="C: sleep, Queued")).to_be_visible()
    expect(graph.get_by_role("button", name="D: sleep, Waiting")).to_be_visible()
    # Laid out top to bottom: B and C side by side below A, D below both; an edge per dependency.
    a, b, c, d = (box(node(graph, name)) for name in "ABCD")
    assert a["y"] + a["height"] < b["y"] == c["y"]
    assert c["y"] + c["height"] < d["y"]
    assert b["x"] + b["width"] <= c["x"]
    edges = graph.locator("svg.edges path.edge")
    expect(edges).to_have_count(4)
    expect(graph.locator("svg.edges path.edge.s-succeeded")).to_have_count(3)  # from A twice, from B
    expect(graph.locator("svg.edges path.edge.s-queued")).to_have_count(1)  # from C
    dashboard.screenshot(page, "-graph")

    # A node opens its step's task; the task's details name its workflow, step and dependencies.
    ids = {name: s["taskId"] for name, s in steps_of(server, workflow_id).items()}
    node(graph, "D").click()
    details = page.get_by_role("dialog", name=f"#{ids['D']} D")
    fields = details.locator("#details-fields")
    expect(fields).to_contain_text("Waiting")
    workflow_field = fields.locator("dd", has_text="step D")
    expect(workflow_field).to_have_text(f"{NAME} (#{workflow_id}), step D")
    depends = fields.locator("dd .dependencies")
    expect(depends).to_have_text(re.compile(rf"#{ids['B']} B\s*#{ids['C']} C"))
    depends.get_by_role("button", name=f"#{ids['C']} C").click()  # to a task it depends on
    details = page.get_by_role("dialog", name=f"#{ids['C']} C")
    expect(details.locator("#details-fields")).to_contain_text(f"{NAME} (#{workflow_id}), step C")
    dashboard.screenshot(page, "-details")
    details.locator("#details-fields").get_by_role("button", name=NAME).click()  # back to the graph
    expect(details).to_be_hidden()
    expect(graph).to_be_visible()
    expect(page).to_have_url(re.compile(f"workflow={workflow_id}"))
    # The open graph is in the address: a link to it opens it.
    linked = dashboard.open(hash=f"#workflow={workflow_id}")
    expect(node(linked.get_by_role("dialog", name=NAME), "D").locator(".badge")).to_have_text("Waiting")


def test_cancel_a_workflow_in_its_graph_then_retry_it_from_its_row(dashboard: Dashboard) -> None:
    server = dashboard.server
    workflow_id = diamond(server)
    page = dashboard.open()
    row = workflow_row(page, workflow_id)
    expect(row.locator(".others")).to_have_text("1 waiting · 1 queued")  # A and B succeeded
    row.get_by_role("button", name=f"Open workflow {NAME}").click()
    graph = page.get_by_role("dialog", name=NAME)
    expect(graph.get_by_role("button", name="Retry workflow")).to_be_hidden()

    # Cancel: C and D are cancelled; what succeeded stays so. Then Retry is offered instead.
    graph.get_by_role("button", name="Cancel workflow").click()
    confirm = page.get_by_role("dialog", name=f"Cancel workflow {NAME}?")
    expect(confirm).to_contain_text("(1 waiting · 1 queued)")
    confirm.get_by_role("button", name="Cancel workflow").click()
    expect(page.locator(".notice").filter(has_text=f"Workflow {NAME}: 2 steps cancelled.")).to_be_visible()
    for name, status in {**STATUSES, "C": "Cancelled", "D": "Cancelled"}.items():
        expect(node(graph, name).locator(".badge")).to_have_text(status)
    expect(graph.locator("#workflow-meta .badge")).to_have_text("Cancelled")
    expect(graph.get_by_role("button", name="Cancel workflow")).to_be_hidden()
    expect(graph.get_by_role("button", name="Retry workflow")).to_be_visible()
    assert {n: s["status"] for n, s in steps_of(server, workflow_id).items()} == {
        "A": "SUCCEEDED",
        "B": "SUCCEEDED",
        "C": "CANCELLED",
        "D": "CANCELLED",
    }
    dashboard.screenshot(page, "-cancelled")
    page.keyboard.press("Escape")
    expect(graph).to_be_hidden()
    expect(page).not_to_have_url(re.compile("workflow="))
    expect(row.locator("td.status")).to_have_text("Cancelled")
    expect(row.locator(".others")).to_have_text("2 cancelled")
    # Its steps' tasks are finished, and retried only with their workflow: no Retry of their own.
    task_statuses = page.locator("#tasks-body tr[data-key] td.status")
    expect(task_statuses).to_have_text(["Cancelled", "Cancelled", "Succeeded", "Succeeded"])
    retry_task = re.compile(r"^Retry task")
    expect(page.locator("#tasks-body").get_by_role("button", name=retry_task)).to_have_count(0)

    # Retry from its row: the cancelled steps wait for their parents again, as at creation.
    row.get_by_role("button", name=f"Retry workflow {NAME}").click()
    confirm = page.get_by_role("dialog", name=f"Retry workflow {NAME}?")
    confirm.get_by_role("button", name="Retry workflow").click()
    expect(row.locator("td.status")).to_have_text("Running")
    expect(row.locator(".others")).to_have_text("1 waiting · 1 queued")
    expect(row.get_by_role("button", name=f"Cancel workflow {NAME}")).to_be_visible()
    assert {n: s["status"] for n, s in steps_of(server, workflow_id).items()} == {
        "A": "SUCCEEDED",
        "B": "SUCCEEDED",
        "C": "QUEUED",
        "D": "WAITING",
    }


def test_the_graph_follows_a_running_workflow_live(dashboard: Dashboard) -> None:
    """Opened while its first step is held (its type is paused), it follows the steps as they run."""
    server = dashboard.server
    rpc(server, "PauseQueue", {"type": "sleep", "reason": "until the graph is open"})
    steps = [step("first"), step("second", ["first"])]
    workflow_id = rpc(server, "CreateWorkflow", {"name": "live", "steps": steps})["id"]
    page = dashboard.open()
    workflow_row(page, workflow_id).locator("td.steps").click()  # a click anywhere on its row opens it
    graph = page.get_by_role("dialog", name="live")
    expect(node(graph, "first").locator(".badge")).to_have_text("Queued")
    expect(node(graph, "second").locator(".badge")).to_have_text("Waiting")
    expect(graph.get_by_role("button", name="Cancel workflow")).to_be_visible()
    rpc(server, "ResumeQueue", {"type": "sleep"})
    expect(node(graph, "second").locator(".badge")).to_have_text("Succeeded")
    expect(node(graph, "first").locator(".badge")).to_have_text("Succeeded")
    expect(graph.locator("#workflow-meta .badge")).to_have_text("Succeeded")
    expect(graph.locator("#workflow-meta .progress")).to_have_text("2/2 succeeded")
    expect(graph.get_by_role("button", name=re.compile("(Cancel|Retry) workflow"))).to_have_count(0)
    expect(workflow_row(page, workflow_id).locator("td.status")).to_have_text("Succeeded")


def test_a_viewer_sees_workflows_and_their_graphs_without_cancel_or_retry(
    browser: Browser, token_server: tuple[ServerProcess, dict[str, str]], screenshot_dir: Path
) -> None:
    server, secrets = token_server  # no worker: A waits in its queue, the others for their parents
    workflow_id = diamond(server, secrets["operator"], name="etl")
    changes = re.compile(r"(Cancel|Retry) workflow")
    board = Dashboard(browser, server, "test_a_viewer_sees_workflows", screenshot_dir)
    try:
        viewer = board.open(token=secrets["viewer"])
        row = workflow_row(viewer, workflow_id)
        expect(row.locator(".what")).to_have_text(f"#{workflow_id} · by token:t-operator")
        expect(row.locator(".progress")).to_have_text("0/4 succeeded")
        expect(row.locator(".others")).to_have_text("3 waiting · 1 queued")
        expect(viewer.get_by_role("button", name=changes)).to_have_count(0)
        row.get_by_role("button", name="Open workflow etl").click()
        graph = viewer.get_by_role("dialog", name="etl")
        expect(node(graph, "A").locator(".badge")).to_have_text("Queued")
        expect(graph.locator(".node .badge", has_text="Waiting")).to_have_count(3)
        expect(graph.get_by_role("button", name=changes)).to_have_count(0)
        board.screenshot(viewer)

        operator = board.open(token=secrets["operator"])
        expect(operator.get_by_role("button", name="Cancel workflow etl")).to_be_visible()
        workflow_row(operator, workflow_id).get_by_role("button", name="Open workflow etl").click()
        graph = operator.get_by_role("dialog", name="etl")
        expect(graph.get_by_role("button", name="Cancel workflow")).to_be_visible()
    finally:
        board.close()


@pytest.fixture
def idle_dashboard(
    browser: Browser, workerless_server: ServerProcess, screenshot_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Dashboard]:
    """The dashboard of a server that runs no task: a workflow's steps stay where they were created."""
    board = Dashboard(browser, workerless_server, request.node.name, screenshot_dir)
    yield board
    board.close()


WIDE = 120


def test_a_layer_of_many_steps_wraps_in_a_frame_with_its_edges_bundled(idle_dashboard: Dashboard) -> None:
    server = idle_dashboard.server
    parts = [f"part-{i:03d}" for i in range(WIDE)]
    steps = [step("split"), *(step(p, ["split"]) for p in parts), step("join", parts)]
    workflow_id = rpc(server, "CreateWorkflow", {"name": "fan-out", "steps": steps})["id"]
    page = idle_dashboard.open()
    workflow_row(page, workflow_id).get_by_role("button", name="Open workflow fan-out").click()
    graph = page.get_by_role("dialog", name="fan-out")
    wide = graph.get_by_role("group", name="Layer 2 of 3")
    expect(wide.locator(".node")).to_have_count(WIDE)
    expect(wide).to_have_class(re.compile(r"\bmany\b"))
    expect(wide.locator(".layer-caption")).to_have_text(f"{WIDE} steps")
    # Wrapped in rows, not a line off the screen: nothing scrolls sideways, the graph nor the page.
    body = graph.locator(".workflow-body")
    widths = body.evaluate("(node) => [node.scrollWidth, node.clientWidth]")
    assert widths[0] <= widths[1], f"the graph scrolls sideways: {widths}"
    rows = {box(n)["y"] for n in wide.locator(".node").all()}
    assert 5 < len(rows) < WIDE / 2, f"{len(rows)} rows"
    # 240 edges are two trunks, split to the frame and the frame to join; a step's own edges show when
    # it is pointed at.
    expect(graph.locator("path.trunk")).to_have_count(2)
    bundled = graph.locator("path.edge.bundled")
    expect(bundled).to_have_count(2 * WIDE)
    expect(bundled.first).to_be_hidden()
    node(graph, "part-042").hover()
    expect(graph.locator("path.edge.bundled.hot")).to_have_count(2)
    expect(graph.locator("path.edge.bundled.hot").first).to_be_visible()
    expect(node(graph, "join").locator(".badge")).to_have_text("Waiting")
    idle_dashboard.screenshot(page, "-graph")


def test_layers_place_spawned_children_below_their_spawner(dashboard: Dashboard) -> None:
    """Children spawned at run time (`spawned_by`) go below the step that spawned it, which may wait
    for them (it depends on them: that edge does not count), and the steps after it wait for them too."""
    page = dashboard.open()
    placed = page.evaluate(
        """async () => {
            const { layers, edges } = await import("/static/graph.js");
            const step = (name, dependsOn = [], spawnedBy = "") => ({ name, dependsOn, spawnedBy });
            const kids = ["fan/a", "fan/b", "fan/c"];
            const steps = [step("root"), step("fan", ["root", ...kids]), step("after", ["fan", ...kids]),
                           ...kids.map((k) => step(k, [], "fan")),
                           step("loop-1", ["loop-2"]), step("loop-2", ["loop-1"])];
            return { layers: layers(steps), edges: edges(steps).filter(([, to]) => !to.startsWith("loop")) };
        }"""
    )
    assert placed["layers"] == [
        ["root", "loop-2"],  # the cycle (never sent) is cut where it closes
        ["fan", "loop-1"],
        ["fan/a", "fan/b", "fan/c"],
        ["after"],
    ]
    assert sorted(map(tuple, placed["edges"])) == sorted(
        [("root", "fan", "needs"), ("fan", "after", "needs")]
        + [("fan", k, "spawned") for k in ("fan/a", "fan/b", "fan/c")]
        + [(k, "after", "needs") for k in ("fan/a", "fan/b", "fan/c")]
    )


SPAWNED = 120
WORKFLOW_WORKER = str(Path(__file__).with_name("workflow_worker.py"))


def test_children_spawned_at_run_time_appear_live_in_a_layer_below_their_spawner(
    idle_dashboard: Dashboard, settings: Settings, tmp_path: Path
) -> None:
    """A step spawns 120 children (a worker process with the workflow tests' task types): the open
    graph grows a framed layer of them below it, the step after it below them; a child's details name
    the step that spawned it."""
    server = idle_dashboard.server
    env = subprocess_env(settings, GATE_DIR=str(tmp_path))
    worker = AgentProcess([sys.executable, WORKFLOW_WORKER, "--worker"], env, tmp_path / "worker.log")
    try:
        page = idle_dashboard.open()
        expect(page.locator("#workers-body")).to_contain_text("wf_fan_out")  # its types are registered
        rpc(server, "PauseQueue", {"type": "wf_fan_out", "reason": "until the graph is open"})
        steps = [
            {"name": "fan", "task": {"type": "wf_fan_out", "payload": {"parameters": {"n": str(SPAWNED)}}}},
            {"name": "total", "task": {"type": "wf_sum", "payload": {}}, "dependsOn": ["fan"]},
        ]
        workflow_id = rpc(server, "CreateWorkflow", {"name": "spawning", "steps": steps})["id"]
        workflow_row(page, workflow_id).get_by_role("button", name="Open workflow spawning").click()
        graph = page.get_by_role("dialog", name="spawning")
        expect(graph.locator(".layer")).to_have_count(2)
        expect(node(graph, "fan").locator(".badge")).to_have_text("Queued")
        expect(node(graph, "total").locator(".badge")).to_have_text("Waiting")

        rpc(server, "ResumeQueue", {"type": "wf_fan_out"})
        expect(node(graph, "total").locator(".badge")).to_have_text("Succeeded", timeout=60_000)
        expect(graph.locator("#workflow-meta .progress")).to_have_text(
            f"{SPAWNED + 2}/{SPAWNED + 2} succeeded"
        )
        children = graph.get_by_role("group", name="Layer 2 of 3")
        expect(children.locator(".node")).to_have_count(SPAWNED)
        expect(children.locator(".layer-caption")).to_have_text(f"{SPAWNED} steps, spawned by fan")
        expect(graph.get_by_role("group", name="Layer 1 of 3").locator(".node-name")).to_have_text(["fan"])
        expect(graph.get_by_role("group", name="Layer 3 of 3").locator(".node-name")).to_have_text(["total"])
        # The spawner's edge to its children is one dashed trunk; theirs to the step after, another.
        expect(graph.locator("path.trunk.spawned")).to_have_count(1)
        expect(graph.locator("path.trunk.needs")).to_have_count(1)
        widths = graph.locator(".workflow-body").evaluate("(node) => [node.scrollWidth, node.clientWidth]")
        assert widths[0] <= widths[1], f"the graph scrolls sideways: {widths}"
        idle_dashboard.screenshot(page, "-graph")

        # A child shows its own name under its spawner's; its details link to the spawner's task.
        child = children.locator(".node").first
        full_name = child.get_attribute("data-step") or ""
        assert full_name.startswith("fan/"), full_name
        expect(child.locator(".node-name")).to_have_text(full_name.removeprefix("fan/"))
        child.click()
        fan_id = steps_of(server, workflow_id)["fan"]["taskId"]
        fields = page.get_by_role("dialog", name=re.compile(r"^#\d+ ")).locator("#details-fields")
        expect(fields).to_contain_text(f"spawning (#{workflow_id}), step {full_name}")
        expect(fields.locator("dd").get_by_role("button", name=f"#{fan_id} fan")).to_be_visible()
    finally:
        worker.stop()
