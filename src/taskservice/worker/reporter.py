"""The reporter: writes the outcomes of finished attempts, many per statement when they pile up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import structlog

from taskservice import model
from taskservice.model import Transition
from taskservice.rules.transient import is_transient
from taskservice.worker.queue import WorkQueue

log = structlog.get_logger(__name__)

# Outcomes one statement (or one ReportOutcomes call: its limit) writes at most. One statement of
# everything a stall left would take the longer the more it holds, and grow the next backlog with it.
WRITE_BATCH = model.BATCH_MAX


class Reporter:
    """Queues transitions and writes each backlog in one round trip per WRITE_BATCH of them.

    No artificial delay: an outcome is written as soon as the previous write is done, so under light
    load each goes alone (lowest latency) and under heavy load they share commits (highest throughput),
    at most WRITE_BATCH a statement. `on_written` is called after each write (the worker claims no
    more while its backlog is long: Worker.free_slots).

    One outcome the database refuses (a result it cannot store, say) must not block the others: a
    batch that fails for such a reason is written again one by one, and the one refused is stored
    as a failed attempt saying why (`model.unstorable`). A database that is down is waited for.
    Outcomes the store refuses because their attempt is no longer current go to `on_refused`.
    """

    def __init__(
        self,
        store: WorkQueue,
        on_refused: Callable[[set[int]], None],
        retry_delay: float = 0.5,
        on_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.on_refused, self.retry_delay = store, on_refused, retry_delay
        self.on_written = on_written
        self._pending: list[Transition] = []
        self._writing: list[Transition] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def report(self, transition: Transition) -> None:
        self._pending.append(transition)
        self._idle.clear()
        self._ready.set()

    def unwritten(self) -> list[int]:
        """The execution ids of outcomes not written yet (queued or being written): still leased."""
        return [t.execution_id for t in (*self._writing, *self._pending)]

    @property
    def backlog(self) -> int:
        """How many outcomes are not written yet."""
        return len(self._writing) + len(self._pending)

    name = "reporter"

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reporter")

    async def drain(self) -> None:
        """Wait until everything reported so far is written."""
        await self._idle.wait()

    async def stop(self, timeout: float | None = None) -> None:
        """Write what is left, for at most `timeout` seconds, then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), timeout)
        left = len(self._pending) + len(self._writing)
        if left:
            log.error("outcomes not written; their leases will expire and the tasks run again", count=left)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            self._writing, self._pending = self._pending[:WRITE_BATCH], self._pending[WRITE_BATCH:]
            try:
                await self._write(self._writing)
            except Exception as error:
                if not is_transient(error):
                    raise  # a bug, not the database: the worker stops and says why (supervisor.py)
                # The database is unavailable: keep them and try again (their leases are kept meanwhile).
                log.warning("writing outcomes failed; retrying", error=str(error), count=len(self._writing))
                self._pending[:0] = self._writing
                self._writing = []
                await asyncio.sleep(self.retry_delay)
                self._ready.set()
                continue
            self._writing = []
            if self._pending:
                self._ready.set()
            else:
                self._idle.set()
            self.on_written()

    async def _write(self, batch: Sequence[Transition]) -> None:
        """Write `batch`; an outcome the database refuses is replaced by a failure that says so."""
        try:
            self._refused(batch, await self.store.finish(batch))
            return
        except Exception as error:
            if is_transient(error):
                raise
            if len(batch) > 1:
                log.warning("a batch of outcomes was refused; writing them one by one", error=str(error))
            else:
                log.error("an outcome was refused; storing its attempt as failed", error=str(error))
            problem = str(error)
        if len(batch) == 1:
            [refused] = batch
            try:
                self._refused(batch, await self.store.finish([model.unstorable(refused, problem)]))
            except Exception as error:
                if is_transient(error):
                    raise
                # Never seen; if it happens the lease expires and the task runs again.
                log.error("the failure of a refused outcome was refused too", error=str(error))
            return
        for transition in batch:
            await self._write([transition])

    def _refused(self, batch: Sequence[Transition], counted: set[int]) -> None:
        refused = {t.execution_id for t in batch} - counted
        if refused:
            log.info("outcomes refused: their attempts are no longer current", count=len(refused))
            with contextlib.suppress(Exception):
                self.on_refused(refused)
