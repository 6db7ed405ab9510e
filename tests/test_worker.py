"""The worker runtime in this process, against a real PostgreSQL, with plugins registered by the test."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
import structlog.testing

from conftest import eventually
from taskservice import model, plugins
from taskservice.config import Settings
from taskservice.model import NewTask, Outcome, Status, Transition
from taskservice.plugins import PermanentFailure, Registry, TaskEntry
from taskservice.plugins.context import TaskContext, current
from taskservice.plugins.declare import TypedTask
from taskservice.store import Store
from taskservice.worker.reporter import WRITE_BATCH, Reporter
from taskservice.worker.runtime import Worker, WorkerOptions
from taskservice.worker.serve import worker_options
from taskservice.worker.threads import PluginCall, PluginThreads


@asynccontextmanager
async def running_worker(
    store: Store,
    settings: Settings,
    registry: Registry,
    clock: Callable[[], float] = time.monotonic,
    **changes: Any,
) -> AsyncIterator[Worker]:
    options: WorkerOptions = replace(worker_options(settings, 8, ()), **changes)
    worker = Worker(store, settings.database_url, registry, options, settings=settings, clock=clock)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)


def registry_with(**plugins: object) -> Registry:
    registry = Registry(load_entry_points=False)
    for name, plugin in plugins.items():
        registry.register(name, plugin)
    return registry


async def status_is(store: Store, task_id: int, *statuses: Status) -> bool:
    return (await store.get_task(task_id)).status in statuses


async def test_a_task_runs_once_and_keeps_its_result(store: Store, settings: Settings) -> None:
    seen: list[dict[str, str]] = []

    async def echo(parameters: dict[str, str]) -> dict[str, Any]:
        seen.append(parameters)
        return {"echo": parameters}

    task_id, _ = await store.create_task(NewTask("Task 1", "echo", {"k": "v"}))
    async with running_worker(store, settings, registry_with(echo=echo)):
        await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED))
    assert seen == [{"k": "v"}]
    [execution] = await store.executions(task_id)
    assert (execution.outcome, execution.result, execution.error) == (
        Outcome.SUCCEEDED, {"echo": {"k": "v"}}, None,
    )  # fmt: skip
    assert execution.finished_at is not None
    assert [h.details for h in await store.history(task_id)] == [
        "Task is scheduled",
        "Task started (Attempt 1)",
        "Task completed successfully (Attempt 1)",
    ]


async def test_failures_retry_with_backoff_then_fail(store: Store, settings: Settings) -> None:
    def boom(parameters: dict[str, str]) -> None:
        raise ValueError("disk full")

    task_id, _ = await store.create_task(NewTask("flaky", "boom"))
    async with running_worker(store, settings, registry_with(boom=boom)):
        await eventually(lambda: status_is(store, task_id, Status.FAILED))
    task = await store.get_task(task_id)
    assert (task.retries, task.attempts) == (3, 4)
    history = await store.history(task_id)
    assert [h.status for h in history] == [Status.QUEUED] + [
        Status.RUNNING, Status.RETRYING] * 3 + [Status.RUNNING, Status.FAILED]  # fmt: skip
    assert history[2].details.startswith("Task failed (Attempt 1): ValueError: disk full; retry 1 of 3 in ")
    assert history[-1].details == "Task failed (Attempt 4): ValueError: disk full; no retries left (3 used)"
    executions = await store.executions(task_id)
    assert [e.outcome for e in executions] == [Outcome.FAILED] * 4
    assert [e.error for e in executions] == ["ValueError: disk full"] * 4
    assert all(e.traceback and e.traceback.endswith("ValueError: disk full\n") for e in executions)
    # Each retry started no earlier than its backoff allowed.
    policy = worker_options(settings, 1, ()).retry_policy
    for retry, (failed, started) in enumerate(itertools.pairwise(executions), start=1):
        assert failed.finished_at is not None
        minimum = min(policy.cap, policy.base * 2 ** (retry - 1)) / 2
        assert (started.started_at - failed.finished_at).total_seconds() >= minimum * 0.9


async def test_a_retry_that_succeeds(store: Store, settings: Settings) -> None:
    calls = 0

    async def second_time_lucky(parameters: dict[str, str]) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("transient")
        return "ok"

    task_id, _ = await store.create_task(NewTask("t", "lucky"))
    async with running_worker(store, settings, registry_with(lucky=second_time_lucky)):
        await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED))
    task = await store.get_task(task_id)
    assert (task.retries, task.attempts) == (1, 2)
    assert (await store.history(task_id))[-1].details == "Task completed successfully (Attempt 2)"


async def test_an_attempt_that_runs_too_long_times_out(store: Store, settings: Settings) -> None:
    async def slow(parameters: dict[str, str]) -> None:
        await asyncio.sleep(30)

    task_id, _ = await store.create_task(NewTask("slow", "slow", max_retries=1, timeout_seconds=0.2))
    async with running_worker(store, settings, registry_with(slow=slow)):
        await eventually(lambda: status_is(store, task_id, Status.FAILED))
    history = await store.history(task_id)
    assert history[2].details.startswith("Task timed out (Attempt 1): no result after 0.2s; retry 1 of 1")
    assert history[-1].details == "Task timed out (Attempt 2): no result after 0.2s; no retries left (1 used)"
    assert [e.outcome for e in await store.executions(task_id)] == [Outcome.TIMED_OUT] * 2


async def test_sync_plugins_run_in_threads_and_async_ones_on_the_loop(
    store: Store, settings: Settings
) -> None:
    threads: dict[str, str] = {}

    def sync_plugin(parameters: dict[str, str]) -> None:
        threads["sync"] = threading.current_thread().name

    async def async_plugin(parameters: dict[str, str]) -> None:
        threads["async"] = threading.current_thread().name

    ids = [i for i, _ in await store.create_tasks([NewTask("s", "sync"), NewTask("a", "async")])]
    async with running_worker(store, settings, registry_with(sync=sync_plugin, **{"async": async_plugin})):
        for task_id in ids:
            await eventually(lambda task_id=task_id: status_is(store, task_id, Status.SUCCEEDED))
    assert threads["async"] == threading.current_thread().name
    assert threads["sync"] != threading.current_thread().name


async def test_permanent_failures_do_not_retry_and_unknown_types_are_left_queued(
    store: Store, settings: Settings
) -> None:
    def bad_input(parameters: dict[str, str]) -> None:
        raise PermanentFailure("recipient 'x' is not a valid email address")

    bad, unknown = [
        i for i, _ in await store.create_tasks([NewTask("b", "bad"), NewTask("u", "no_such_type")])
    ]
    async with running_worker(store, settings, registry_with(bad=bad_input)):
        await eventually(lambda: status_is(store, bad, Status.FAILED))
    assert (await store.history(bad))[-1].details == (
        "Task failed (Attempt 1): recipient 'x' is not a valid email address; not retryable"
    )
    # A type the worker cannot run is never claimed: it waits for a worker that can.
    untouched = await store.get_task(unknown)
    assert (untouched.status, untouched.attempts) == (Status.QUEUED, 0)
    # A permanent failure's message says all there is: no traceback.
    assert [e.traceback for e in await store.executions(bad)] == [None]


async def test_cancelling_a_running_task_stops_it(store: Store, settings: Settings) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def long(parameters: dict[str, str]) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()

    task_id, _ = await store.create_task(NewTask("long", "long"))
    async with running_worker(store, settings, registry_with(long=long)):
        await asyncio.wait_for(started.wait(), 10)
        await store.set_status(task_id, Status.CANCELLED, "changed my mind")
        await asyncio.wait_for(stopped.wait(), 10)  # the heartbeat noticed
    task = await store.get_task(task_id)
    assert task.status == Status.CANCELLED
    assert (await store.history(task_id))[-1].details == "Task cancelled: changed my mind"
    assert [e.outcome for e in await store.executions(task_id)] == [Outcome.CANCELLED]


async def test_graceful_shutdown_finishes_short_tasks_and_puts_back_long_ones(
    store: Store, settings: Settings
) -> None:
    started = asyncio.Event()

    async def nap(parameters: dict[str, str]) -> str:
        started.set()
        await asyncio.sleep(float(parameters["seconds"]))
        return "rested"

    short, long = [
        i for i, _ in await store.create_tasks(
            [NewTask("short", "nap", {"seconds": "0.3"}), NewTask("long", "nap", {"seconds": "60"})]
        )
    ]  # fmt: skip
    async with running_worker(store, settings, registry_with(nap=nap), shutdown_grace=1.5):
        await eventually(lambda: status_is(store, long, Status.RUNNING))
        await eventually(lambda: status_is(store, short, Status.RUNNING, Status.SUCCEEDED))
    assert (await store.get_task(short)).status == Status.SUCCEEDED
    put_back = await store.get_task(long)
    assert (put_back.status, put_back.retries, put_back.lease_owner) == (Status.QUEUED, 0, None)
    assert (await store.history(long))[-1].details == (
        "Worker stopped before the task finished; put back in the queue (Attempt 1)"
    )
    assert [e.outcome for e in await store.executions(long)] == [Outcome.INTERRUPTED]
    [worker] = await store.list_workers()
    assert worker.stopped_at is not None


async def test_new_work_wakes_an_idle_worker_without_polling(store: Store, settings: Settings) -> None:
    async def noop(parameters: dict[str, str]) -> None:
        return None

    # With polling an hour apart, only NOTIFY can start these tasks within the test's time.
    async with running_worker(store, settings, registry_with(noop=noop), poll_interval=3600):
        await eventually(lambda: _listening(store))  # idle, waiting for a NOTIFY
        for _ in range(3):
            task_id, _ = await store.create_task(NewTask("n", "noop"))
            await eventually(lambda task_id=task_id: status_is(store, task_id, Status.SUCCEEDED), timeout=20)


async def _listening(store: Store) -> bool:
    """Whether a session of this database waits on the queue's channel (its last statement: LISTEN)."""
    count = await store.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %'"
    )
    return bool(count)


async def test_concurrency_is_bounded_and_every_task_runs_once(store: Store, settings: Settings) -> None:
    active = peak = 0
    runs: dict[str, int] = {}

    async def count(parameters: dict[str, str]) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        runs[parameters["n"]] = runs.get(parameters["n"], 0) + 1
        await asyncio.sleep(0.01)
        active -= 1

    await store.create_tasks([NewTask("c", "count", {"n": str(i)}) for i in range(200)])
    async with running_worker(store, settings, registry_with(count=count), concurrency=5):
        await eventually(lambda: _all_succeeded(store, 200), timeout=60, interval=0.2)
    assert peak <= 5
    assert runs == {str(i): 1 for i in range(200)}


async def _all_succeeded(store: Store, total: int) -> bool:
    return (await store.status_counts())[Status.SUCCEEDED] == total


@asynccontextmanager
async def finishes_blocked(store: Store) -> AsyncIterator[None]:
    """While open, no task can be written as succeeded (claims go on): a trigger of the test's own
    makes each such update wait for an advisory lock this holds. As a database that writes slowly or
    has stalled, for real."""
    await store.pool.execute(
        "CREATE FUNCTION test_wait_for_release() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$;"
        " CREATE TRIGGER test_succeeded_waits BEFORE UPDATE ON tasks FOR EACH ROW"
        " WHEN (NEW.status = 3) EXECUTE FUNCTION test_wait_for_release()"
    )
    try:
        async with store.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(4242)")
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(4242)")
    finally:
        await store.pool.execute(
            "DROP TRIGGER test_succeeded_waits ON tasks; DROP FUNCTION test_wait_for_release()"
        )


async def test_a_worker_whose_outcomes_cannot_be_written_stops_claiming(
    store: Store, settings: Settings
) -> None:
    """Its slots free as its attempts end, but their outcomes wait: past `concurrency` of them waiting,
    each holds a slot, so a stalled database is not handed ever more attempts (nor, once it recovers,
    one write of everything that piled up meanwhile)."""

    async def noop(parameters: dict[str, str]) -> None:
        return None

    await store.create_tasks([NewTask("b", "noop", {"n": str(i)}) for i in range(20)])

    async def attempts() -> int:
        return int(await store.pool.fetchval("SELECT count(*) FROM task_executions"))

    async with running_worker(store, settings, registry_with(noop=noop), concurrency=2) as worker:
        async with finishes_blocked(store):
            worker.work_arrived()
            await eventually(lambda: asyncio.sleep(0, worker.unwritten_outcomes == 4), timeout=30)
            # 2 slots: 2 outcomes may wait at no cost, the next 2 hold both slots; no more is claimed.
            assert worker.free_slots() == 0
            assert await attempts() == 4
        await eventually(lambda: _all_succeeded(store, 20), timeout=60, interval=0.2)
    assert await attempts() == 20  # each ran once


async def test_a_backlog_of_outcomes_is_written_a_batch_at_a_time(store: Store, settings: Settings) -> None:
    """Outcomes that piled up while the database stalled go in statements of at most WRITE_BATCH."""
    written: list[int] = []

    class Recording(Store):
        async def finish(self, transitions: Sequence[Transition], **owner: Any) -> set[int]:
            written.append(len(transitions))
            return await super().finish(transitions, **owner)

    count = WRITE_BATCH * 2 + 500
    await store.create_tasks([NewTask("b", "noop", {"n": str(i)}) for i in range(count)])
    claims = await store.claim("w", count, lease_seconds=600)
    reporter = Reporter(Recording(store.pool), on_refused=lambda refused: None)
    reporter.start()
    try:
        async with finishes_blocked(store):
            reporter.report(model.succeeded(claims[0].task, claims[0].execution_id, None))
            await eventually(lambda: asyncio.sleep(0, written == [1]), timeout=30)  # its write waits
            for claim in claims[1:]:
                reporter.report(model.succeeded(claim.task, claim.execution_id, None))
        await asyncio.wait_for(reporter.drain(), 60)
    finally:
        await reporter.stop()
    assert written == [1, WRITE_BATCH, WRITE_BATCH, count - 1 - 2 * WRITE_BATCH]
    assert await _all_succeeded(store, count)


async def test_a_plugins_own_timeout_error_is_an_ordinary_failure(store: Store, settings: Settings) -> None:
    async def connect_times_out(parameters: dict[str, str]) -> None:
        raise TimeoutError("connecting to the mail server timed out")

    task_id, _ = await store.create_task(NewTask("t", "flaky", max_retries=0, timeout_seconds=30))
    async with running_worker(store, settings, registry_with(flaky=connect_times_out)):
        await eventually(lambda: status_is(store, task_id, Status.FAILED))
    assert (await store.history(task_id))[-1].details == (
        "Task failed (Attempt 1): TimeoutError: connecting to the mail server timed out;"
        " no retries left (0 used)"
    )
    assert [e.outcome for e in await store.executions(task_id)] == [Outcome.FAILED]


async def test_the_deadline_is_a_timeout_however_the_plugin_ends(store: Store, settings: Settings) -> None:
    """A plugin may turn the deadline's cancellation into a TimeoutError of its own, or hang in a thread."""

    async def converts(parameters: dict[str, str]) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise TimeoutError("gave up") from None

    def hangs(parameters: dict[str, str]) -> None:
        threading.Event().wait(5)

    ids = [
        task_id
        for task_id, _ in await store.create_tasks(
            [NewTask(kind, kind, max_retries=0, timeout_seconds=0.2) for kind in ("converts", "hangs")]
        )
    ]
    async with running_worker(store, settings, registry_with(converts=converts, hangs=hangs)) as worker:
        for task_id in ids:
            await eventually(lambda task_id=task_id: status_is(store, task_id, Status.FAILED))
        assert not worker._running  # nothing left cancelled-but-running
    for task_id in ids:
        assert [(e.outcome, e.traceback) for e in await store.executions(task_id)] == [
            (Outcome.TIMED_OUT, None)
        ]
        assert (await store.history(task_id))[-1].details.startswith("Task timed out (Attempt 1)")


# -- sync plugins' threads -------------------------------------------------------------------------


async def test_n_concurrent_sync_plugins_use_at_most_n_threads(store: Store, settings: Settings) -> None:
    threads: set[threading.Thread] = set()  # kept alive here: a thread per call would add eight
    both_running = threading.Barrier(2, timeout=30)

    def pair(parameters: dict[str, str]) -> None:
        threads.add(threading.current_thread())
        both_running.wait()  # two at once: the worker's two slots run in two threads

    ids = [i for i, _ in await store.create_tasks([NewTask(f"p{n}", "pair") for n in range(8)])]
    async with running_worker(store, settings, registry_with(pair=pair), concurrency=2):
        for task_id in ids:
            await eventually(lambda task_id=task_id: status_is(store, task_id, Status.SUCCEEDED))
    assert len(threads) == 2
    assert all(thread.daemon for thread in threads)  # a hung one cannot keep the process alive


async def test_a_stuck_sync_plugin_is_reported_counted_logged_once_and_keeps_its_slot(
    store: Store, settings: Settings
) -> None:
    release = threading.Event()
    threads: list[threading.Thread] = []

    def hang(parameters: dict[str, str]) -> None:
        threads.append(threading.current_thread())
        release.wait(60)  # past its timeout: Python cannot stop it

    def quick(parameters: dict[str, str]) -> bool:
        threads.append(threading.current_thread())
        return release.is_set()

    stuck, _ = await store.create_task(NewTask("h", "hang", max_retries=0, timeout_seconds=0.2))
    registry = registry_with(hang=hang, quick=quick)
    with structlog.testing.capture_logs() as logs:
        async with running_worker(store, settings, registry, concurrency=1) as worker:
            await eventually(lambda: status_is(store, stuck, Status.FAILED))
            assert [e.outcome for e in await store.executions(stuck)] == [Outcome.TIMED_OUT]
            assert (worker.stuck_plugins, worker.stuck_plugins_total) == (1, 1)
            assert worker.free_slots() == 0  # the one slot is the stuck plugin's thread: nothing is claimed
            later, _ = await store.create_task(NewTask("q", "quick"))
            worker.work_arrived()
            release.set()
            await eventually(lambda: status_is(store, later, Status.SUCCEEDED))
            assert (worker.stuck_plugins, worker.stuck_plugins_total, worker.free_slots()) == (0, 1, 1)
    assert [e.result for e in await store.executions(later)] == [
        True
    ]  # it ran once the stuck plugin had returned
    assert threads[0] is threads[1]  # in the thread that was stuck
    outlived = [line for line in logs if line["event"].startswith("a sync plugin outlived its attempt")]
    assert len(outlived) == 1, logs
    assert (outlived[0]["log_level"], outlived[0]["task_id"], outlived[0]["why"]) == (
        "warning",
        stuck,
        "timeout",
    )
    assert any(line["event"].startswith("a stuck sync plugin returned") for line in logs)


async def test_plugin_threads_are_reused_and_end_when_closed() -> None:
    freed: list[PluginCall] = []
    threads = PluginThreads(2, freed.append)
    names = [await threads.run(lambda: threading.current_thread().name).future for _ in range(5)]
    assert set(names) <= {"plugin-0", "plugin-1"}
    assert len(threads.threads) <= 2
    release = threading.Event()
    stuck = threads.run(release.wait, 60)
    stuck.future.cancel()  # the attempt gave up on it
    assert threads.abandon(stuck)
    assert not threads.abandon(stuck)
    assert (threads.stuck, threads.stuck_total) == (1, 1)
    release.set()
    await eventually(lambda: asyncio.sleep(0, freed == [stuck]))
    assert (threads.stuck, threads.stuck_total) == (0, 1)
    threads.close()
    for thread in threads.threads:
        await asyncio.to_thread(thread.join, 30)
        assert not thread.is_alive()  # an idle thread ends: a stopped worker leaves none behind


# -- every plugin form, one entry kind ---------------------------------------------------------------


def _declared(ctx: TaskContext, width: int) -> dict[str, int]:
    return {"width": width, "task": ctx.task_id}


async def test_every_plugin_form_runs_as_one_kind_of_entry(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    class SeedSync:  # the seed's form: a class, instantiated by the registry
        def run(self, parameters: dict[str, str]) -> str:
            return f"seed {parameters['x']}"

    class SeedWithContext:
        async def run(self, parameters: dict[str, str], ctx: TaskContext) -> int:
            return ctx.task_id

    class Ready:  # a ready object, sync, asking for its context
        def run(self, parameters: dict[str, str]) -> int:
            return current().task_id

    def function(parameters: dict[str, str]) -> str:
        return f"{threading.current_thread().name.split('-')[0]} {parameters['x']}"

    async def coroutine(parameters: dict[str, str]) -> str:
        return f"async {parameters['x']}"

    # What @task builds, without declaring it to every registry of the test process.
    declared = TypedTask(
        "forms_task", _declared, description=None, max_retries=None, timeout=None, backoff=None, permanent=()
    )
    registry = registry_with(
        seed=SeedSync, seed_ctx=SeedWithContext, ready=Ready(), function=function, coroutine=coroutine,
        declared=declared,
    )  # fmt: skip
    entries = {name: registry.entry(name) for name in registry.names()}
    assert {type(entry) for entry in entries.values()} == {TaskEntry}
    assert all(registry.entry(name) is entry for name, entry in entries.items())  # adapted once
    assert {name for name, entry in entries.items() if entry.is_async} == {"seed_ctx", "coroutine"}
    assert registry.declaration("declared") == declared.spec
    # No plugin's shape is looked at again once registered: the worker only calls entries.
    monkeypatch.setattr(plugins, "_takes_second", lambda function: pytest.fail("inspected per call"))

    forms = ["seed", "seed_ctx", "ready", "function", "coroutine", "declared"]
    created = await store.create_tasks(
        [NewTask(f, f, {"width": "7"} if f == "declared" else {"x": "1"}) for f in forms]
    )
    ids = dict(zip(forms, [task_id for task_id, _ in created], strict=True))
    async with running_worker(store, settings, registry):
        for task_id in ids.values():
            await eventually(lambda task_id=task_id: status_is(store, task_id, Status.SUCCEEDED))
    results = {form: [e.result for e in await store.executions(ids[form])] for form in forms}
    assert results == {
        "seed": ["seed 1"],
        "seed_ctx": [ids["seed_ctx"]],
        "ready": [ids["ready"]],
        "function": ["plugin 1"],
        "coroutine": ["async 1"],
        "declared": [{"width": 7, "task": ids["declared"]}],
    }


def test_a_serving_process_keeps_what_it_started_with_out_of_the_collectors_way() -> None:
    # In a process of its own: gc.freeze and the threshold are the whole process's.
    code = (
        "import gc; from taskservice.worker.serve import GC_YOUNG_THRESHOLD, keep_out_of_the_collectors_way\n"
        "import weakref\nclass Cycle: pass\n"
        "c = Cycle(); c.me = c; dead = weakref.ref(c); del c\n"  # garbage made before: collected, not kept
        "before = gc.get_threshold(); keep_out_of_the_collectors_way()\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "assert gc.get_count()[0] < 100 and gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])\n"
        "assert dead() is None\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
