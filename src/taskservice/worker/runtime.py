"""The worker runtime: claim due tasks, run their plugins with bounded concurrency, report each outcome."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from taskservice import model, tracing
from taskservice.background.listener import Listener
from taskservice.config import Settings, get_settings
from taskservice.model import Outcome, RetryPolicy, Transition
from taskservice.plugins import PermanentFailure, Registry, UnknownPluginType, context
from taskservice.plugins.context import Lease, TaskContext, WaitForChildren
from taskservice.rules.tasks import BrokenRule
from taskservice.rules.tasks import new_task as checked_task
from taskservice.store import Claim, Store
from taskservice.worker import failure
from taskservice.worker.errors import UnknownTaskTypes
from taskservice.worker.heartbeat import Heartbeat
from taskservice.worker.leases import LeaseBook, LeaseWatch
from taskservice.worker.queue import WorkQueue
from taskservice.worker.reaper import LeaseReaper
from taskservice.worker.reporter import Reporter
from taskservice.worker.supervisor import Helper, HelperDied, Supervisor
from taskservice.worker.threads import PluginCall, PluginThreads

log = structlog.get_logger(__name__)

# How long a stopping worker keeps trying to write the outcomes it has not written yet.
REPORT_DRAIN_SECONDS = 10.0
# The lease watch looks this many times a lease (and at once on waking from a pause).
LEASE_WATCHES = 6


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 10
    task_types: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()  # the queues it serves; empty: every queue
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    shutdown_grace: float = 30.0
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    max_result_bytes: int = 1024 * 1024
    # Stop once a claim finds nothing due and nothing runs (taskservice.testing.drain): no polling.
    drain: bool = False


def release() -> str | None:
    """The installed release of taskservice, as its workers and agents say it (None: not installed as
    a distribution)."""
    try:
        return importlib.metadata.version("taskservice")
    except importlib.metadata.PackageNotFoundError:
        return None


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def types_to_run(registry: Registry, wanted: Sequence[str]) -> tuple[str, ...]:
    """The task types a worker claims: its registry's, narrowed by `--type` (`wanted`), never a
    container task type (the Kubernetes agent's: plugins/container_types.py).

    Never empty, since the claim takes an empty list as every type (a worker that took a type it
    cannot run would fail its tasks for good). UnknownTaskTypes when `wanted` names a type the
    registry does not have, or the registry has none.
    """
    known = [name for name in registry.names() if registry.runs(name)]
    missing = sorted(set(wanted) - set(known))
    takes = tuple(sorted(set(wanted))) if wanted else tuple(known)
    if missing or not takes:
        containers = [name for name in missing if name in registry]  # known, yet not run: containers
        raise UnknownTaskTypes(missing, known, containers)
    return takes


_JSON_SCALARS = (str, int, float, bool, type(None))


def _surely_small(result: Any, max_bytes: int) -> bool:
    """Plain JSON already (the usual case) and small enough without encoding it to see: escaping
    makes a character at most 6 bytes."""
    if isinstance(result, str):
        chars = len(result)
    elif isinstance(result, _JSON_SCALARS):
        chars = 32
    elif type(result) is dict:
        chars = 0
        for k, v in result.items():  # a loop, not generators: this runs for every task's result
            if type(k) is not str or not isinstance(v, _JSON_SCALARS):
                return False
            chars += len(k) + len(str(v)) + 8
    else:
        return False
    return chars * 6 <= max_bytes


def stored_result(result: Any, max_bytes: int) -> Any:
    """The result as the attempt keeps it: JSON (anything JSON cannot say becomes its string), or
    when its JSON is over `max_bytes` (MAX_RESULT_BYTES), a marked preview (model.cut_result): the
    task still succeeds.
    """
    if _surely_small(result, max_bytes):
        return result
    # Encoded piece by piece and given up past the limit: a huge result is never encoded whole.
    pieces, size = [], 0
    for piece in json.JSONEncoder(default=str, ensure_ascii=False).iterencode(result):
        pieces.append(piece)
        size += len(piece.encode())
        if size > max_bytes:
            return model.cut_result("".join(pieces), max_bytes, min(max_bytes // 2, 65536))
    return json.loads("".join(pieces))


class _Deadline:
    """An attempt's timeout: cancels the attempt's task when it passes.

    What `asyncio.timeout` does for us at a third of its cost (it is paid for every task): one timer,
    and on expiry a cancellation the attempt recognises as its own (`expired`) and takes back.
    """

    __slots__ = ("_handle", "_signal", "_task", "expired")

    def __init__(self, seconds: float, signal: context.CancelSignal, task: asyncio.Task[Any]) -> None:
        self._task, self._signal, self.expired = task, signal, False
        self._handle = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._signal.set("timeout")
        self._task.cancel()

    def disarm(self) -> None:
        self._handle.cancel()

    def took_back(self) -> bool:
        """After a CancelledError: whether the deadline alone cancelled the attempt (now undone)."""
        return self.expired and self._task.uncancel() == 0


def _attempt_of(claim: Claim) -> dict[str, str | int]:
    task = claim.task
    return {
        "taskservice.task.id": task.id, "taskservice.task.type": task.type,
        "taskservice.attempt": task.attempts, "taskservice.execution_id": claim.execution_id,
        "taskservice.queue": task.queue,
    }  # fmt: skip


def _ended(span: Any, transition: Transition) -> None:
    """What the attempt's span says of how it ended: the outcome and status; an error's message."""
    span.set_attribute("taskservice.outcome", transition.outcome)
    span.set_attribute("taskservice.status", transition.status.name)
    if transition.error and transition.outcome != Outcome.SUCCEEDED:
        tracing.failed(span, transition.error)


def _describe(error: BaseException) -> str:
    """A message that says all there is (PermanentFailure, UnknownPluginType), bounded."""
    return model.cut_error(str(error) or type(error).__name__)


class Worker:
    """One worker: claims tasks for itself and keeps at most `concurrency` of them running.

    A direct worker (`listen_url` given) claims from the Store, wakes on its NOTIFY and reaps lost
    leases; an agent (no `listen_url`) is fed by its link to a server (worker/agent.py), whose stream
    comes in `helpers`. Either way its helpers run as one supervised unit: if one dies, the worker
    stops gracefully and `run` raises HelperDied saying which and why.
    """

    def __init__(
        self,
        store: WorkQueue,
        listen_url: str | None,
        registry: Registry,
        options: WorkerOptions,
        worker_id: str | None = None,
        *,
        settings: Settings | None = None,
        helpers: Sequence[Helper] = (),
        kind: str = "worker",
        source: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.registry, self.options, self.kind = store, registry, options, kind
        # Where the work comes from, for the start line: the database (no password) or the server.
        self.source = dict(source or {})
        self.id = worker_id or new_worker_id()
        # What it claims (and an agent asks its server for): checked here, so a bad --type stops it
        # before it starts.
        self.takes = types_to_run(registry, options.task_types)
        # What plugins get in their context: the settings this worker was started with.
        self.settings = settings or get_settings()
        self._installation = ""  # read at start: with a task id, the plugins' idempotency key
        # By task type: the retry policy and the errors that fail at once (from its declaration).
        self._policies: dict[str, tuple[RetryPolicy, tuple[type[BaseException], ...]]] = {}
        # By execution id, the cancellation signal of the attempt's context.
        self._signals: dict[int, context.CancelSignal] = {}
        # Bound once: the module's lazy proxy would build a logger on every call (twice a task).
        self._log = log.bind()
        # By execution id, the attempt's fencing token: what heartbeats and outcomes name.
        self._running: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._work_may_be_due = True
        self._stopping = False
        self._hurry = asyncio.Event()
        self._reporter = Reporter(store, on_refused=self._lost, on_written=self._outcomes_written)
        # By execution id, the attempt's lease on `clock` (monotonic; injectable for tests).
        self._leases = LeaseBook(options.lease_seconds, clock)
        self._heartbeat = Heartbeat(
            store, self.id, options.lease_seconds, self._held_now, self._lost, self._leases.extended, clock
        )
        self._watch = LeaseWatch(options.lease_seconds / LEASE_WATCHES, self._expire)
        # Sync plugins' threads: one per slot; a slot whose plugin outlived its attempt stays taken.
        self._threads = PluginThreads(options.concurrency, self._unstuck)
        # Stopped first when the worker stops: what brings work in, and the jobs beside it.
        self._intake: list[Helper] = []
        if listen_url is not None:
            assert isinstance(store, Store), "a direct worker claims from the Store"
            self._intake += [
                Listener(listen_url, self.work_arrived),
                LeaseReaper(store, options.retry_policy, options.lease_seconds / 2),
            ]
        self._intake += helpers
        self._supervisor = Supervisor()
        self.drained: list[Transition] = []  # in drain mode, every attempt's outcome, in order

    # -- wake-ups ----------------------------------------------------------------------------

    def stop_now(self) -> None:
        """End the grace period at once: unfinished tasks go back to the queue (a second Ctrl-C)."""
        self._hurry.set()

    def work_arrived(self) -> None:
        self._work_may_be_due = True
        self._wake.set()

    def held(self) -> list[int]:
        """The attempts whose leases this worker keeps: running, or with an outcome not yet written;
        not those whose lease ran out on its clock."""
        held = [*self._running, *self._reporter.unwritten()]
        ran_out = self._leases.ran_out
        if ran_out:
            ran_out.intersection_update(held)  # the rest are written: nothing to keep out any more
            held = [execution_id for execution_id in held if execution_id not in ran_out]
        return held

    def _held_now(self) -> list[int]:
        """What a heartbeat extends: first stop the attempts whose lease ran out meanwhile (the
        worker was paused, say), so that no heartbeat is sent for them."""
        self._expire()
        return self.held()

    def _expire(self) -> None:
        """Stop the attempts whose lease ran out on this worker's clock: the task may be running
        elsewhere by now. Each reports a lost lease (fenced: it counts only if no one reaped it)."""
        for execution_id in self._leases.overdue():
            running, signal = self._running.get(execution_id), self._signals.get(execution_id)
            # One not started yet sees it as it starts (cancelling it first would skip _finished).
            if running is not None and signal is not None:
                message = "the attempt's lease ran out (was this worker paused?); stopping it"
                log.warning(message, execution_id=execution_id)
                signal.set("its lease ran out on this worker's clock")
                running.cancel()

    def _lost(self, execution_ids: set[int]) -> None:
        """Attempts that are no longer the current ones (cancelled, reaped, settled by hand): a
        refused heartbeat or outcome says so. Stop their plugins at once."""
        for execution_id in execution_ids:
            running = self._running.get(execution_id)
            if running is not None:
                log.info("attempt no longer current; stopping it", execution_id=execution_id)
                self._cancel(execution_id, "the task was cancelled or its lease lost")
                running.cancel()

    def _cancel(self, execution_id: int, reason: str) -> None:
        signal = self._signals.get(execution_id)
        if signal is not None:
            signal.set(reason)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then shut down gracefully."""
        opts, takes = self.options, self.takes
        self._installation = await self.store.installation_id()
        await self.store.register_task_types(self._declarations(takes))
        await self.store.register_worker(
            self.id, socket.gethostname(), os.getpid(), opts.concurrency, takes, self.kind,
            queues=opts.queues, version=release(),
        )  # fmt: skip
        log.info(
            f"{self.kind} started",
            worker_id=self.id,
            **self.source,
            runs=", ".join(takes),
            queues=", ".join(opts.queues) or "all",
            concurrency=opts.concurrency,
        )
        quit_ = asyncio.Event()
        waiters = [
            asyncio.create_task(self._wake_on(stop, quit_)),
            asyncio.create_task(self._wake_on(self._supervisor.failed, quit_)),
        ]
        self._supervisor.start(self._reporter, self._heartbeat, self._watch, *self._intake)
        try:
            await self._claim_loop(quit_)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await self._shut_down()
        if self._supervisor.failed.is_set():
            raise HelperDied(self._supervisor.reason)

    def _declarations(self, task_types: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The declarations to publish: those of the types this worker runs that declare something."""
        published = {}
        for name in task_types:
            try:
                spec = self.registry.declaration(name)
            except Exception as error:  # a plugin that fails to load must not keep the worker down
                log.warning("cannot load task type", type=name, error=failure.one_line(error))
                continue
            if spec is not None:
                published[name] = spec.to_json()
        return published

    async def _wake_on(self, event: asyncio.Event, quit_: asyncio.Event) -> None:
        await event.wait()
        quit_.set()
        self._wake.set()

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        opts = self.options
        while not stop.is_set():
            self._wake.clear()
            free = self.free_slots()
            if free > 0 and self._work_may_be_due:
                self._work_may_be_due = False
                sent_at = self._leases.clock()
                try:
                    claims = await self.store.claim(
                        self.id, free, self.takes, opts.lease_seconds, opts.queues
                    )
                except Exception as error:
                    log.warning("claiming failed; will poll again", error=str(error))
                    claims = []
                if claims and not self._installation:  # an agent learns it as its stream opens
                    self._installation = await self.store.installation_id()
                for claim in claims:
                    self._start(claim, sent_at)
                if len(claims) == free:
                    self._work_may_be_due = True  # a full batch: there may be more behind it
                    continue
                if opts.drain and not claims and not self._running:
                    return
            try:
                await asyncio.wait_for(self._wake.wait(), opts.poll_interval)
            except TimeoutError:
                self._work_may_be_due = True  # the polling fallback

    def free_slots(self) -> int:
        """How many more tasks this worker may run now: a slot is taken by a running attempt, or by
        a sync plugin still running in its thread after its attempt ended (stuck), or by an outcome
        beyond the first `concurrency` waiting to be written. So while the database writes slowly
        (or not at all), the worker stops claiming rather than pile up attempts whose outcomes wait:
        each would grow the next write, and the one after it."""
        unwritten_over = max(self._reporter.backlog - self.options.concurrency, 0)
        return self.options.concurrency - len(self._running) - self._threads.stuck - unwritten_over

    @property
    def unwritten_outcomes(self) -> int:
        """Outcomes of ended attempts not written yet."""
        return self._reporter.backlog

    def _outcomes_written(self) -> None:
        """The reporter wrote a batch: slots its backlog held may be free again, for work that may be
        due (a claim loop held back by the backlog kept knowing so)."""
        if self._work_may_be_due and self.free_slots() > 0:
            self._wake.set()

    @property
    def stuck_plugins(self) -> int:
        """Sync plugins still running after their attempt ended (timed out, cancelled): each holds a slot."""
        return self._threads.stuck

    @property
    def stuck_plugins_total(self) -> int:
        """Sync plugins that have outlived their attempt since this worker started, returned since or not."""
        return self._threads.stuck_total

    def _unstuck(self, call: PluginCall) -> None:
        log.info("a stuck sync plugin returned; its slot is free again", stuck=self._threads.stuck)
        self._work_may_be_due = True
        self._wake.set()

    def _start(self, claim: Claim, sent_at: float) -> None:
        self._leases.grant(claim.execution_id, sent_at, claim.lease_until)
        self._running[claim.execution_id] = asyncio.create_task(
            self._execute(claim), name=f"task-{claim.task.id}"
        )

    def _finished(self, transition: Transition) -> None:
        self._reporter.report(transition)
        self._running.pop(transition.execution_id, None)
        self._signals.pop(transition.execution_id, None)
        self._leases.drop(transition.execution_id)
        if self.options.drain:
            self.drained.append(transition)
            self._work_may_be_due = True  # look again at once: the end of a drain is a claim of nothing
        if transition.status == model.Status.RETRYING:
            # Due again after its backoff: look then rather than at the next poll.
            asyncio.get_running_loop().call_later(transition.delay_seconds, self.work_arrived)
        if self._work_may_be_due:
            self._wake.set()

    # -- one attempt -------------------------------------------------------------------------

    async def _execute(self, claim: Claim) -> None:
        task = claim.task
        # With tracing on, the attempt is a span under the trace the task was created in (a new
        # trace when it was created without one); its log lines carry the trace and span ids. Off,
        # this is a None check (its attributes are made only for a span).
        with tracing.span("taskservice.attempt", parent=task.trace_parent, kind="consumer") as span:
            if span is not None:
                span.set_attributes(_attempt_of(claim))
            self._log.debug("task started", task_id=task.id, type=task.type, attempt=task.attempts)
            transition = await self._attempt(claim)
            if span is not None:
                _ended(span, transition)
        self._log.debug(
            "task finished", task_id=task.id, status=transition.status.name, details=transition.details
        )
        self._finished(transition)

    def _policy(self, task_type: str) -> tuple[RetryPolicy, tuple[type[BaseException], ...]]:
        """The retry policy of a type (its declared backoff) and its permanent errors."""
        known = self._policies.get(task_type)
        if known is None:
            policy = self.options.retry_policy
            permanent: tuple[type[BaseException], ...] = ()
            try:
                spec = self.registry.declaration(task_type)
            except Exception:  # cannot load: the attempt says why (UnknownPluginType or the error)
                spec = None
            if spec is not None:
                permanent = spec.permanent
                if spec.backoff_seconds is not None:
                    policy = RetryPolicy(spec.backoff_seconds, policy.cap, policy.max_lost_leases)
            self._policies[task_type] = known = (policy, permanent)
        return known

    def _context(self, claim: Claim, lease: Lease) -> TaskContext:
        task = claim.task
        return TaskContext(
            task_id=task.id,
            task_type=task.type,
            attempt=task.attempts,
            timeout_seconds=task.timeout_seconds,
            settings=self.settings,
            idempotency_key=task.idempotency_key or f"{self._installation}-{task.id}",
            lease=lease,
            workflow_id=task.workflow_id,
            step=task.step,
            parents=claim.parents,
            parents_left_out=claim.parents_left_out,
        )

    async def _attempt(self, claim: Claim) -> Transition:
        """Run the plugin once under the task's timeout and decide what happens next."""
        task, execution_id = claim.task, claim.execution_id
        policy, permanent = self._policy(task.type)
        lease = self._leases.get(execution_id)
        assert lease is not None, "granted as it was started"
        if lease.passed():  # handed over too late (an agent's assignment), or paused since
            self._leases.ran_out.add(execution_id)
            return model.lease_expired(task, execution_id, policy)
        ctx = self._context(claim, lease)
        context.enter(ctx)  # this asyncio task is the attempt's own: the variable ends with it
        self._signals[execution_id] = signal = ctx.cancellation
        # The attempt's own asyncio task, as _start made it (asyncio.current_task() costs more).
        deadline = _Deadline(task.timeout_seconds, signal, self._running[execution_id])
        try:
            try:
                with tracing.span("taskservice.plugin") as span:
                    if span is not None:
                        span.set_attribute("taskservice.task.type", task.type)
                        ctx.span = span
                    result = await self._call_plugin(task, ctx)
            finally:
                deadline.disarm()
            spawned = self._checked_children(ctx)
            if isinstance(result, WaitForChildren):
                transition = model.waiting_for_children(task, execution_id, None, spawned)
            else:
                stored = stored_result(result, self.options.max_result_bytes)
                transition = model.succeeded(task, execution_id, stored, spawned)
            if spawned and span is not None:  # they continue the trace from the plugin's span
                transition = replace(transition, trace_parent=tracing.traceparent_of(span))
            return transition
        except (PermanentFailure, UnknownPluginType, BrokenRule) as error:
            # Their messages say all there is (a bad parameter, a type nobody runs): no traceback.
            return self._failed(task, execution_id, "Task failed", _describe(error), policy, retryable=False)
        except asyncio.CancelledError:
            signal.set("the attempt was stopped")  # a thread running the plugin can see it now
            return self._stopped(task, execution_id, lease, timed_out=deadline.took_back())
        except Exception as error:
            if isinstance(error, TimeoutError) and deadline.took_back():
                return self._timed_out(task, execution_id)  # the plugin turned our cancel into this
            if isinstance(error, context.NotCurrent):  # ctx.ensure_current() said so first
                return self._stopped(task, execution_id, lease, timed_out=False)
            # Includes a TimeoutError of the plugin's own (a connect timeout, say): an ordinary failure.
            return self._failed(
                task, execution_id, "Task failed", failure.one_line(error), policy,
                retryable=not isinstance(error, permanent), traceback=failure.traceback_of(error),
            )  # fmt: skip

    def _checked_children(self, ctx: TaskContext) -> tuple[model.SpawnedTask, ...]:
        """The children the attempt spawned, each checked as the API checks a task (against its type's
        declaration where this worker has it); BrokenRule naming the child fails the attempt."""
        children: list[model.SpawnedTask] = []
        for child in ctx.spawned:
            kind = child.task.type
            try:
                declared = self.registry.declaration(kind)  # None: a type this worker does not run
            except Exception:  # its plugin fails to load here: the server checks it
                declared = None
            field = f"spawned[{child.name!r}].task."
            children.append(model.SpawnedTask(child.name, checked_task(child.task, {kind: declared}, field)))
        return tuple(children)

    def _stopped(self, task: model.Task, execution_id: int, lease: Lease, *, timed_out: bool) -> Transition:
        """The outcome of an attempt the worker gave up on."""
        if lease.passed():
            # Its lease ran out here (a pause): a lost lease, like the reaper's, spending no retry.
            # Refused if the reaper got there first; else the task goes back to the queue now.
            self._leases.ran_out.add(execution_id)
            return model.lease_expired(task, execution_id, self._policy(task.type)[0])
        if timed_out:
            return self._timed_out(task, execution_id)
        if self._stopping:
            return model.put_back(task, execution_id)
        # Cancelled by an operator or reaped: whoever took it away closed the attempt, so this
        # report is refused (the attempt is no longer current) and changes nothing.
        return Transition(
            task.id, execution_id, model.Status.CANCELLED, task.retries, 0.0,
            "Task stopped", Outcome.CANCELLED, "the task was cancelled or its lease lost",
        )  # fmt: skip

    def _timed_out(self, task: model.Task, execution_id: int) -> Transition:
        return self._failed(
            task,
            execution_id,
            "Task timed out",
            f"no result after {task.timeout_seconds:g}s",
            self._policy(task.type)[0],
            outcome=Outcome.TIMED_OUT,
        )

    def _failed(
        self, task: model.Task, execution_id: int, reason: str, error: str, policy: RetryPolicy, **how: Any
    ) -> Transition:
        """The transition of a failed attempt (model.attempt_failed), and the one log line that says so."""
        transition = model.attempt_failed(task, execution_id, reason, error, policy, **how)
        retrying = transition.status == model.Status.RETRYING
        (self._log.info if retrying else self._log.warning)(
            "task attempt failed; retrying" if retrying else "task failed",
            task_id=task.id, type=task.type, attempt=task.attempts, error=error,
        )  # fmt: skip
        return transition

    async def _call_plugin(self, task: model.Task, ctx: TaskContext) -> Any:
        entry = self.registry.entry(task.type)
        if entry.is_async:
            return await entry.call(task.parameters, ctx)
        call = self._threads.run(entry.call, task.parameters, ctx)
        ended = call.future
        try:
            return await ended
        except asyncio.CancelledError:
            if not ended.done() or ended.cancelled():
                if self._threads.abandon(call):
                    # Python cannot stop a thread: it keeps its slot until the plugin returns.
                    self._log.warning(
                        "a sync plugin outlived its attempt; its thread and slot stay taken until it returns",
                        task_id=task.id, type=task.type, attempt=task.attempts,
                        why=ctx.cancellation.reason or "the attempt was stopped", stuck=self._threads.stuck,
                    )  # fmt: skip
                raise
            # The plugin's thread had ended when the cancel came (the process was paused between
            # its end and this turn, say): what it did stands, so its outcome is reported (fenced as
            # ever) rather than lost, which would run the task, and its side effects, again.
            current = asyncio.current_task()
            assert current is not None
            current.uncancel()
            return ended.result()

    # -- shutdown ----------------------------------------------------------------------------

    async def _shut_down(self) -> None:
        """Stop claiming; give running tasks the grace period; put back the rest; write everything."""
        if self._supervisor.failed.is_set():
            log.error(f"{self.kind} stopping: {self._supervisor.reason}", worker_id=self.id)
        for helper in self._intake:
            await helper.stop()
        running = list(self._running.values())
        if running:
            log.info("waiting for running tasks", count=len(running), grace=self.options.shutdown_grace)
            all_done: asyncio.Future[Any] = asyncio.gather(*running, return_exceptions=True)
            hurry: asyncio.Future[Any] = asyncio.create_task(self._hurry.wait())
            await asyncio.wait(
                [all_done, hurry], timeout=self.options.shutdown_grace, return_when=asyncio.FIRST_COMPLETED
            )
            hurry.cancel()
            unfinished = [task for task in running if not task.done()]
            self._stopping = True
            for signal in self._signals.values():
                signal.set("the worker is stopping")
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        # Its threads are daemons and never joined: a stuck plugin cannot keep the process alive.
        self._threads.close()
        # Bounded: outcomes the database will not take are not worth hanging a shutdown for; their
        # leases expire and the reaper queues the tasks again.
        await self._reporter.stop(timeout=REPORT_DRAIN_SECONDS)
        await self._heartbeat.stop()
        await self._watch.stop()
        with contextlib.suppress(Exception):
            await self.store.stop_worker(self.id)
        log.info(f"{self.kind} stopped", worker_id=self.id)
