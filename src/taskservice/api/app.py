"""The ASGI application: the Connect services beside health, metrics and the dashboard's route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route

from taskservice import dashboard
from taskservice.api import codecs
from taskservice.api.events import EventHub
from taskservice.api.health import HealthService, Readiness, healthz, readyz_endpoint
from taskservice.api.ids import NarrowIdGuard
from taskservice.api.metrics import Metrics
from taskservice.api.service import TaskService
from taskservice.config import Settings
from taskservice.db import migrate
from taskservice.db.connect import create_pool
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceASGIApplication
from taskservice.gen.grpc.health.v1.health_connect import HealthASGIApplication
from taskservice.plugins import Registry
from taskservice.store import RetentionPolicy, Store
from taskservice.store.databases import database_url
from taskservice.worker.runtime import Worker
from taskservice.worker.serve import retention_job, task_defaults, worker_options

log = structlog.get_logger(__name__)

# Headers a browser client of the Connect protocol sends and reads.
CONNECT_EXPOSED_HEADERS = [
    "Connect-Protocol-Version", "Connect-Timeout-Ms", "Content-Encoding", "Connect-Content-Encoding",
    "Connect-Accept-Encoding", "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin",
]  # fmt: skip


def create_app(settings: Settings, registry: Registry | None = None) -> Starlette:
    """The whole server; it connects, migrates and starts its helpers when the ASGI lifespan starts."""
    codecs.install()
    registry = registry or Registry()
    service = TaskService(registry, worker_alive_seconds=settings.lease_seconds)
    readiness = Readiness()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        url = await asyncio.to_thread(database_url, settings)
        await asyncio.to_thread(migrate.upgrade, url)
        pool = await create_pool(url, max_size=settings.db_pool_max_conns)
        store = Store(pool, task_defaults(settings))
        events = EventHub(store, settings.events_poll_interval)
        service.attach(store, events)
        readiness.store = store
        stop_worker = asyncio.Event()
        worker_run = None
        if settings.worker_count > 0:
            worker = Worker(store, url, registry, worker_options(settings, settings.worker_count, ()))
            worker_run = asyncio.create_task(worker.run(stop_worker), name="in-process-worker")
        retention = retention_job(settings, store)
        retention.start()
        log.info("server ready", workers_in_process=settings.worker_count)
        try:
            yield
        finally:
            readiness.store = None
            await retention.stop()
            stop_worker.set()
            if worker_run is not None:
                await worker_run
            await events.stop()
            await pool.close()

    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    kept = RetentionPolicy(
        settings.retention_succeeded, settings.retention_failed, settings.retention_cancelled
    )
    routes = [
        *dashboard.routes(kept.describe()),
        Route("/healthz", healthz),
        Route("/readyz", readyz_endpoint(readiness)),
        Route("/metrics", metrics.endpoint(lambda: readiness.store)),
        Mount(
            "/cloud.v1.TaskManagementService",
            app=TaskManagementServiceASGIApplication(service, interceptors=[metrics, NarrowIdGuard()]),
        ),
        Mount("/grpc.health.v1.Health", app=HealthASGIApplication(HealthService(readiness))),
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["POST", "GET", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=CONNECT_EXPOSED_HEADERS,
            max_age=7200,
        )
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.end_streams = service.end_streams  # called by the server when it starts to stop
    return app
