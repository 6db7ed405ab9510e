"""SIMULATED_PLUGINS: the original's plugins (sleep, run_query fails 20%), and its CLI's `end2end`
replayed call for call against a real server: sequential (its MVP) and 100 at once (its `main`)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from conftest import ServerProcess, eventually, subprocess_env
from taskservice.config import Settings, load_settings
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceClient
from taskservice.plugins import PermanentFailure, Registry
from taskservice.plugins.email import SendEmail
from taskservice.plugins.query import RunQuery
from taskservice.plugins.simulated import QUERY_FAILED, SimulatedPlugin, simulate_original_plugins

FINISHED = (pb.SUCCEEDED, pb.FAILED)


class Sleeps:
    """An injected sleep: records how long each attempt would have slept, and returns at once."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


# -- the plugins ------------------------------------------------------------------------------------


async def test_send_email_ignores_its_parameters_sleeps_task_time_out_and_succeeds() -> None:
    sleeps = Sleeps()
    plugin = SimulatedPlugin("send_email", 2.5, rng=random.Random(1), sleep=sleeps)
    for i in range(50):
        assert await plugin.run({"test": f"test_{i}"}) == {"simulated": True, "slept": 2.5}
    assert sleeps.seconds == [2.5] * 50


async def test_run_query_fails_one_time_in_five_with_the_originals_words() -> None:
    sleeps = Sleeps()
    plugin = SimulatedPlugin("run_query", 0.5, rng=random.Random(19), sleep=sleeps)
    expected = random.Random(19)  # the same draws: which attempts fail is known in advance
    failed = 0
    for i in range(1000):
        fails = expected.random() < 0.2
        if fails:
            with pytest.raises(RuntimeError, match=f"^{QUERY_FAILED}$"):
                await plugin.run({"test": f"test_{i}"})
            failed += 1
        else:
            assert await plugin.run({}) == {"simulated": True, "slept": 0.5}
    assert 150 <= failed <= 250  # about 20%
    assert sleeps.seconds == [0.5] * 1000  # a failing attempt sleeps first too


def test_the_setting_swaps_both_plugins_and_their_declarations(tmp_path: Path) -> None:
    real = Registry()
    simulate_original_plugins(real, load_settings(embedded_data_dir=tmp_path))
    assert isinstance(real.get("send_email"), SendEmail)
    assert real.declaration("send_email") is not None
    assert not real.declaration("send_email").extra_parameters  # type: ignore[union-attr]

    simulated = Registry()
    settings = load_settings(embedded_data_dir=tmp_path, simulated_plugins=True, task_time_out=7)
    simulate_original_plugins(simulated, settings)
    for name in ("send_email", "run_query"):
        plugin = simulated.get(name)
        assert isinstance(plugin, SimulatedPlugin)
        assert plugin.seconds == 7
        spec = simulated.declaration(name)
        assert spec is not None
        assert spec.check({"test": "test_1"}) == {"test": "test_1"}
        # The attempt is not cut at the sleep's end: its timeout leaves room past TASK_TIME_OUT.
        assert spec.timeout_seconds is not None
        assert spec.timeout_seconds > 7
    assert isinstance(simulated.get("sleep"), type(Registry().get("sleep")))  # others untouched


@pytest.mark.parametrize("plugin", [SendEmail, RunQuery])
async def test_a_worker_without_the_setting_fails_a_simulated_task_at_once_naming_it(
    plugin: type[SendEmail] | type[RunQuery], tmp_path: Path
) -> None:
    """A server with SIMULATED_PLUGINS=true accepted it; this worker runs the real plugin."""
    settings = load_settings(embedded_data_dir=tmp_path, email_outbox_dir=tmp_path / "outbox")
    with pytest.raises(PermanentFailure) as failure:
        await asyncio.to_thread(lambda: asyncio.run(_run(plugin(settings), {"test": "test_1"})))
    assert "'test' is not a parameter" in str(failure.value)
    assert "SIMULATED_PLUGINS" in str(failure.value)
    assert not (tmp_path / "outbox").exists()  # nothing sent


async def _run(plugin: SendEmail | RunQuery, parameters: dict[str, str]) -> object:
    result = plugin.run(parameters)
    return await result if asyncio.iscoroutine(result) else result


# -- the original's end2end, call for call ---------------------------------------------------------


def original_requests(count: int) -> list[pb.CreateTaskRequest]:
    """The original CLI's end2end tasks: run_query and send_email in turn, `{"test": "test_<i>"}`."""
    return [
        pb.CreateTaskRequest(
            name=f"Task {i}",
            type=("run_query", "send_email")[i % 2],
            payload=pb.Payload(parameters={"test": f"test_{i}"}),
        )
        for i in range(count)
    ]


HISTORY_PAST_2_TO_THE_31 = 2**31 + 100


@pytest.fixture(params=["fresh", "history ids past 2^31"])
def simulated_server(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[ServerProcess]:
    """A server with the original's plugins, each attempt sleeping 50 ms (TASK_TIME_OUT); fresh, or
    one whose history ids have passed 2^31 while its task ids still fit (three or more rows a task:
    history ids get there first)."""
    if request.param != "fresh":
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE task_history ALTER COLUMN id RESTART WITH {HISTORY_PAST_2_TO_THE_31}")
    server = ServerProcess(
        settings, tmp_path / "server.log", WORKER_COUNT="10", SIMULATED_PLUGINS="true", TASK_TIME_OUT="0.05"
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


async def originals_progress(client: TaskManagementServiceClient, task_ids: list[int]) -> bool:
    """The original end2end's poll: GetTask of every task; done when each SUCCEEDED or FAILED."""
    found = [await client.get_task(pb.GetTaskRequest(id=task_id)) for task_id in task_ids]
    return all(task.status in FINISHED for task in found)


async def check_finished(client: TaskManagementServiceClient, task_ids: list[int]) -> None:
    for task_id in task_ids:
        history = (await client.get_task_history(pb.GetTaskHistoryRequest(id=task_id))).history
        statuses = [h.status for h in history]
        # The row ids an old client reads: the rows' own while they fit, else their positions.
        assert all(0 < h.id <= 2**31 - 1 for h in history)
        if history[0].id64 < HISTORY_PAST_2_TO_THE_31:
            assert [h.id for h in history] == sorted({h.id for h in history})
        else:
            assert [h.id for h in history] == list(range(1, len(history) + 1))
        assert statuses[0] == pb.QUEUED, statuses
        assert statuses[-1] in FINISHED, statuses
        for row in history:
            if row.status == pb.FAILED or "failed" in row.details.lower():
                assert QUERY_FAILED in row.details, row.details  # only run_query fails, in its words


@pytest.mark.e2e
async def test_the_originals_end2end_sequential_as_in_its_mvp(simulated_server: ServerProcess) -> None:
    # The original's Go CLI speaks binary Connect and sends no Task-Id-Width header.
    async with TaskManagementServiceClient(simulated_server.url, proto_json=False) as client:
        task_ids = [(await client.create_task(request)).id for request in original_requests(20)]
        assert len(set(task_ids)) == 20
        assert all(task_ids)
        await eventually(lambda: originals_progress(client, task_ids), timeout=60)
        await check_finished(client, task_ids)


@pytest.mark.e2e
async def test_the_originals_end2end_100_at_once_as_in_its_main(simulated_server: ServerProcess) -> None:
    async with TaskManagementServiceClient(simulated_server.url, proto_json=False) as client:
        created = await asyncio.gather(*(client.create_task(r) for r in original_requests(100)))
        task_ids = [c.id for c in created]
        assert len(set(task_ids)) == 100
        assert all(task_ids)
        await eventually(lambda: originals_progress(client, task_ids), timeout=120)
        await check_finished(client, task_ids)
        counts = (await client.get_status(pb.GetStatusRequest())).status_counts
        assert counts[pb.SUCCEEDED] + counts[pb.FAILED] == 100


@pytest.mark.e2e
async def test_without_the_setting_the_refusal_names_it(api_server: ServerProcess) -> None:
    async with TaskManagementServiceClient(api_server.url, proto_json=False) as client:
        for request in original_requests(2):
            with pytest.raises(ConnectError) as refused:
                await client.create_task(request)
            assert refused.value.code == Code.INVALID_ARGUMENT
            assert "'test'" in refused.value.message
            assert "is not a parameter of this task type" in refused.value.message
            assert "SIMULATED_PLUGINS=true" in refused.value.message
        listed = await client.list_tasks(pb.TaskListRequest())
        assert not listed.tasks  # nothing half-created


@pytest.fixture
def mismatched(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with SIMULATED_PLUGINS=true that runs nothing itself, and a worker without it."""
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="0", SIMULATED_PLUGINS="true")
    log = (tmp_path / "worker.log").open("wb")
    env = subprocess_env(settings, SIMULATED_PLUGINS="false")
    command = [sys.executable, "-m", "taskservice.cli", "serve"]
    worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        server.wait_ready()
        yield server
    finally:
        worker.terminate()
        worker.wait(60)
        log.close()
        server.stop()


@pytest.mark.e2e
async def test_a_server_with_the_setting_and_a_worker_without_it_fail_the_task_naming_it(
    mismatched: ServerProcess, settings: Settings
) -> None:
    """The setting is each process's own: here the server accepts the original's tasks, the worker
    that claims them runs the real plugins, and each task fails at once saying what to set."""
    async with TaskManagementServiceClient(mismatched.url, proto_json=False) as client:
        task_ids = [(await client.create_task(r)).id for r in original_requests(2)]

        async def failed() -> bool:
            found = [await client.get_task(pb.GetTaskRequest(id=i)) for i in task_ids]
            return all(t.status == pb.FAILED for t in found)

        await eventually(failed, timeout=60)
        for task_id in task_ids:
            history = (await client.get_task_history(pb.GetTaskHistoryRequest(id=task_id))).history
            assert [h.status for h in history] == [pb.QUEUED, pb.RUNNING, pb.FAILED]  # no retry
            assert "'test' is not a parameter of" in history[-1].details
            assert "SIMULATED_PLUGINS" in history[-1].details
    assert not settings.email_outbox_dir.exists()  # nothing was sent
