"""What one attempt of a task knows about itself: `TaskContext`, its cancellation signal, its lease,
`current()`."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from taskservice.model import STEP_NAME, STEP_NAME_RULE, STEPS_MAX, SpawnedTask, TaskOptions

if TYPE_CHECKING:
    from taskservice.config import Settings

_CURRENT: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("taskservice_task_context")


class Cancelled(Exception):
    """Raised by `TaskContext.raise_if_cancelled()`: the worker gave up on this attempt."""


class NotCurrent(Cancelled):
    """Raised by `TaskContext.ensure_current()`: this attempt must not act any more (its lease ran
    out, say, while the worker was paused: another attempt may be doing the same work now)."""


class Lease:
    """An attempt's lease as its worker knows it: it lasts until `expires_at`, a reading of `clock`
    (the worker's monotonic clock) that each heartbeat moves on. Read from any thread: a float."""

    __slots__ = ("clock", "expires_at")

    def __init__(self, expires_at: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.expires_at, self.clock = expires_at, clock

    def passed(self) -> bool:
        return self.clock() >= self.expires_at


# Held only while a signal is set or a thread starts waiting on one: rare, and brief.
_WAITERS = threading.Lock()


class CancelSignal:
    """Set once, by the worker, when it gives up on the attempt (timeout, cancel, lost lease, stop).

    Async plugins can `await signal.wait()`; sync plugins, which run in a thread, poll `is_set()` or
    block in `wait_blocking(timeout)`. An async plugin is also cancelled the usual asyncio way: the
    signal is for work that a cancellation does not reach (a thread, a shielded section, a cleanup).
    """

    __slots__ = ("_event", "_set", "_thread_event", "reason")

    def __init__(self) -> None:
        self._set = False
        # Each made on first wait only: most attempts never wait, and a threading.Event (a Condition
        # and its lock) per attempt was 4% of a worker's CPU (docs/performance.md).
        self._thread_event: threading.Event | None = None
        self._event: asyncio.Event | None = None
        self.reason = ""

    def set(self, reason: str) -> None:
        """Called on the worker's event loop."""
        with _WAITERS:  # against a thread's wait_blocking making its event meanwhile
            if self._set:
                return
            self.reason = reason
            self._set = True
            waiting = self._thread_event
        if waiting is not None:
            waiting.set()
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> str:
        """Wait until the attempt is cancelled; returns the reason. Only on the worker's event loop."""
        if not self.is_set():
            if self._event is None:
                self._event = asyncio.Event()
            await self._event.wait()
        return self.reason

    def wait_blocking(self, timeout: float | None = None) -> bool:
        """For sync plugins (in a thread): wait up to `timeout` seconds; True when cancelled."""
        with _WAITERS:
            if self._set:
                return True
            if self._thread_event is None:
                self._thread_event = threading.Event()
            waiting = self._thread_event
        return waiting.wait(timeout)


class WaitForChildren:
    """What a plugin returns (`return ctx.wait_for_children()`) to run again once every child this
    attempt spawned has succeeded: a continuation. Its next attempt reads their results in
    `ctx.children`. A child that fails for good cancels it."""

    def __repr__(self) -> str:
        return "WaitForChildren()"


@dataclass
class TaskContext:
    """One attempt of one task, as its plugin sees it."""

    task_id: int
    task_type: str
    attempt: int  # 1 for the first attempt
    timeout_seconds: float
    settings: Settings  # the worker's settings (what `task-cli serve` was started with)
    # Stable for the task across its attempts (and retries by hand): give it to the systems the task
    # writes to, so that they can drop a repeated write (send_email makes it the Message-ID). The
    # task's own idempotency key when it has one, else derived from this installation and the task id.
    idempotency_key: str
    cancellation: CancelSignal = field(default_factory=CancelSignal)
    # The attempt's lease on the worker's clock (None outside a worker: a plugin called directly).
    lease: Lease | None = None
    # A workflow step's (migration 0070): its workflow and step name, and the results of the tasks it
    # waited for, by step name: its parents, the children a parent spawned, and its own children when
    # it runs again after them (also in `children`). Past 16 MiB of results in all, the later ones
    # are left out and named in `parents_left_out`.
    workflow_id: int | None = None
    step: str | None = None
    parents: Mapping[str, Any] = field(default_factory=dict)
    parents_left_out: tuple[str, ...] = ()
    # The children this attempt spawned so far (ctx.spawn): created with its outcome if it succeeds.
    spawned: list[SpawnedTask] = field(default_factory=list)
    # The span of this plugin call (an OpenTelemetry Span) when the worker traces, else None: add
    # attributes or events to it; spans a plugin starts meanwhile are its children (docs/observability.md).
    span: Any = None
    _started: float = field(default_factory=time.monotonic, repr=False)
    _logger: Any = field(default=None, repr=False)

    @property
    def children(self) -> dict[str, Any]:
        """The results of the children this task spawned and waited for (a continuation's next run),
        by the name each was spawned with."""
        prefix = f"{self.step or f'task-{self.task_id}'}/"
        return {
            name[len(prefix) :]: result for name, result in self.parents.items() if name.startswith(prefix)
        }

    def spawn(
        self,
        task_type: str,
        parameters: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        options: TaskOptions | None = None,
    ) -> str:
        """Create a child task of `task_type` when this attempt succeeds, in the transaction of its
        outcome: a crashed attempt creates none, and its re-run creates them then. The steps that wait
        for this task wait for its children too, and read their results (by "<this step>/<name>");
        `return ctx.wait_for_children()` makes this task itself wait for them and run again.
        `name` (default: its number among this attempt's spawns, "0", "1"...) is unique under this
        task: a name spawned by an earlier attempt creates nothing. Returns the name. At most 1000."""
        child = name if name is not None else str(len(self.spawned))
        if not STEP_NAME.fullmatch(child):
            raise ValueError(f"spawn: name must be {STEP_NAME_RULE} (got {child[:40]!r})")
        if any(s.name == child for s in self.spawned):
            raise ValueError(f"spawn: {child!r} was spawned already by this attempt")
        if len(self.spawned) >= STEPS_MAX:
            raise ValueError(f"spawn: at most {STEPS_MAX} children per attempt")
        chosen = options or TaskOptions()
        if chosen.idempotency_key or chosen.delay_seconds or chosen.run_at:
            raise ValueError("spawn: a child has no idempotency_key, delay_seconds or run_at")
        task = chosen.new_task(task_type, {str(k): str(v) for k, v in (parameters or {}).items()})
        self.spawned.append(SpawnedTask(child, task))
        return child

    def wait_for_children(self) -> WaitForChildren:
        """Return this from the plugin to run again once the children it spawned have all succeeded."""
        if not self.spawned:
            raise ValueError("wait_for_children: this attempt spawned no child (ctx.spawn) to wait for")
        return WaitForChildren()

    @property
    def deadline(self) -> datetime:
        """When the worker stops waiting for this attempt (its start plus the task's timeout), UTC."""
        left = self.time_left()
        return datetime.now(UTC) + timedelta(seconds=left)

    def time_left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self._started + self.timeout_seconds - time.monotonic()

    @property
    def cancelled(self) -> bool:
        return self.cancellation.is_set()

    def raise_if_cancelled(self) -> None:
        """For long loops in sync plugins: stop at a safe point once the worker has given up."""
        if self.cancellation.is_set():
            raise Cancelled(self.cancellation.reason)

    def ensure_current(self) -> None:
        """Call right before a side effect (sending, charging, writing elsewhere): raises NotCurrent
        when the worker gave up on this attempt or its lease has run out on the worker's clock.

        Cheap (a flag and a clock reading) and good in any thread. It is what keeps a worker that was
        paused past its lease (SIGSTOP, a frozen VM, a long swap) from acting on waking, in the instant
        before the worker itself notices: the task may be running elsewhere by then. `send_email`
        calls it right before sending. It cannot make the effect exactly-once (the effect itself can
        still outlast the lease): pass `idempotency_key` on too.
        """
        if self.cancellation.is_set():
            raise NotCurrent(f"the attempt is no longer current: {self.cancellation.reason}")
        if self.lease is not None and self.lease.passed():
            raise NotCurrent("the attempt is no longer current: its lease ran out on this worker's clock")

    @property
    def log(self) -> Any:
        """A structlog logger bound to the task (task_id, type, attempt)."""
        if self._logger is None:
            self._logger = structlog.get_logger("taskservice.task").bind(
                task_id=self.task_id, type=self.task_type, attempt=self.attempt
            )
        return self._logger


def current() -> TaskContext:
    """The context of the attempt running here (in its task or thread); LookupError outside one."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise LookupError("no task attempt is running here: current() works inside a plugin") from None


def enter(context: TaskContext) -> None:
    """Make `context` the current one for the rest of the calling asyncio task (the worker's attempt)."""
    _CURRENT.set(context)


def current_or_none() -> TaskContext | None:
    """The running attempt's context, or None outside one (a plugin called directly, in a test)."""
    return _CURRENT.get(None)


def settings_for(plugin: str, given: Settings | None, ctx: TaskContext | None) -> Settings:
    """A plugin's settings: those it was made with, else the running attempt's (the worker's own);
    never read from the environment here."""
    if given is not None:
        return given
    ctx = ctx or current_or_none()
    if ctx is None:
        raise RuntimeError(f"{plugin} has no settings: make it with settings, or run it in a worker")
    return ctx.settings
