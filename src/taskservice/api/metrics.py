"""Prometheus metrics: RPC counts, errors and durations; tasks by status; queue depth, overall and by
queue; paused queues and task types; per limit, its tasks waiting and running and its keys waiting and full;
tasks no live worker runs; run times."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from taskservice.store import Store

REQ = TypeVar("REQ")
RES = TypeVar("RES")

RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


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
        self._runs_seen_until = datetime.now(UTC)

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
        for kind, outcome, seconds, finished_at in await store.executions_finished_since(
            self._runs_seen_until
        ):
            self.run_seconds.labels(kind, outcome).observe(seconds)
            self._runs_seen_until = finished_at

    def endpoint(self, store: Callable[[], Store | None]) -> Callable[[Request], Awaitable[Response]]:
        async def metrics(request: Request) -> Response:
            current = store()
            if current is not None:
                await self.refresh(current)
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return metrics
