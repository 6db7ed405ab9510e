"""A worker's helpers as one unit: when one dies, the worker hears why and stops, rather than running on
without its heartbeat, reporter or wake-up line while the exception goes unseen."""

from __future__ import annotations

import asyncio
import functools
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class Helper(Protocol):
    """A background job of a worker (listener, heartbeat, reaper, reporter, retention, agent stream)."""

    name: str

    @property
    def task(self) -> asyncio.Task[None] | None: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class HelperDied(Exception):
    """A helper of the worker ended with an error; the worker stopped because of it."""


class Supervisor:
    """Starts helpers and watches them: a helper that ends by raising sets `failed`, with `reason`.

    A helper that ends because it was stopped (its loop returns or is cancelled) is not a failure.
    """

    def __init__(self) -> None:
        self.failed = asyncio.Event()
        self.reason = ""

    def start(self, *helpers: Helper) -> None:
        for helper in helpers:
            helper.start()
            task = helper.task
            assert task is not None, f"{helper.name} started no task"
            task.add_done_callback(functools.partial(self._ended, helper.name))

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        reason = f"{name} failed: {str(error) or type(error).__name__}"
        log.error("a worker helper died; the worker stops", helper=name, error=repr(error))
        if not self.failed.is_set():
            self.reason = reason
            self.failed.set()
