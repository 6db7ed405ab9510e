"""The Connect service `cloud.v1.TaskManagementService`: validate, call the store (api/errors.py maps
what they raise to Connect codes)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import asyncpg
import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf import empty_pb2

from taskservice import model, tracing
from taskservice.api import convert, ids, validation
from taskservice.api.containers import ContainerTypes
from taskservice.api.deadline import stop_starting_at
from taskservice.api.disconnect import client_gone
from taskservice.api.dispatch import Dispatcher, Session, legacy_agent_id
from taskservice.api.events import EventHub, SubscriberTooSlow
from taskservice.auth import principal
from taskservice.auth.roles import Right
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import (
    DEFAULT_QUEUE,
    FINISHED,
    OPERATOR_TARGETS,
    IllegalTransition,
    Schedule,
    ScheduleSpec,
    Status,
    Task,
    original_status,
    shown_as,
)
from taskservice.plugins import Registry
from taskservice.plugins.declare import TaskTypeSpec
from taskservice.rules import schedules
from taskservice.rules.tasks import BrokenRule
from taskservice.rules.transient import is_transient
from taskservice.store import (
    Claim,
    NotHeld,
    ReportNotHeld,
    ScheduleNameTaken,
    ScheduleNotFound,
    Store,
    WorkerIdTaken,
)

log = structlog.get_logger(__name__)

KEEPALIVE_SECONDS = 15.0
QUIET = "quiet"  # no assignment came within a keep-alive's time
MORE_WORK_MAX = 1000  # assignments in one stream message (its more_work) at most


def _refused(rpc: str, reason: str, **what: Any) -> None:
    """Log an agent's call that named what it does not hold (refused: nothing changed)."""
    caller = principal.current()
    log.warning(
        f"{rpc} refused: {reason}", caller=caller.registrant or caller.name, role=caller.role.value, **what
    )


def _task_id(request: Any) -> int:
    """The task a request names, by its `id` or its 64-bit twin `id64` (see api/ids.py)."""
    return validation.task_id(ids.requested(request.id, request.id64))


class TaskService:
    """Implements every RPC; `store` and `events` are set when the server starts."""

    def __init__(
        self,
        registry: Registry,
        worker_alive_seconds: float,
        payload_limits: validation.PayloadLimits = validation.PayloadLimits(),  # noqa: B008
        max_result_bytes: int = 1024 * 1024,
        clock: Callable[[], datetime] = partial(datetime.now, UTC),  # noqa: B008
    ) -> None:
        self.registry = registry
        # When a schedule made, resumed or re-timed now ticks first: the schedulers' own clock.
        self.clock = clock
        # A worker is alive while its lease would be: LEASE_SECONDS is also the agents' lease.
        self.worker_alive_seconds = self.lease_seconds = worker_alive_seconds
        self.payload_limits = payload_limits
        self.max_result_bytes = max_result_bytes
        self._store: Store | None = None
        self._events: EventHub | None = None
        self._dispatcher: Dispatcher | None = None
        self._stopping = asyncio.Event()
        self._installation = ""  # read when the first agent connects: its idempotency keys start with it
        self.containers = ContainerTypes()  # container task types: their tasks' containers are rendered

    def attach(self, store: Store, events: EventHub, dispatcher: Dispatcher | None = None) -> None:
        self._store, self._events, self._dispatcher = store, events, dispatcher

    def agent_sessions(self) -> list[Session]:
        """The agents connected to this server now (none before it started)."""
        return [] if self._dispatcher is None else list(self._dispatcher.sessions.values())

    def end_streams(self) -> None:
        """End every WatchEvents stream, now and from now on: the server is stopping.

        uvicorn waits for open responses before it stops, and an event stream never ends by itself.
        """
        self._stopping.set()
        if self._dispatcher is not None:
            self._dispatcher.close_all()

    @staticmethod
    def _id_limit(ctx: RequestContext[Any, Any]) -> int | None:
        """The highest task id the client can read: a new task above it is not created."""
        return None if ids.reads_wide_ids(ctx) else ids.INT32_MAX

    @property
    def store(self) -> Store:
        if self._store is None:
            raise ConnectError(Code.UNAVAILABLE, "the server is starting; try again")
        return self._store

    def _local_types(self) -> dict[str, TaskTypeSpec | None]:
        """The types this server's registry has, with their declarations."""
        local: dict[str, TaskTypeSpec | None] = {}
        for name in self.registry.names():
            try:
                local[name] = self.registry.declaration(name)
            except Exception as error:  # a plugin that fails to import here: accepted, unchecked
                log.warning("cannot load task type", type=name, error=str(error) or type(error).__name__)
                local[name] = None
        return local

    async def task_types(self, *wanted: str) -> dict[str, TaskTypeSpec | None]:
        """Types this server's registry knows, plus those live workers run (asked only when needed),
        each with its declaration: this server's own for the types it has, else the one the workers
        published (store/task_types.py)."""
        local = self._local_types()
        if wanted and all(name in local for name in wanted):
            return local
        published = await self.store.live_task_types(self.worker_alive_seconds)
        remote = {
            name: None if declaration is None else TaskTypeSpec.from_json(declaration)
            for name, declaration in published.items()
        }
        return {**remote, **local}

    # -- the original's methods --------------------------------------------------------------

    async def create_task(
        self, request: pb.CreateTaskRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreateTaskResponse:
        new = validation.new_task(request, await self.task_types(request.type), limits=self.payload_limits)
        with tracing.span("taskservice.enqueue") as span:
            if span is not None:  # the task keeps this span's traceparent: its attempts continue it
                span.set_attributes(_enqueued(request.type, 1))
                new = dataclasses.replace(new, trace_parent=tracing.traceparent_of(span))
            task_id, created = await self.store.create_task(new, id_limit=self._id_limit(ctx))
            if span is not None:
                span.set_attribute("taskservice.task.id", task_id)
        return pb.CreateTaskResponse(id=ids.narrow(task_id), id64=task_id, existing=not created)

    async def get_task(self, request: pb.GetTaskRequest, ctx: RequestContext[Any, Any]) -> pb.Task:
        return await self._shown(await self.store.get_task(_task_id(request)))

    async def _shown(self, task: Task) -> pb.Task:
        """A task as GetTask, CancelTask and RetryTask answer it: with why it waits and its container."""
        message = convert.task(task)
        await self._say_why_waiting([(task, message)])
        await self.containers.fill(self.store, [(task, message)])
        return message

    async def _say_why_waiting(self, tasks: list[tuple[Task, pb.Task]]) -> None:
        """Fill `waiting_reason` of the waiting tasks whose queue or type is paused, or whose type no
        live worker runs (serving its queue), or whose key is at its limit: two small queries, a third
        for the tasks under a limit, and none when no task waits."""
        steps = [(t, message) for t, message in tasks if t.status == Status.WAITING]
        if steps:
            parents = await self.store.unfinished_parents([t.id for t, _ in steps])
            for t, message in steps:
                message.waiting_reason = convert.waiting_for(parents.get(t.id, []))
        waiting = [(t, message) for t, message in tasks if t.status in (Status.QUEUED, Status.RETRYING)]
        if not waiting:
            return
        paused = {(p.kind, p.name) for p in await self.store.pauses()}
        kinds = {(t.type, t.queue) for t, _ in waiting}
        orphaned = await self.store.without_live_worker(kinds, self.worker_alive_seconds)
        for t, message in waiting:
            if ("queue", t.queue) in paused:
                message.waiting_reason = convert.paused("queue", t.queue)
            elif ("type", t.type) in paused:
                message.waiting_reason = convert.paused("type", t.type)
            elif (t.type, t.queue) in orphaned:
                message.waiting_reason = convert.no_live_worker(t.type, t.queue)
        limited = [t.id for t, message in waiting if t.limit_scope and not message.waiting_reason]
        waits = await self.store.limit_waits(limited) if limited else {}
        for t, message in waiting:
            if t.id in waits:
                message.waiting_reason = convert.limited(waits[t.id], t.parameters)

    async def list_tasks(self, request: pb.TaskListRequest, ctx: RequestContext[Any, Any]) -> pb.TaskList:
        status, kind, name, limit, offset = validation.list_request(request)
        order_by = validation.list_order(request)
        old_client = not ids.reads_wide_ids(ctx)
        # An old client's filter matches what it is shown: QUEUED is also RETRYING, FAILED also
        # CANCELLED (model.original_status); ours filter by the exact status.
        wanted = shown_as(status) if old_client and status is not None else status
        filters: dict[str, Any] = {"status": wanted, "task_type": kind, "name_contains": name}
        if order_by.startswith("created_"):
            tasks, total = await asyncio.gather(
                self.store.list_tasks(
                    **filters, limit=limit, offset=offset, oldest_first=order_by == "created_asc"
                ),
                self.store.count_tasks(**filters),
            )
        else:  # every matching task is read to sort them: only when few match
            tasks, total = await self.store.list_tasks_sorted(order_by, **filters, limit=limit, offset=offset)
            if total > model.SORTED_MAX:  # how many, exactly, for the refusal (the kept counts, or a scan)
                validation.sortable(order_by, await self.store.count_tasks(**filters))
        listed = [(t, convert.listed_task(t)) for t in tasks]
        omitted: list[int] = []
        if old_client:  # a task it cannot name is left out and said so, not the whole page failed
            readable = [ids.fits(message) for _, message in listed]
            omitted = [t.id for (t, _), fits in zip(listed, readable, strict=True) if not fits]
            listed = [item for item, fits in zip(listed, readable, strict=True) if fits]
            if omitted:
                ctx.response_headers()[ids.OMITTED_HEADER] = ",".join(map(str, omitted))
        await self._say_why_waiting(listed)
        await self.containers.fill(self.store, listed)
        return pb.TaskList(tasks=[message for _, message in listed], total=total, omitted=len(omitted))

    async def get_task_history(
        self, request: pb.GetTaskHistoryRequest, ctx: RequestContext[Any, Any]
    ) -> pb.GetTaskHistoryResponse:
        entries = await self.store.history(_task_id(request))
        rows = [convert.history(e) for e in entries]
        if not ids.reads_wide_ids(ctx):
            ids.history_for_old_client(rows)
        return pb.GetTaskHistoryResponse(history=rows)

    async def update_task_status(
        self, request: pb.UpdateTaskStatusRequest, ctx: RequestContext[Any, Any]
    ) -> empty_pb2.Empty:
        task_id = _task_id(request)
        target = validation.status(request.status)
        message = validation.message(request.message)
        allowed = ", ".join(s.name for s in sorted(OPERATOR_TARGETS))
        workers_only = f"status: {target.name} is set by workers; a client may set {allowed}"
        if target not in OPERATOR_TARGETS and target != Status.RUNNING:
            raise ConnectError(Code.FAILED_PRECONDITION, workers_only)
        caller = principal.current()
        # Without the right to set any task's status (an agent): only a task running an attempt of
        # an agent this caller registered, checked under the task's lock.
        holder = None if caller.may(Right.SET_STATUS) else caller.registrant
        try:
            # The original's contract: the history row's details are the request's message. Its
            # controller reports its own attempts this way (RUNNING, "Attempt N failed", RUNNING
            # again...): mapped onto ours for the agent that holds the task (store.set_status).
            await self.store.set_status(
                task_id, target, message, verbatim=True, holder=holder, hold_seconds=self.lease_seconds
            )
        except IllegalTransition as error:
            if target != Status.RUNNING:
                raise
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                f"{workers_only}, or RUNNING for a task its agent holds (task {task_id} is "
                f"{error.current.name})",
            ) from None
        except NotHeld:
            _refused("UpdateTaskStatus", "the task is not running an attempt of the caller's agent",
                     task_id=task_id, status=target.name)  # fmt: skip
            raise
        if self._dispatcher is not None:
            self._dispatcher.attempt_settled()  # an original-style agent's report frees its slot
        return empty_pb2.Empty()

    async def get_status(
        self, request: pb.GetStatusRequest, ctx: RequestContext[Any, Any]
    ) -> pb.GetStatusResponse:
        counts = await self.store.status_counts()
        original = {int(s): 0 for s in counts if original_status(s) == s}
        for s, n in counts.items():
            original[int(original_status(s))] += n
        return pb.GetStatusResponse(
            status_counts=original, exact_status_counts={int(s): n for s, n in counts.items()}
        )

    # -- ours ---------------------------------------------------------------------------------

    async def create_tasks(
        self, request: pb.CreateTasksRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreateTasksResponse:
        kinds = await self.task_types(*(t.type for t in request.tasks))
        news = validation.new_tasks(request, kinds, self.payload_limits)
        with tracing.span("taskservice.enqueue") as span:
            if span is not None:
                span.set_attributes(_enqueued(",".join(sorted({t.type for t in news})), len(news)))
                parent = tracing.traceparent_of(span)
                news = [dataclasses.replace(t, trace_parent=parent) for t in news]
            created = [
                task_id for task_id, _ in await self.store.create_tasks(news, id_limit=self._id_limit(ctx))
            ]
        return pb.CreateTasksResponse(ids=[ids.narrow(i) for i in created], ids64=created)

    async def cancel_task(self, request: pb.CancelTaskRequest, ctx: RequestContext[Any, Any]) -> pb.Task:
        task_id = _task_id(request)
        reason = validation.message(request.reason, "reason")
        return await self._shown(await self.store.set_status(task_id, Status.CANCELLED, reason))

    async def retry_task(self, request: pb.RetryTaskRequest, ctx: RequestContext[Any, Any]) -> pb.Task:
        task_id = _task_id(request)
        reason = validation.message(request.reason, "reason")
        try:
            task = await self.store.set_status(
                task_id, Status.QUEUED, reason or "retried", only_from=FINISHED
            )
        except IllegalTransition as error:
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                f"task {task_id} is {error.current.name}; only a finished task "
                "(SUCCEEDED, FAILED or CANCELLED) can be retried",
            ) from None
        return await self._shown(task)

    async def cancel_tasks(
        self, request: pb.CancelTasksRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CancelTasksResponse:
        selection, span = validation.selection(request), validation.resume_span(request.resume_token)
        reason = validation.message(request.reason, "reason")
        if request.dry_run:
            return pb.CancelTasksResponse(count=await self.store.count_selected(selection, model.CANCELLABLE))
        details = model.cancelled_details(reason)  # as CancelTask words it
        count, left = await self.store.cancel_tasks(selection, details, span=span, until=stop_starting_at())
        return pb.CancelTasksResponse(count=count, resume_token=left.token() if left else "")

    async def retry_tasks(
        self, request: pb.RetryTasksRequest, ctx: RequestContext[Any, Any]
    ) -> pb.RetryTasksResponse:
        selection, span = validation.selection(request), validation.resume_span(request.resume_token)
        reason = validation.message(request.reason, "reason")
        if request.dry_run:
            return pb.RetryTasksResponse(count=await self.store.count_selected(selection, model.RETRYABLE))
        details = model.requeued_details(reason or "retried")  # as RetryTask words it
        count, left = await self.store.retry_tasks(selection, details, span=span, until=stop_starting_at())
        return pb.RetryTasksResponse(count=count, resume_token=left.token() if left else "")

    async def delete_tasks(
        self, request: pb.DeleteTasksRequest, ctx: RequestContext[Any, Any]
    ) -> pb.DeleteTasksResponse:
        selection, span = validation.selection(request), validation.resume_span(request.resume_token)
        reason = validation.message(request.reason, "reason")
        if request.dry_run:
            return pb.DeleteTasksResponse(count=await self.store.count_selected(selection, model.DELETABLE))
        count, left = await self.store.delete_tasks(selection, span=span, until=stop_starting_at())
        caller = principal.current()
        # No history is left to say so: the log does.
        log.info("tasks deleted", count=count, reason=reason, caller=caller.name, role=caller.role.value)
        return pb.DeleteTasksResponse(count=count, resume_token=left.token() if left else "")

    async def list_task_executions(
        self, request: pb.ListTaskExecutionsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListTaskExecutionsResponse:
        executions = await self.store.executions(_task_id(request))
        if request.attempt < 0:
            raise BrokenRule("attempt", f"must be >= 1, or 0 for every attempt (got {request.attempt})")
        if request.attempt:  # one attempt, its stored result whole
            one = [e for e in executions if e.attempt == request.attempt]
            return pb.ListTaskExecutionsResponse(executions=[convert.execution(e, whole=True) for e in one])
        return pb.ListTaskExecutionsResponse(executions=[convert.execution(e) for e in executions])

    async def list_workers(
        self, request: pb.ListWorkersRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListWorkersResponse:
        workers = await self.store.list_workers()
        return pb.ListWorkersResponse(workers=[convert.worker(w, self.worker_alive_seconds) for w in workers])

    # -- the operator's dashboard (issue 24) ---------------------------------------------------

    async def get_type_stats(
        self, request: pb.GetTypeStatsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.GetTypeStatsResponse:
        range_seconds, buckets = validation.stats_request(request)
        types, chart = await self.store.type_stats(range_seconds, buckets)
        return pb.GetTypeStatsResponse(
            types=[convert.type_stats(t, range_seconds) for t in types],
            **convert.throughput(chart, range_seconds),
        )

    async def get_worker(
        self, request: pb.GetWorkerRequest, ctx: RequestContext[Any, Any]
    ) -> pb.GetWorkerResponse:
        worker_id = validation.worker_id(request)
        worker = await self.store.get_worker(worker_id)
        attempts, failures = await self.store.worker_attempts(worker_id)
        return pb.GetWorkerResponse(
            worker=convert.worker(worker, self.worker_alive_seconds),
            attempts=[convert.worker_attempt(a) for a in attempts],
            failures=[convert.worker_attempt(a) for a in failures],
        )

    # -- queues and pauses --------------------------------------------------------------------

    async def pause_queue(
        self, request: pb.PauseQueueRequest, ctx: RequestContext[Any, Any]
    ) -> pb.PauseQueueResponse:
        kind, name = validation.queue_or_type(request.queue, request.type)
        reason = validation.message(request.reason, "reason")
        by = principal.current().registrant or ""
        pause, created = await self.store.pause(kind, name, reason, by)
        log.info("paused", kind=kind, name=name, reason=reason, by=by or None, already=not created)
        return pb.PauseQueueResponse(pause=convert.pause(pause), already=not created)

    async def resume_queue(
        self, request: pb.ResumeQueueRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ResumeQueueResponse:
        kind, name = validation.queue_or_type(request.queue, request.type)
        resumed = await self.store.resume(kind, name)
        if resumed:
            log.info("resumed", kind=kind, name=name, by=principal.current().registrant)
        return pb.ResumeQueueResponse(resumed=resumed)

    async def list_queues(
        self, request: pb.ListQueuesRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListQueuesResponse:
        counts, pauses, workers = await asyncio.gather(
            self.store.queue_counts(), self.store.pauses(), self.store.list_workers()
        )
        live = [w for w in workers if convert.alive(w, self.worker_alive_seconds)]
        paused = {p.name: p for p in pauses if p.kind == "queue"}
        names = sorted({*counts, *paused, *(q for w in live for q in w.queues), DEFAULT_QUEUE})
        queues = []
        for name in names:
            waiting, running = counts.get(name, (0, 0))
            serving = sum(1 for w in live if not w.queues or name in w.queues)
            queue = pb.Queue(
                name=name, paused=name in paused, waiting=waiting, running=running, workers=serving
            )
            if name in paused:
                queue.pause.CopyFrom(convert.pause(paused[name]))
            queues.append(queue)
        types = [convert.pause(p) for p in pauses if p.kind == "type"]
        return pb.ListQueuesResponse(queues=queues, paused_types=types)

    # -- limits -------------------------------------------------------------------------------

    async def set_limit(
        self, request: pb.SetLimitRequest, ctx: RequestContext[Any, Any]
    ) -> pb.SetLimitResponse:
        kind, name = validation.queue_or_type(request.queue, request.type)
        changes = validation.limit_changes(request)
        caller = principal.current()
        by = caller.registrant or caller.name  # never None: None is a limit declared with its type
        limit = await self.store.set_limit(kind, name, changes, by)
        log.info("limit set", kind=kind, name=name, concurrency=limit.concurrency,
                 rate=str(limit.rate or "") or None, key=limit.key, by=by)  # fmt: skip
        return pb.SetLimitResponse(limit=convert.limit(limit))

    async def list_limits(
        self, request: pb.ListLimitsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListLimitsResponse:
        # A row without a limit is listed when set so at run time: it stands instead of a declaration.
        found = [x for x in await self.store.list_limits() if x.active or x.set_by is not None]
        return pb.ListLimitsResponse(limits=[convert.limit(x) for x in found])

    async def reset_limit(
        self, request: pb.ResetLimitRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ResetLimitResponse:
        kind, name = validation.queue_or_type(request.queue, request.type)
        limit = await self.store.reset_limit(kind, name)
        log.info("limit reset", kind=kind, name=name, by=principal.current().registrant)
        return pb.ResetLimitResponse(limit=convert.limit(limit))

    # -- schedules ----------------------------------------------------------------------------

    async def create_schedule(
        self, request: pb.CreateScheduleRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreateScheduleResponse:
        wanted = validation.schedule_spec(request)
        known = await self.task_types(wanted.task.type)
        spec = schedules.checked(wanted, known, limits=self.payload_limits)
        caller = principal.current()
        by = caller.registrant or caller.name
        created = await self.store.create_schedule(spec, schedules.first_tick(spec, self.clock()), by=by)
        if created is None:
            raise ScheduleNameTaken(spec.name)
        log.info("schedule created", name=spec.name, cron=spec.cron, timezone=spec.timezone,
                 every_seconds=spec.every_seconds, type=spec.task.type, by=by)  # fmt: skip
        return pb.CreateScheduleResponse(schedule=convert.schedule(created))

    async def get_schedule(
        self, request: pb.GetScheduleRequest, ctx: RequestContext[Any, Any]
    ) -> pb.GetScheduleResponse:
        name, schedule_id = validation.schedule_ref(request)
        if name is not None:
            found = await self.store.get_schedule(name)
        else:
            found = await self.store.get_schedule_by_id(schedule_id or 0)
        if found is None:
            raise ScheduleNotFound(repr(name) if name is not None else f"with id {schedule_id}")
        return pb.GetScheduleResponse(schedule=convert.schedule(found))

    async def list_schedules(
        self, request: pb.ListSchedulesRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListSchedulesResponse:
        limit, offset = validation.schedules_page(request)
        found = await self.store.list_schedules(limit, offset)
        return pb.ListSchedulesResponse(schedules=[convert.schedule(s) for s in found])

    async def update_schedule(
        self, request: pb.UpdateScheduleRequest, ctx: RequestContext[Any, Any]
    ) -> pb.UpdateScheduleResponse:
        name = validation.schedule_name(request.name)
        changes = validation.schedule_changes(request)
        new_task = changes.get("task")
        known = await self.task_types(new_task.type) if new_task is not None else {}
        now = self.clock()

        def changed(current: Schedule) -> tuple[ScheduleSpec, datetime | None]:
            if current.declared_type is not None and set(changes) - schedules.OPERATORS_OWN:
                raise schedules.DeclaredInCode(
                    name, current.declared_type, set(changes) - schedules.OPERATORS_OWN
                )
            # Its task as stored was checked when it was made: only a new one is checked again.
            types = known if new_task is not None else {current.spec.task.type: None}
            spec = schedules.checked(
                dataclasses.replace(current.spec, **changes), types, limits=self.payload_limits
            )
            return spec, schedules.next_tick_after_change(current, spec, now)

        updated = await self.store.change_schedule(name, changed)
        if updated is None:
            raise ScheduleNotFound(repr(name))
        log.info("schedule changed", name=name, changed=sorted(changes), by=principal.current().registrant)
        return pb.UpdateScheduleResponse(schedule=convert.schedule(updated))

    async def delete_schedule(
        self, request: pb.DeleteScheduleRequest, ctx: RequestContext[Any, Any]
    ) -> pb.DeleteScheduleResponse:
        name = validation.schedule_name(request.name)
        if not await self.store.delete_schedule(name):
            raise ScheduleNotFound(repr(name))
        log.info("schedule deleted", name=name, by=principal.current().registrant)
        return pb.DeleteScheduleResponse()

    async def trigger_schedule(
        self, request: pb.TriggerScheduleRequest, ctx: RequestContext[Any, Any]
    ) -> pb.TriggerScheduleResponse:
        name = validation.schedule_name(request.name)
        task_id = await self.store.trigger_schedule(name)
        if task_id is None:
            raise ScheduleNotFound(repr(name))
        log.info("schedule triggered", name=name, task_id=task_id, by=principal.current().registrant)
        return pb.TriggerScheduleResponse(task_id64=task_id)

    # -- workflows ----------------------------------------------------------------------------

    async def create_workflow(
        self, request: pb.CreateWorkflowRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreateWorkflowResponse:
        known = await self.task_types(*validation.workflow_types(request))
        name, graph, key = validation.workflow(request, known, self.payload_limits)
        caller = principal.current()
        by = caller.registrant or caller.name
        with tracing.span("taskservice.enqueue") as span:
            if span is not None:
                span.set_attributes(
                    _enqueued(",".join(sorted({s.task.type for s in graph.steps})), len(graph.steps))
                )
            workflow_id, created = await self.store.create_workflow(
                name, graph, idempotency_key=key, by=by, trace_parent=tracing.traceparent_of(span)
            )
        if created:
            log.info("workflow created", workflow_id=workflow_id, name=name, steps=len(graph.steps), by=by)
        return pb.CreateWorkflowResponse(id=workflow_id, existing=not created)

    async def get_workflow(
        self, request: pb.GetWorkflowRequest, ctx: RequestContext[Any, Any]
    ) -> pb.GetWorkflowResponse:
        found = await self.store.get_workflow(validation.task_id(request.id, "id"))
        return pb.GetWorkflowResponse(
            workflow=convert.workflow(found), steps=[convert.workflow_step(s) for s in found.steps]
        )

    async def list_workflows(
        self, request: pb.ListWorkflowsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListWorkflowsResponse:
        status, limit, offset = validation.workflows_page(request)
        found = await self.store.list_workflows(status, limit, offset)
        return pb.ListWorkflowsResponse(workflows=[convert.workflow(w) for w in found])

    async def cancel_workflow(
        self, request: pb.CancelWorkflowRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CancelWorkflowResponse:
        workflow_id = validation.task_id(request.id, "id")
        cancelled = await self.store.cancel_workflow(workflow_id)
        log.info(
            "workflow cancelled", workflow_id=workflow_id, steps=cancelled, by=principal.current().registrant
        )
        return pb.CancelWorkflowResponse(cancelled=cancelled)

    async def retry_workflow(
        self, request: pb.RetryWorkflowRequest, ctx: RequestContext[Any, Any]
    ) -> pb.RetryWorkflowResponse:
        workflow_id = validation.task_id(request.id, "id")
        retried = await self.store.retry_workflow(workflow_id)
        log.info(
            "workflow retried", workflow_id=workflow_id, steps=retried, by=principal.current().registrant
        )
        return pb.RetryWorkflowResponse(retried=retried)

    async def list_task_types(
        self, request: pb.ListTaskTypesRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListTaskTypesResponse:
        known = await self.task_types()
        names = sorted(known)
        return pb.ListTaskTypesResponse(
            types=names, declarations=[convert.task_type(name, known[name]) for name in names]
        )

    async def watch_events(
        self, request: pb.WatchEventsRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.TaskEvent]:
        if self._events is None:
            raise ConnectError(Code.UNAVAILABLE, "the server is starting; try again")
        wanted = validation.watched_tasks(request.task_ids)
        events = self._events.subscribe()
        next_event = None
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await anext(events)  # subscribed: say so at once, so the client knows it is live
            yield pb.TaskEvent(keepalive=True)
            while True:
                next_event = next_event or asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait(
                    {next_event, stopping}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in done:
                    return
                if not done:
                    yield pb.TaskEvent(keepalive=True)
                    continue
                try:
                    event = next_event.result()
                except SubscriberTooSlow:
                    raise ConnectError(
                        Code.RESOURCE_EXHAUSTED, "this client fell too far behind; reconnect"
                    ) from None
                next_event = None
                if event is not None and (not wanted or event.entry.task_id in wanted):
                    yield convert.event(event)
        finally:
            stopping.cancel()
            if next_event is not None:
                next_event.cancel()
                with contextlib.suppress(BaseException):
                    await next_event
            await events.aclose()

    # -- agents -------------------------------------------------------------------------------

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            raise ConnectError(Code.UNAVAILABLE, "the server is starting; try again")
        return self._dispatcher

    async def heartbeat(
        self, request: pb.HeartbeatRequest, ctx: RequestContext[Any, Any]
    ) -> pb.HeartbeatResponse:
        if not request.uuid and not request.held and not request.leases_only:
            # The original's agent: Heartbeat{timestamp}, naming no stream. It speaks for its caller's
            # original-style streams, which hold their tasks while it is heard (dispatch.py).
            self.dispatcher.heard_original(principal.current().registrant)
            return pb.HeartbeatResponse(lease_seconds=self.lease_seconds)
        agent = validation.agent_id(request.uuid, "uuid")
        held = validation.assignment_ids(request.held)
        try:
            kept = await self.store.extend_agent_leases(
                agent, held, self.lease_seconds, principal.current().registrant, alive=not request.leases_only
            )
        except WorkerIdTaken:
            _refused("Heartbeat", "the agent id is registered by another caller", agent_id=agent, held=held)
            raise
        lost = set(held) - kept
        if request.leases_only:  # the controller's, for the Jobs it runs: it says nothing of the agent
            pass
        elif agent in self.dispatcher.sessions:
            self.dispatcher.heard(agent, lost=lost)
        else:  # a uuid of its own (an original agent that names one) or a session on another server
            self.dispatcher.heard_original(principal.current().registrant)
        return pb.HeartbeatResponse(lost=sorted(lost), lease_seconds=self.lease_seconds)

    async def report_outcomes(
        self, request: pb.ReportOutcomesRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ReportOutcomesResponse:
        agent = validation.agent_id(request.agent_id)
        spawned = validation.spawned_types(request)
        known = await self.task_types(*spawned) if spawned else {}
        transitions = validation.outcomes(request, self.max_result_bytes, known, self.payload_limits)
        # Only attempts started for this agent, registered by this caller: else nothing changes.
        try:
            counted = await self.store.finish(
                transitions, agent_id=agent, principal=principal.current().registrant
            )
        except ReportNotHeld as refusal:
            mine, foreign = refusal.agent_registered, refusal.foreign
            named = [t.execution_id for t in transitions]
            _refused("ReportOutcomes", "attempts not held by the caller's agent", agent_id=agent,
                     agent_of_caller=mine, attempts=foreign or named)  # fmt: skip
            what = f"attempts {', '.join(map(str, foreign))} are not held by agent {agent}"
            if not mine:
                what = f"agent {agent} is not registered by this caller"
            raise ConnectError(Code.PERMISSION_DENIED, f"outcomes: {what}; nothing was changed") from None
        except asyncpg.PostgresError as error:
            if is_transient(error):
                raise
            # The database will not take one of them (a result it cannot store): the agent writes
            # them one by one and fails the attempt whose outcome is refused (as a worker does).
            raise BrokenRule("outcomes", f"the database refused them: {error}") from None
        reported = {t.execution_id for t in transitions}
        self.dispatcher.reported(agent, reported)
        return pb.ReportOutcomesResponse(refused=sorted(reported - counted))

    async def _register_agent(
        self,
        agent: str,
        host: str,
        pid: int,
        slots: int,
        task_types: tuple[str, ...],
        caller: str | None,
        declared: dict[str, dict[str, Any]],
        queues: tuple[str, ...],
        version: str | None = None,
    ) -> None:
        try:
            await self.store.register_worker(
                agent, host, pid, slots, task_types, "agent", caller, queues, version
            )
            await self.store.register_task_types(declared)
            self.containers.published(declared)
            if not self._installation:  # made once by migration 0020, never changed
                self._installation = await self.store.installation_id()
        except WorkerIdTaken as error:  # no taking over another caller's agent and its session
            _refused("PullEvents", "the agent id is registered by another caller", agent_id=agent)
            raise ConnectError(Code.PERMISSION_DENIED, str(error)) from None
        except Exception as error:
            log.error("registering an agent failed", error=str(error))
            raise ConnectError(Code.UNAVAILABLE, "the database is unavailable; try again") from None

    async def pull_events(
        self, request: pb.PullEventsRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.PullEventsResponse]:
        dispatcher = self.dispatcher
        pull = validation.pull_request(request)
        slots, task_types, queues = pull.slots, pull.task_types, pull.queues
        declared = validation.declarations(request.declarations_json)
        legacy = not pull.agent_id
        agent = pull.agent_id or legacy_agent_id()
        caller = principal.current().registrant
        version = validation.release(request.version)
        await self._register_agent(
            agent, pull.host or "remote", request.pid, slots, task_types, caller, declared, queues, version
        )
        session = dispatcher.open(agent, slots, task_types, pull.held, legacy, caller, queues, pull.prefetch)
        log.info(
            "agent connected", agent_id=agent, slots=slots, prefetch=pull.prefetch, types=task_types,
            queues=queues or "all", original_style=legacy,
        )  # fmt: skip
        gone = asyncio.ensure_future(client_gone().wait())
        try:
            if not legacy:
                yield pb.PullEventsResponse(
                    keepalive=True,
                    lease_seconds=self.lease_seconds,
                    agent_id=agent,
                    installation_id=self._installation,
                )
            # A keep-alive well within the lease, for the proxies between us and the agent. The
            # original's agent reads `work.task.id` of every message unchecked: it is sent only work,
            # and its connection is kept alive by TCP keepalive (api/server.py) instead.
            keepalive = min(KEEPALIVE_SECONDS, self.lease_seconds / 3)
            while not self._stopping.is_set():
                claim = await _next_claim(session.inbox, gone, keepalive)
                if claim is None:  # the agent left, the server stops, or the agent reconnected
                    return
                if not isinstance(claim, Claim):  # quiet for a while
                    if not legacy:
                        yield pb.PullEventsResponse(keepalive=True)
                    continue
                now = time.monotonic()
                containers = await self.containers.current(self.store)
                work = convert.assignment(claim, now, _dispatched(claim, agent), containers)
                message = pb.PullEventsResponse(work=work)
                closing = False
                # Whatever else waits goes along in the same message (an original-style agent has
                # one slot, and would not read more_work).
                while not legacy and not session.inbox.empty() and len(message.more_work) < MORE_WORK_MAX:
                    more = session.inbox.get_nowait()
                    if more is None:
                        closing = True
                        break
                    message.more_work.append(
                        convert.assignment(more, now, _dispatched(more, agent), containers)
                    )
                yield message
                if closing:
                    return
        finally:
            gone.cancel()
            await dispatcher.end(session)
            log.info("agent disconnected", agent_id=agent)


def _enqueued(task_type: str, count: int) -> dict[str, str | int]:
    return {"taskservice.task.type": task_type, "taskservice.tasks": count}


def _dispatched(claim: Claim, agent_id: str) -> str | None:
    """The span of sending an attempt to an agent, under the task's trace: the traceparent the agent's
    attempt continues (with tracing off here, the task's own: an agent that traces continues it)."""
    task = claim.task
    if not tracing.on():
        return task.trace_parent
    attributes: tracing.Attributes = {
        "taskservice.task.id": task.id, "taskservice.task.type": task.type,
        "taskservice.attempt": task.attempts, "taskservice.assignment_id": claim.execution_id,
        "taskservice.agent_id": agent_id,
    }  # fmt: skip
    return tracing.one_span("taskservice.dispatch", task.trace_parent, "producer", attributes)


async def _next_claim(
    inbox: asyncio.Queue[Claim | None], gone: asyncio.Future[Any], timeout: float
) -> Claim | str | None:
    """The next assignment of a stream; QUIET when `timeout` passed without one (send a keep-alive);
    None when the stream is to end (its session closed, or its agent gone: nothing is taken from the
    inbox then, so the session's end puts everything there back in the queue)."""
    if gone.done():
        return None
    if not inbox.empty():
        return inbox.get_nowait()
    getter = asyncio.ensure_future(inbox.get())
    await asyncio.wait({getter, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    claim: Claim | str | None = QUIET
    if not getter.done():
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
    if getter.done() and not getter.cancelled():
        claim = getter.result()
    if gone.done():
        if isinstance(claim, Claim):
            inbox.put_nowait(claim)  # not sent: it goes back with the rest
        return None
    return claim
