"""What the server starts when its ASGI lifespan begins, and stops when it ends.

The database (migrated, then pooled), the store, event hub and agents' dispatcher the services work
with, the credentials the access check reads, the worker package's helpers (worker.serve's
InProcessWorkers: the lease reaper, the retention and maintenance jobs, and a worker when
WORKER_CONCURRENCY > 0), a warning when autovacuum does not vacuum our tables, the line that
empties the credential cache when a token is revoked anywhere, and, once all that is made, a worker's
settings of the garbage collector (worker.serve.keep_out_of_the_collectors_way).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog

from taskservice import tracing
from taskservice.api.auth_service import AuthService
from taskservice.api.dispatch import Dispatcher
from taskservice.api.events import EventHub
from taskservice.api.health import Readiness
from taskservice.api.service import TaskService
from taskservice.auth.cache import CredentialCache
from taskservice.background.listener import Listener
from taskservice.config import Settings
from taskservice.db import migrate
from taskservice.db.connect import create_pool
from taskservice.plugins import Registry
from taskservice.store import CREDENTIALS_CHANNEL, Credentials, Store
from taskservice.store.databases import database_url
from taskservice.store.sql import query
from taskservice.worker.serve import (
    InProcessWorkers,
    keep_out_of_the_collectors_way,
    task_defaults,
    warn_about_vacuum,
)

log = structlog.get_logger(__name__)


class Lifespan:
    """Starts and stops the server's resources; `credentials` is set while the server runs."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        service: TaskService,
        auth_service: AuthService,
        readiness: Readiness,
        cache: CredentialCache,
        auth_required: bool,
    ) -> None:
        self.settings, self.registry, self.service, self.auth_service = (
            settings,
            registry,
            service,
            auth_service,
        )
        self.readiness, self.cache, self.auth_required = readiness, cache, auth_required
        self.credentials: Credentials | None = None

    @contextlib.asynccontextmanager
    async def __call__(self, app: Any) -> AsyncIterator[None]:
        settings = self.settings
        url = await asyncio.to_thread(database_url, settings)
        await asyncio.to_thread(migrate.upgrade, url)
        pool = await create_pool(
            url, max_size=settings.db_pool_max_conns, command_timeout=settings.db_command_timeout
        )
        store = Store(pool, task_defaults(settings))
        events = EventHub(store, settings.events_poll_interval)
        dispatcher = Dispatcher(store, url, settings.lease_seconds, settings.poll_interval)
        dispatcher.start()
        self.service.attach(store, events, dispatcher)
        self.credentials = Credentials(pool)
        self.auth_service.attach(self.credentials)
        forgetter = Listener(url, self.cache.heard, channel=CREDENTIALS_CHANNEL, on_lost=self.cache.lost)
        if self.auth_required and self.cache.ttl > 0:
            forgetter.start()
        self.readiness.store = store
        await warn_about_vacuum(settings, store)
        await warn_without_window_index(store)
        in_process = InProcessWorkers(settings, store, url, self.registry)
        in_process.start()
        if self.auth_required:
            await self._warn_without_admin(self.credentials)
        # What it made to start lives as long as it does: out of the collector's way, as a worker's.
        keep_out_of_the_collectors_way()
        log.info(
            "server ready", workers_in_process=settings.worker_concurrency, auth_required=self.auth_required
        )
        try:
            yield
        finally:
            self.readiness.store = None
            await in_process.stop()
            await dispatcher.stop()
            await events.stop()
            await forgetter.stop()
            await pool.close()
            await asyncio.to_thread(tracing.shutdown)  # the spans not sent yet go now

    @staticmethod
    async def _warn_without_admin(credentials: Credentials) -> None:
        if not await credentials.live_tokens("admin"):
            log.warning(
                "auth is required and no admin token exists: create one on a machine that reaches the "
                "database with `task-cli token create --name admin --role admin`"
            )


async def warn_without_window_index(store: Store) -> bool:
    """At start: a warning when the dashboard's windows will read every attempt on a PostgreSQL that
    could read them through an index (a database moved to 16 or later by pg_upgrade after migration
    0120), with the statement that puts it back. Whether it warned."""
    try:
        if not await store.window_index_missing():
            return False
    except Exception as error:  # never a reason not to start
        log.warning("could not check the dashboard's window index", error=str(error))
        return False
    log.warning(
        "the dashboard's throughput and per-type figures read every attempt: the index they read from "
        "PostgreSQL 16 on is missing (dropped by migration 0120 on an earlier server, then moved by "
        f"pg_upgrade); to put it back, run: {query('create_window_index')}"
    )
    return True
