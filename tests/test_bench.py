"""`task-cli bench --quick` runs every scenario to the end and loses no task; speed is never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskservice.config import Settings

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

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
}
WITHOUT_TASKS = {"memory", "cli_start"}  # they measure processes, not tasks


def bench_env(pg_server_url: str, tmp_path: Path) -> dict[str, str]:
    variables = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in variables and k != "TEST_DATABASE_URL"}
    env["DATABASE_URL"] = pg_server_url  # the bench makes a database of its own there, and drops it
    env["EMBEDDED_DATA_DIR"] = str(tmp_path / "unused-embedded")
    return env


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
