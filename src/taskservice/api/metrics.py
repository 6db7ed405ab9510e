"""Prometheus metrics: RPC counts, errors and durations (unary calls and streams), open streams; tasks
by status; queue depth, overall and by queue; paused queues and task types; per limit, its tasks waiting
and running and its keys waiting and full; tasks no live worker runs; attempts started and ended, their
run times and queue waits, by task type and queue; the agents connected to this server and their slots;
the dead tuples of our hot tables, and whether and when autovacuum vacuums them.

The attempt figures are read from the database at scrape time (so that workers and agents need no
metrics endpoint of their own): each scrape reads the attempts started since the previous one by
primary key, at most ATTEMPT_BATCH of them (the rest at the next scrape), and looks again at those it
saw running. Every replica reads every attempt: its counters are the whole cluster's since its first
scrape (docs/observability.md, "Metrics": aggregate replicas with max, not sum)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from taskservice.api.dispatch import Session
from taskservice.model import Outcome
from taskservice.store import AttemptFigures, Store

REQ = TypeVar("REQ")
RES = TypeVar("RES")

RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
# From "picked at once" to "waited a day behind a backlog or a pause".
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)
ATTEMPT_BATCH = 10_000  # attempts read per scrape at most; the rest are read by the next scrapes
# An id missing from a batch (its claim had not committed yet, or rolled back) is looked for again at
# the next scrapes for this long, and at most this many such ids are kept.
MISSING_SECONDS = 60.0
MISSING_MAX = 10_000
# How an attempt can end (model.Outcome): any other value is counted as "other", so that the label
# stays bounded whatever a row holds.
ENDED = frozenset(
    {
        Outcome.SUCCEEDED,
        Outcome.FAILED,
        Outcome.TIMED_OUT,
        Outcome.INTERRUPTED,
        Outcome.LOST,
        Outcome.CANCELLED,
    }
)


class Metrics:
    """The server's metrics, in a registry of their own."""

    def __init__(self, worker_alive_seconds: float = 30.0) -> None:
        self.registry = CollectorRegistry()
        self.worker_alive_seconds = worker_alive_seconds  # LEASE_SECONDS: a worker heard from within is live
        self.requests = Counter(
            "taskservice_rpc_requests", "RPCs handled, by method and Connect code",
            ["method", "code"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "taskservice_rpc_errors", "RPCs that ended in an error, by method and Connect code",
            ["method", "code"], registry=self.registry,
        )  # fmt: skip
        self.durations = Histogram(
            "taskservice_rpc_duration_seconds", "Time to handle an RPC, by method",
            ["method"], registry=self.registry,
        )  # fmt: skip
        self.tasks = Gauge("taskservice_tasks", "Tasks by status", ["status"], registry=self.registry)
        self.queue_depth = Gauge(
            "taskservice_queue_depth", "Tasks due now and waiting for a worker", registry=self.registry
        )
        self.queue_waiting = Gauge(
            "taskservice_queue_waiting", "Tasks waiting (QUEUED or RETRYING) in each queue, due or not",
            ["queue"], registry=self.registry,
        )  # fmt: skip
        self.paused = Gauge(
            "taskservice_paused", "1 for each paused queue (kind=queue) or task type (kind=type)",
            ["kind", "name"], registry=self.registry,
        )  # fmt: skip
        self.without_worker = Gauge(
            "taskservice_tasks_without_worker",
            "Tasks waiting (QUEUED or RETRYING) whose type no live worker or agent runs, by type",
            ["type"], registry=self.registry,
        )  # fmt: skip
        # By limit only (scope: type:<name> or queue:<name>): a label per key would grow with the customers.
        self.limits = {
            field: Gauge(f"taskservice_limit_{field}", help_text, ["scope"], registry=self.registry)
            for field, help_text in (
                ("waiting", "Tasks waiting (due or not) under each concurrency or rate limit"),
                ("keys_waiting", "Keys with tasks waiting under each limit"),
                ("most_for_a_key", "The most tasks waiting for one key under each limit"),
                ("running", "Attempts running under each limit"),
                ("keys_at_limit", "Keys with as many attempts running as their concurrency limit allows"),
            )
        }
        self.run_seconds = Histogram(
            "taskservice_task_run_seconds", "How long attempts ran, by task type and outcome",
            ["type", "outcome"], buckets=RUN_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.attempts_started = Counter(
            "taskservice_attempts_started", "Attempts started, by task type and queue",
            ["type", "queue"], registry=self.registry,
        )  # fmt: skip
        self.attempts_ended = Counter(
            "taskservice_attempts_ended",
            "Attempts that ended, by task type, queue and outcome (succeeded, failed, timed_out, "
            "interrupted, lost, cancelled)",
            ["type", "queue", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.attempts_retried = Counter(
            "taskservice_attempts_retried",
            "Attempts that ended failed, timed out or lost after which their task was to run again",
            ["type", "queue"], registry=self.registry,
        )  # fmt: skip
        self.attempt_seconds = Histogram(
            "taskservice_attempt_duration_seconds", "How long attempts ran, by task type and queue",
            ["type", "queue"], buckets=RUN_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "taskservice_attempt_queue_wait_seconds",
            "From when a task was due (created, or its delay or retry's backoff over) to its attempt's start",
            ["type", "queue"], buckets=WAIT_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.streams_open = Gauge(
            "taskservice_streams_open", "Streaming RPCs open on this server, by method",
            ["method"], registry=self.registry,
        )  # fmt: skip
        self.agent_sessions = Gauge(
            "taskservice_agent_sessions", "Agents connected to this server (PullEvents sessions)",
            registry=self.registry,
        )  # fmt: skip
        self.agent_slots = Gauge(
            "taskservice_agent_slots", "Slots (attempts at once) of the agents connected to this server",
            registry=self.registry,
        )  # fmt: skip
        self.agent_assignments = Gauge(
            "taskservice_agent_assignments",
            "Attempts handed to the agents connected to this server and not yet reported",
            registry=self.registry,
        )  # fmt: skip
        # Our hot tables (store/maintenance.HOT_TABLES) as autovacuum sees them (worker/maintenance.py).
        self.dead_tuples = Gauge(
            "taskservice_table_dead_tuples", "Dead tuples of each of our hot tables (pg_stat_user_tables)",
            ["table"], registry=self.registry,
        )  # fmt: skip
        self.autovacuum_threshold = Gauge(
            "taskservice_table_autovacuum_threshold",
            "The dead tuples at which autovacuum vacuums each of our hot tables (its own formula)",
            ["table"], registry=self.registry,
        )  # fmt: skip
        self.autovacuum_enabled = Gauge(
            "taskservice_table_autovacuum_enabled",
            "1 when autovacuum vacuums the table (on for the server and the table, track_counts on), else 0",
            ["table"], registry=self.registry,
        )  # fmt: skip
        self._attempts_after: int | None = None  # the newest attempt id read; None until a scrape
        self._running: set[int] = set()  # attempts read while running: read again until they end
        self._missing: dict[int, float] = {}  # ids skipped by a batch, with when they were first missed

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> RES:
        """A Connect interceptor counting and timing every unary RPC."""
        method = ctx.method().name
        started = time.perf_counter()
        code = "ok"
        try:
            return await call_next(request, ctx)
        except ConnectError as error:
            code = error.code.value
            raise
        except Exception:
            code = "unknown"
            raise
        finally:
            self.durations.labels(method).observe(time.perf_counter() - started)
            self.requests.labels(method, code).inc()
            if code != "ok":
                self.errors.labels(method, code).inc()

    async def intercept_server_stream(
        self,
        call_next: Callable[[REQ, RequestContext[REQ, RES]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[REQ, RES],
    ) -> AsyncIterator[RES]:
        """Count and time a server stream as a unary call (from its start to its end), and count it
        open meanwhile. A stream its client left ends `canceled`."""
        method = ctx.method().name
        started = time.perf_counter()
        code = "ok"
        self.streams_open.labels(method).inc()
        stream = call_next(request, ctx)
        try:
            async for response in stream:
                yield response
        except ConnectError as error:
            code = error.code.value
            raise
        except (GeneratorExit, asyncio.CancelledError):
            code = "canceled"
            raise
        except Exception:
            code = "unknown"
            raise
        finally:
            # Closed now, not when collected: the stream's own cleanup (an agent's session put back)
            # runs as soon as its client is gone (as ErrorCodes does).
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            self.streams_open.labels(method).dec()
            self.durations.labels(method).observe(time.perf_counter() - started)
            self.requests.labels(method, code).inc()
            if code != "ok":
                self.errors.labels(method, code).inc()

    def count_agents(self, sessions: Iterable[Session]) -> None:
        """The agents connected to this server now, their slots and their attempts outstanding."""
        count = slots = outstanding = 0
        for session in sessions:
            count, slots, outstanding = (
                count + 1,
                slots + session.slots,
                outstanding + len(session.outstanding),
            )
        self.agent_sessions.set(count)
        self.agent_slots.set(slots)
        self.agent_assignments.set(outstanding)

    async def read_attempts(self, store: Store) -> None:
        """Count the attempts started and ended since the last scrape (see the module's docstring).

        The first scrape only notes where to start. An attempt is counted started the first time it
        is read, ended the first time it is read finished; one read running is read again at the next
        scrapes, by id. An id a batch skipped is looked for again for MISSING_SECONDS: a claim takes
        its ids when it runs and commits a little later, so a later claim's may be read first."""
        if self._attempts_after is None:
            self._attempts_after = await store.last_attempt_id()
            return
        after = self._attempts_after
        again = self._running | self._missing.keys()
        rows = await store.attempts_after(after, ATTEMPT_BATCH, sorted(again))
        if not rows and await store.last_attempt_id() < after:
            # The ids went back (the table was emptied and its identity restarted, or a database
            # restored): start over from the newest, as at a first scrape.
            self._attempts_after = await store.last_attempt_id()
            self._running.clear()
            self._missing.clear()
            return
        read = {row.id for row in rows}
        self._count(rows)
        newest = max((row.id for row in rows if row.id > after), default=after)
        now = time.monotonic()
        if newest - after - len(read) <= MISSING_MAX:
            for skipped in range(after + 1, newest):
                if skipped not in read:
                    self._missing.setdefault(skipped, now)
        for missing, since in list(self._missing.items()):
            if missing in read or now - since > MISSING_SECONDS:
                del self._missing[missing]
        while len(self._missing) > MISSING_MAX:  # the oldest first
            del self._missing[next(iter(self._missing))]
        # One read running and now gone (its task deleted) is not looked for again.
        self._running = {row.id for row in rows if not row.finished}
        self._attempts_after = newest

    def _count(self, rows: Iterable[AttemptFigures]) -> None:
        """Count the attempts read: those not seen running before as started, the finished as ended.
        (Each series is looked up once per batch: a full batch is 10,000 rows.)"""
        started: dict[tuple[str, str], int] = {}
        waits: dict[tuple[str, str], list[float]] = {}
        ended: dict[tuple[str, str, str], list[float | None]] = {}
        retried: dict[tuple[str, str], int] = {}
        for row in rows:
            if row.type is None or row.queue is None:  # its task is gone: not counted
                continue
            where = (row.type, row.queue)
            if row.id not in self._running:
                started[where] = started.get(where, 0) + 1
                if row.wait_seconds is not None:
                    waits.setdefault(where, []).append(max(row.wait_seconds, 0.0))
            if not row.finished:
                continue
            outcome = row.outcome if row.outcome in ENDED else "other"
            ended.setdefault((row.type, row.queue, outcome), []).append(row.run_seconds)
            if row.retried:
                retried[where] = retried.get(where, 0) + 1
        for where, count in started.items():
            self.attempts_started.labels(*where).inc(count)
        for where, count in retried.items():
            self.attempts_retried.labels(*where).inc(count)
        self._observe(waits, ended)

    def _observe(
        self, waits: dict[tuple[str, str], list[float]], ended: dict[tuple[str, str, str], list[float | None]]
    ) -> None:
        for where, seconds in waits.items():
            histogram = self.queue_wait.labels(*where)
            for wait in seconds:
                histogram.observe(wait)
        for (kind, queue, outcome), runs in ended.items():
            self.attempts_ended.labels(kind, queue, outcome).inc(len(runs))
            by_queue, by_outcome = (
                self.attempt_seconds.labels(kind, queue),
                self.run_seconds.labels(kind, outcome),
            )
            for run in runs:
                if run is not None:
                    by_queue.observe(run)
                    by_outcome.observe(run)

    async def refresh(self, store: Store) -> None:
        """Read the database-side figures (at scrape time: nothing to keep in step)."""
        for status, count in (await store.status_counts()).items():
            self.tasks.labels(status.name).set(count)
        self.queue_depth.set(await store.queue_depth())
        self.queue_waiting.clear()
        for queue, (waiting, _) in (await store.queue_counts()).items():
            self.queue_waiting.labels(queue).set(waiting)
        self.paused.clear()  # a resumed one drops out
        for pause in await store.pauses():
            self.paused.labels(pause.kind, pause.name).set(1)
        for gauge in self.limits.values():
            gauge.clear()  # a limit cleared for good drops out
        for figures in await store.limit_figures():
            for field, gauge in self.limits.items():
                gauge.labels(figures.scope).set(getattr(figures, field))
        orphaned = await store.waiting_without_live_worker(self.worker_alive_seconds)
        # Only the types that have such tasks now: one whose workers came back drops out.
        self.without_worker.clear()
        for kind, count in orphaned.items():
            self.without_worker.labels(kind).set(count)
        await self.read_vacuum(store)
        await self.read_attempts(store)

    async def read_vacuum(self, store: Store) -> None:
        """Our hot tables' dead tuples, and whether and when autovacuum vacuums them (one read)."""
        state = await store.vacuum_state()
        for table in state.tables:
            self.dead_tuples.labels(table.table).set(table.dead)
            self.autovacuum_threshold.labels(table.table).set(table.autovacuum_at)
            self.autovacuum_enabled.labels(table.table).set(int(state.autovacuum_runs_on(table)))

    def endpoint(
        self,
        store: Callable[[], Store | None],
        sessions: Callable[[], Iterable[Session]] = tuple,
    ) -> Callable[[Request], Awaitable[Response]]:
        lock = asyncio.Lock()  # two scrapes at once would read the same attempts twice

        async def metrics(request: Request) -> Response:
            current = store()
            async with lock:
                self.count_agents(sessions())
                if current is not None:
                    await self.refresh(current)
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return metrics
