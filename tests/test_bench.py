"""`task-cli bench --quick` runs every scenario to the end and loses no task; speed is never asserted.
What the benchmark reads from the database and the processes to show the limits and workflow
scenarios' figures is checked on its own, against a real PostgreSQL."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import psycopg
import pytest
from rich.console import Console

from taskservice import model
from taskservice.bench.context import sql
from taskservice.bench.cpu import (
    WORKER_APPLICATION,
    CpuSplit,
    CpuTimes,
    cpu_times,
    named_connections,
    split_figures,
)
from taskservice.bench.results import CPU_UNIT, Figure, Report, ScenarioResult
from taskservice.bench.scenarios.workflows import fan_out_fan_in
from taskservice.bench.table import render
from taskservice.config import Settings
from taskservice.model import Status
from taskservice.store import Pool, Store

SCENARIOS = {
    "ceiling",
    "enqueue",
    "processing",
    "peer",
    "latency",
    "scale",
    "memory",
    "cli_start",
    "client",
    "agents",
    "limits",
    "workflows",
    "tracing",
}
WITHOUT_TASKS = {"memory", "cli_start"}  # they measure processes, not tasks


def bench_env(pg_server_url: str, tmp_path: Path) -> dict[str, str]:
    variables = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in variables and k != "TEST_DATABASE_URL"}
    env["DATABASE_URL"] = pg_server_url  # the bench makes a database of its own there, and drops it
    env["EMBEDDED_DATA_DIR"] = str(tmp_path / "unused-embedded")
    return env


def assert_workflow_figures(report: dict[str, Any]) -> None:
    """Scenario l: the workflow's rate and CPU beside the same tasks without dependencies, and
    release_children called once per statement that finished steps (counted: the test server's role
    is a superuser)."""
    flows = {f["key"]: f for s in report["scenarios"] if s["name"] == "workflows" for f in s["figures"]}
    kinds = ("independent", "workflow")
    assert set(flows) == {
        *(f"workflows.{kind}" for kind in kinds),
        *(f"workflows.{kind}_cpu_{part}" for kind in kinds for part in ("workers", "postgresql")),
        "workflows.finish_statements",
        "workflows.release_calls",
    }
    assert flows["workflows.workflow"]["raw_key"] == "workflows.independent"
    assert flows["workflows.workflow"]["raw"] > 0
    assert flows["workflows.workflow"]["value"] > 0
    assert "1 → 98 → 1" in flows["workflows.workflow"]["label"]  # --quick: 100 steps
    for part in ("workers", "postgresql"):
        cpu = flows[f"workflows.workflow_cpu_{part}"]
        assert cpu["raw_key"] == f"workflows.independent_cpu_{part}"
        assert math.isnan(cpu["value"]) or cpu["value"] > 0, cpu
    statements = flows["workflows.finish_statements"]["value"]
    assert statements >= 2 * 3  # a warm-up and one round: the root, the middle steps, the last step
    assert flows["workflows.release_calls"]["value"] == statements
    assert flows["workflows.release_calls"]["met"] is True


def assert_tracing_figures(report: dict[str, Any]) -> None:
    """Scenario m: the drain with tracing on beside the same drain with it off (the otel extra is a dev
    dependency), each with its CPU per task; the spans really went over HTTP to the bench's receiver
    from the workers with tracing on, and nothing from those with it off."""
    scenario = next(s for s in report["scenarios"] if s["name"] == "tracing")
    traced = {f["key"]: f for f in scenario["figures"]}
    modes = ("off", "on")
    assert set(traced) == {
        *(f"tracing.{mode}" for mode in modes),
        *(f"tracing.{mode}_cpu_{part}" for mode in modes for part in ("workers", "postgresql")),
        "tracing.off_requests",
        "tracing.on_requests",
        "tracing.on_spans",
    }
    assert traced["tracing.off"]["raw_key"] == "processing.workers_4"  # scenario b's drain, same run
    assert traced["tracing.off"]["raw"] > 0
    assert traced["tracing.on"]["raw_key"] == "tracing.off"
    assert traced["tracing.on"]["value"] > 0
    assert traced["tracing.on"]["ratio"] > 0
    for part in ("workers", "postgresql"):
        on = traced[f"tracing.on_cpu_{part}"]
        assert on["raw_key"] == f"tracing.off_cpu_{part}"
        assert math.isnan(on["value"]) or on["value"] > 0, on
    assert traced["tracing.on_cpu_workers"]["value"] > 0
    assert traced["tracing.off_requests"]["value"] == 0
    assert traced["tracing.off_requests"]["met"] is True
    assert traced["tracing.on_requests"]["value"] >= 1
    assert traced["tracing.on_requests"]["met"] is True
    assert traced["tracing.on_requests"]["details"]["bad"] == 0
    # Every task drained with tracing on: its attempt's span and its plugin call's, none dropped.
    assert traced["tracing.on_spans"]["value"] == 2
    assert scenario["details"]["services"] == ["taskservice-bench-worker"]


def assert_cpu_total(figure: dict[str, Any], parts: set[str]) -> None:
    """A CPU total per 1,000 tasks: positive, and its rounds' parts (`parts` and PostgreSQL's) adding
    up to it in the round that cost the least."""
    assert figure["unit"] == CPU_UNIT
    assert figure["value"] > 0, figure
    rounds = figure["details"]["rounds"]
    assert rounds
    assert all(set(r) == {*parts, "postgresql"} for r in rounds), rounds
    assert min(sum(r.values()) for r in rounds) == pytest.approx(figure["value"], abs=0.1 * len(parts) + 0.1)


def assert_peer_figures(report: dict[str, Any]) -> None:
    """Scenario g (pgqueuer is a dev dependency): the rates, and the CPU each drain cost per 1,000 tasks
    by part, ours beside pgqueuer's, our total's ratio to pgqueuer's from the same run's two totals."""
    peer = {f["key"]: f for s in report["scenarios"] if s["name"] == "peer" for f in s["figures"]}
    assert set(peer) == {
        "peer.pgqueuer",
        "peer.ours",
        "peer.enqueue_pgqueuer",
        "peer.enqueue_many",
        "peer.create_tasks",
        *(f"peer.pgqueuer_cpu{part}" for part in ("", "_consumers", "_postgresql")),
        *(f"peer.ours_cpu{part}" for part in ("", "_workers", "_server", "_postgresql")),
    }
    # The test servers run on this host: PostgreSQL's share is known, and each part spent something
    # (the API server only idles while the workers drain, but its process and backends are counted).
    for key in (
        "pgqueuer_cpu_consumers",
        "pgqueuer_cpu_postgresql",
        "ours_cpu_workers",
        "ours_cpu_postgresql",
    ):
        assert peer[f"peer.{key}"]["value"] > 0, peer[f"peer.{key}"]
    assert peer["peer.ours_cpu_server"]["value"] >= 0
    pgqueuer, ours = peer["peer.pgqueuer_cpu"], peer["peer.ours_cpu"]
    assert_cpu_total(pgqueuer, {"consumers"})
    assert_cpu_total(ours, {"workers", "server"})
    assert pgqueuer["value"] == pytest.approx(
        peer["peer.pgqueuer_cpu_consumers"]["value"] + peer["peer.pgqueuer_cpu_postgresql"]["value"]
    )
    assert ours["value"] == pytest.approx(
        sum(peer[f"peer.ours_cpu_{part}"]["value"] for part in ("workers", "server", "postgresql"))
    )
    assert ours["raw_key"] == "peer.pgqueuer_cpu"
    assert ours["raw"] == pgqueuer["value"]
    assert ours["ratio"] == pytest.approx(ours["value"] / pgqueuer["value"])
    assert (ours["ratio_target"], ours["ratio_op"], ours["compared_with"]) == (1.0, "<=", "pgqueuer")
    assert ours["met"] is (ours["ratio"] <= 1.0)
    assert peer["peer.ours_cpu_workers"]["raw"] == peer["peer.pgqueuer_cpu_consumers"]["value"]
    assert peer["peer.ours_cpu_postgresql"]["raw"] == peer["peer.pgqueuer_cpu_postgresql"]["value"]


def assert_agents_figures(report: dict[str, Any]) -> None:
    """Scenario i: each agents' drain beside as many direct workers' (scenario b, same run), its rate
    and its CPU per 1,000 tasks (the agents, the API server and its backends; the workers and theirs)."""
    figures = {f["key"]: f for s in report["scenarios"] for f in s["figures"]}
    for processes in (1, 2, 4):
        agents = figures[f"agents.agents_{processes}"]
        assert agents["raw"] > 0, agents  # shown beside the direct workers' figure of the same run
        assert agents["compared_with"] == "direct workers"
        workers_cpu = figures[f"processing.workers_{processes}_cpu"]
        agents_cpu = figures[f"agents.agents_{processes}_cpu"]
        assert_cpu_total(workers_cpu, {"workers"})
        assert_cpu_total(agents_cpu, {"agents", "server"})
        assert agents_cpu["raw"] == workers_cpu["value"]
        assert agents_cpu["ratio"] == pytest.approx(agents_cpu["value"] / workers_cpu["value"])
        # Agents have no database connection: PostgreSQL's share is the server's backends'.
        assert all(r["server"] > 0 and r["agents"] > 0 for r in agents_cpu["details"]["rounds"])
    scenario = next(s for s in report["scenarios"] if s["name"] == "agents")
    assert {f["key"] for f in scenario["figures"]} == {
        f"agents.agents_{n}{cpu}" for n in (1, 2, 4) for cpu in ("", "_cpu")
    }


@pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)
@pytest.mark.slow
def test_the_quick_benchmark_completes_and_loses_no_task(pg_server_url: str, tmp_path: Path) -> None:
    env = bench_env(pg_server_url, tmp_path)
    results = tmp_path / "bench.json"

    run = subprocess.run(
        [sys.executable, "-m", "taskservice.cli", "bench", "--quick", "--json", str(results)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(results.read_text())
    assert report["quick"] is True
    assert {s["name"] for s in report["scenarios"]} == SCENARIOS
    for scenario in report["scenarios"]:
        assert scenario["completed"], f"{scenario['name']}: {scenario['error']}"
        assert scenario["lost"] == 0, scenario["name"]
        assert scenario["figures"], scenario["name"]
        if scenario["name"] not in WITHOUT_TASKS:
            assert scenario["tasks"] > 0, scenario["name"]
    assert report["ok"] is True
    assert "every scenario completed, no task lost" in run.stdout

    assert_peer_figures(report)
    assert_agents_figures(report)

    # The Python client's loops, each as a share of the protocol client's in the same run.
    client = next(s for s in report["scenarios"] if s["name"] == "client")
    shares = {f["key"]: f["ratio"] for f in client["figures"] if f["raw_key"]}
    assert set(shares) == {"client.async_1", "client.async_8", "client.sync_1"}
    assert all(share > 0 for share in shares.values()), shares

    # Scenario k: each limited drain beside the unlimited one of the same run, with its CPU per task.
    limited = {f["key"]: f for s in report["scenarios"] if s["name"] == "limits" for f in s["figures"]}
    drains = ("unlimited", "per_key", "rate")
    assert set(limited) == {
        "limits.unlimited",
        "limits.per_key",
        "limits.rate",
        "limits.rate_starts",
        "limits.rate_most",
        *(f"limits.{drain}_cpu_{part}" for drain in drains for part in ("workers", "postgresql")),
    }
    assert limited["limits.per_key"]["raw_key"] == "limits.unlimited"
    assert limited["limits.per_key"]["raw"] > 0
    for drain in ("per_key", "rate"):
        workers = limited[f"limits.{drain}_cpu_workers"]
        assert workers["raw_key"] == "limits.unlimited_cpu_workers"
        assert workers["value"] > 0, workers
        assert workers["raw"] > 0, workers
        postgresql = limited[f"limits.{drain}_cpu_postgresql"]  # NaN where the server is on another host
        assert postgresql["raw_key"] == "limits.unlimited_cpu_postgresql"
        assert math.isnan(postgresql["value"]) or postgresql["value"] > 0, postgresql
    # The rate limit of the quick run, 100/s: its start rate and busiest second are shown against it.
    assert limited["limits.rate"]["value"] == 100
    assert limited["limits.rate_starts"]["raw"] == 100
    assert limited["limits.rate_starts"]["target"] == "≤ 100"
    assert limited["limits.rate_most"]["target"] == "≤ 100"
    assert limited["limits.rate_most"]["value"] > 0

    assert_workflow_figures(report)
    assert_tracing_figures(report)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_short_soak_prints_its_curve_and_loses_no_task(pg_server_url: str, tmp_path: Path) -> None:
    results = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "taskservice.cli", "bench", "--soak", "0.1", "--json", str(results)],
        env=bench_env(pg_server_url, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    soak = json.loads(results.read_text())
    assert soak["ok"] is True
    assert soak["rate"] == pytest.approx(soak["max_rate"] / 2)
    assert soak["enqueued"] > 0
    assert len(soak["curve"]) >= 3  # a trial run gets three samples
    for minute in soak["curve"]:
        assert set(minute["mb"]) >= {"tasks", "tasks indexes", "task_history", "task_executions"}
        assert set(minute["dead"]) == {"tasks", "task_history", "task_executions"}
    # The vacuums of the task tables, counted from the database's start: they never go down.
    for earlier, later in itertools.pairwise(soak["curve"]):
        assert later["vacuums"] >= earlier["vacuums"]
        assert later["autovacuums"] >= earlier["autovacuums"]
    assert "by the maintenance job" in run.stdout
    assert "tasks enqueued succeeded" in run.stdout


async def test_the_busiest_period_counts_a_start_one_period_later_in_the_next(pool: Pool) -> None:
    """A limit of 2/s lets attempts start at 0, 0.5 and 1.0 s (it counts the starts after a second
    ago): the check finds 2 in every second there, and 3 once a start is a microsecond earlier."""
    task = await pool.fetchval(
        "INSERT INTO tasks (name, type, timeout_seconds) VALUES ('t', 'sleep', 60) RETURNING id"
    )
    first = await pool.fetchval("SELECT '2026-01-01 00:00:00+00'::timestamptz")

    async def start(*seconds: float) -> None:
        await pool.execute(
            "INSERT INTO task_executions (task_id, attempt, worker_id, started_at)"
            " SELECT $1, 1, 'w', $2::timestamptz + make_interval(secs => s) FROM unnest($3::float8[]) AS s",
            task,
            first,
            list(seconds),
        )

    await start(0.0, 0.5, 1.0)
    assert await pool.fetchval(sql("most_starts_in_a_period"), 1.0) == 2
    starts = await pool.fetchrow(sql("starts"))
    assert starts is not None
    assert (starts["starts"], starts["seconds"]) == (3, 1.0)

    await start(0.999999)
    assert await pool.fetchval(sql("most_starts_in_a_period"), 1.0) == 3


async def test_a_workflow_s_steps_are_whole_and_its_finishing_statements_counted(
    store: Store, pool: Pool
) -> None:
    """What scenario l checks after each workflow: every step succeeded once, with its history rows,
    after its parents; and how many statements finished its steps (here one per finish call)."""
    workflow_id, _ = await store.create_workflow("fan", fan_out_fan_in(12))  # root, m1..m10, last
    finishes = 0
    while claims := await store.claim("w1", 4, lease_seconds=30):
        await store.finish([model.succeeded(c.task, c.execution_id, None) for c in claims])
        finishes += 1
    assert finishes == 1 + 3 + 1  # the root; the middle steps, 4 + 4 + 2; the last
    assert await pool.fetchval(sql("whole_steps"), workflow_id) == 12
    assert await pool.fetchval(sql("finish_statements"), workflow_id) == finishes
    assert await pool.fetchval(sql("step_status"), workflow_id, "last") == Status.SUCCEEDED

    # Had the middle steps started before the root succeeded, they would not be whole: the root's
    # SUCCEEDED row written again, after theirs.
    await pool.execute(
        "WITH gone AS (DELETE FROM task_history WHERE status = 3"
        "              AND task_id = (SELECT id FROM tasks WHERE step = 'root')"
        "              RETURNING task_id, status, details)"
        " INSERT INTO task_history (task_id, status, details) SELECT * FROM gone"
    )
    assert await pool.fetchval(sql("whole_steps"), workflow_id) == 12 - 10


async def test_the_workers_name_their_connections_for_psycopg_and_asyncpg(database_url: str) -> None:
    """The name replaces one the URL gives; its other options (the embedded server's socket) stay."""
    given = f"{database_url}{'&' if '?' in database_url else '?'}sslmode=disable&application_name=other"
    url = named_connections(given)
    assert parse_qs(urlsplit(url).query) == {
        **parse_qs(urlsplit(database_url).query),
        "sslmode": ["disable"],
        "application_name": [WORKER_APPLICATION],
    }
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SHOW application_name") == WORKER_APPLICATION
    finally:
        await conn.close()
    with psycopg.connect(url) as sync_conn:
        row = sync_conn.execute("SHOW application_name").fetchone()
    assert row == (WORKER_APPLICATION,)


async def test_a_backend_s_cpu_time_is_read_where_the_server_runs_here(database_url: str) -> None:
    """Read from /proc when the server is a process of this host; unknown (None) when it is elsewhere."""
    conn = await asyncpg.connect(named_connections(database_url))
    try:
        backend = await conn.fetchrow(
            "SELECT pid, extract(epoch FROM backend_start)::float8 AS started"
            " FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        assert backend is not None
        backends = [(backend["pid"], backend["started"])]
        before = cpu_times([], backends)
        await conn.fetchval("SELECT sum(g) FROM generate_series(1, 1000000) AS g")
        after = cpu_times([], backends)
    finally:
        await conn.close()
    if urlsplit(database_url).hostname in {"127.0.0.1", "localhost", "::1", None}:
        assert before.backends is not None
        assert after.backends is not None
        assert after.backends[backend["pid"]] > before.backends[backend["pid"]]
    else:
        assert after.backends is None


def test_the_span_sink_counts_what_the_otlp_exporter_sends_it() -> None:
    """Scenario m's receiver, fed by the OpenTelemetry SDK's own OTLP/HTTP exporter (as a worker's):
    each export is one request, its spans counted and the service named; other paths are not counted."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from taskservice.bench.otlp_sink import Received, SpanSink

    with SpanSink() as sink:
        exporter = OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")
        provider = TracerProvider(resource=Resource.create({"service.name": "sink-test"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))  # one request per span, at its end
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
            pass
        provider.shutdown()
        received = sink.received()
        assert received.requests == 2
        assert received.spans == 2
        assert received.bad == 0
        assert received.bytes > 0
        assert sink.services == {"sink-test"}

        elsewhere = OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/logs")
        one = TracerProvider()
        one.add_span_processor(SimpleSpanProcessor(elsewhere))
        one.get_tracer("test").start_span("ignored").end()
        one.shutdown()
        assert sink.received() - received == Received()


def test_without_the_otel_extra_the_drains_with_tracing_on_are_shown_as_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scenario m where opentelemetry cannot be imported: on's figures are '-' (NaN) with no target to
    miss, so the run does not fail; off's figures stand."""
    from taskservice.bench.cpu import CpuPerTask, Drains
    from taskservice.bench.scenarios import tracing
    from taskservice.bench.sizes import QUICK

    assert tracing.tracing_installed()  # a dev dependency
    for module in ("opentelemetry", *tracing.OTEL_MODULES):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    assert not tracing.tracing_installed()

    off = tracing.Mode(Drains("tracing", "off", "off"), {})
    off.drains.rates.append(5000.0)
    off.drains.cpu.append(CpuPerTask(50.0, 80.0))
    shown = {f.key: f for f in tracing.figures(QUICK, off, None)}
    assert shown["tracing.off"].value == 5000.0
    assert shown["tracing.off_cpu_workers"].value == 50.0
    assert shown["tracing.off_requests"].met is True
    for key in ("tracing.on", "tracing.on_cpu_workers", "tracing.on_cpu_postgresql", "tracing.on_spans"):
        assert math.isnan(shown[key].value), key
    assert math.isnan(shown["tracing.on_requests"].value)
    assert shown["tracing.on_requests"].met is None  # no target: not a miss


def test_a_cost_held_to_at_most_a_peer_s_is_met_within_it_and_shown_as_an_upper_bound() -> None:
    """A ratio target with ratio_op "<=" (CPU per task against pgqueuer's): met at or under it, missed
    above, unknown (not met) without the peer's figure; the table shows "≤ 1x pgqueuer" and the ratio."""
    peer = Figure("peer.cost", "theirs", 100.0, CPU_UNIT)

    def ours(name: str, value: float, beside: str = "peer.cost") -> Figure:
        return Figure(
            f"ours.{name}", name, value, CPU_UNIT, raw_key=beside,
            ratio_target=1.0, ratio_op="<=", compared_with="pgqueuer",
        )  # fmt: skip

    cheaper, equal, dearer = ours("cheaper", 80.0), ours("equal", 100.0), ours("dearer", 120.0)
    alone = ours("alone", 80.0, beside="peer.not_measured")
    report = Report(quick=True, machine={})
    report.scenarios.append(ScenarioResult("g", "g. Peer", figures=[peer, cheaper, equal, dearer]))
    report.scenarios.append(ScenarioResult("x", "x. Alone", figures=[alone]))
    report.link_ceilings()
    assert (cheaper.ratio, cheaper.met) == (0.8, True)
    assert (equal.ratio, equal.met) == (1.0, True)
    assert (dearer.ratio, dearer.met) == (1.2, False)
    assert (alone.ratio, alone.met) == (None, False)
    assert cheaper.to_json()["ratio_op"] == "<="
    # A throughput's ratio target is still a floor.
    rate = Figure("ours.rate", "ours", 80.0, "tasks/s", ratio_target=0.7)
    rate.raw = 100.0
    assert rate.met is True

    console = Console(width=200, record=True)
    console.print(render(report))
    lines = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if "│" in line}
    assert "≤ 1x pgqueuer" in lines["cheaper"]
    assert "0.80x" in lines["cheaper"]
    assert "1.20x" in lines["dearer"]
    assert "NO" in lines["dearer"]
    assert "yes" in lines["equal"]


def test_a_drain_s_cpu_is_split_by_part_and_shown_from_its_cheapest_round() -> None:
    """Each part's processes per task, PostgreSQL's backends of all parts together; agents (no
    connection) add nothing to PostgreSQL's share; a backend not visible here makes it unknown, and
    the round that cost the least is then chosen by the processes alone."""
    before = {"workers": CpuTimes({1: 1.0, 2: 2.0}, {10: 5.0}), "agents": CpuTimes({3: 0.5}, {})}
    after = {"workers": CpuTimes({1: 1.1, 2: 2.2}, {10: 5.3, 11: 0.1}), "agents": CpuTimes({3: 0.6}, {})}
    split = CpuSplit.between(before, after, 1000)  # seconds per 1,000 tasks: ms per task x 1,000
    assert split.processes == pytest.approx({"workers": 300.0, "agents": 100.0})
    assert split.postgresql == pytest.approx(400.0)  # backend 11 started in between: from zero
    assert split.total == pytest.approx(800.0)

    unseen = CpuSplit.between(before, {**after, "workers": CpuTimes({1: 1.1, 2: 2.2}, None)}, 1000)
    assert math.isnan(unseen.postgresql)
    assert math.isnan(unseen.total)
    assert unseen.known == pytest.approx(400.0)

    dearer = CpuSplit({"workers": 500.0}, 100.0)
    cheaper = CpuSplit({"workers": 300.0}, 200.0)
    theirs = split_figures("peer.theirs", "theirs", [CpuSplit({"consumers": 200.0}, 100.0)], {})
    figures = {
        f.key: f
        for f in split_figures(
            "peer.ours", "ours", [dearer, cheaper], {"workers": "workers", "postgresql": "PostgreSQL"},
            beside="peer.theirs", parts_beside={"workers": "consumers"}, ratio_target=1.0,
        )
    }  # fmt: skip
    assert [f.key for f in theirs] == ["peer.theirs"]
    assert figures["peer.ours"].value == 500.0  # the cheaper round's total, and its parts
    assert figures["peer.ours_workers"].value == 300.0
    assert figures["peer.ours_postgresql"].value == 200.0
    assert figures["peer.ours"].raw_key == "peer.theirs"
    assert figures["peer.ours_workers"].raw_key == "peer.theirs_consumers"
    assert figures["peer.ours_postgresql"].raw_key is None  # mapped to nothing of theirs
    assert figures["peer.ours"].details["rounds"] == [
        {"workers": 500.0, "postgresql": 100.0},
        {"workers": 300.0, "postgresql": 200.0},
    ]
