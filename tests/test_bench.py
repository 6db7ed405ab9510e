"""`task-cli bench --quick` runs every scenario to the end and loses no task; speed is never asserted.
What the benchmark reads from the database and the processes to show the limits and workflow
scenarios' figures is checked on its own, against a real PostgreSQL."""

from __future__ import annotations

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

from taskservice import model
from taskservice.bench.context import sql
from taskservice.bench.cpu import WORKER_APPLICATION, cpu_times, named_connections
from taskservice.bench.scenarios.workflows import fan_out_fan_in
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

    peer = next(s for s in report["scenarios"] if s["name"] == "peer")
    assert {f["key"] for f in peer["figures"]} == {
        "peer.pgqueuer",
        "peer.ours",
    }  # pgqueuer is a dev dependency
    agents = next(s for s in report["scenarios"] if s["name"] == "agents")
    assert {f["key"] for f in agents["figures"]} == {"agents.agents_1", "agents.agents_2", "agents.agents_4"}
    for figure in agents["figures"]:  # shown beside the direct workers' figure of the same run
        assert figure["raw"] > 0, figure
        assert figure["compared_with"] == "direct workers"

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
