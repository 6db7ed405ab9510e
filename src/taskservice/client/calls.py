"""Every RPC once, for both clients: its request from keyword arguments, its answer as dataclasses.

A `Call` says what to send, how to read the answer, and whether sending it twice is safe (for the
retries on `unavailable`); `Client` and `AsyncClient` only carry calls over the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypedDict, TypeVar

from google.protobuf import empty_pb2
from google.protobuf.message import Message

from taskservice.client import messages as m
from taskservice.client.errors import TaskCancelled, TaskFailed
from taskservice.client.workflows import Workflow, workflow_request
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import NewTask, Status, TaskOptions
from taskservice.protocol.errors import FailedPrecondition

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    request: Message
    answer: type[Message]
    read: Callable[[Any], T]
    # Safe to send again after `unavailable`: it reads only, or an idempotency key makes it so.
    idempotent: bool = False


@dataclass(frozen=True)
class Created:
    id: int
    existing: bool  # the idempotency key matched a task created before


def create_task(new: NewTask) -> Call[Created]:
    request = m.create_request(new)
    return Call("CreateTask", request, pb.CreateTaskResponse,
                lambda r: Created(r.id64 or r.id, r.existing), bool(request.idempotency_key))  # fmt: skip


def create_tasks(tasks: Iterable[NewTask]) -> Call[list[int]]:
    requests = [m.create_request(t) for t in tasks]
    return Call("CreateTasks", pb.CreateTasksRequest(tasks=requests), pb.CreateTasksResponse,
                lambda r: list(r.ids64 or r.ids), all(t.idempotency_key for t in requests))  # fmt: skip


def get_task(task_id: int) -> Call[m.Task]:
    return Call("GetTask", pb.GetTaskRequest(id64=task_id), pb.Task, m.Task.from_proto, True)


def list_tasks(
    *, status: m.TaskStatus | Status | None = None, type: str | None = None, name_contains: str = "",
    limit: int = 0, offset: int = 0,
) -> Call[m.TaskList]:  # fmt: skip
    request = pb.TaskListRequest(limit=limit, offset=offset, name_contains=name_contains)
    if status is not None:
        request.status = int(status)  # type: ignore[assignment]
    if type is not None:
        request.type = type
    return Call("ListTasks", request, pb.TaskList,
                lambda r: m.TaskList([m.Task.from_proto(t) for t in r.tasks], r.total), True)  # fmt: skip


def get_task_history(task_id: int) -> Call[list[m.HistoryEntry]]:
    return Call("GetTaskHistory", pb.GetTaskHistoryRequest(id64=task_id), pb.GetTaskHistoryResponse,
                lambda r: [m.HistoryEntry.from_proto(h) for h in r.history], True)  # fmt: skip


def update_task_status(task_id: int, status: m.TaskStatus | Status, message: str = "") -> Call[None]:
    request = pb.UpdateTaskStatusRequest(id64=task_id, status=int(status), message=message)  # type: ignore[arg-type]
    return Call("UpdateTaskStatus", request, empty_pb2.Empty, lambda r: None)


def get_status() -> Call[dict[m.TaskStatus, int]]:
    def read(r: pb.GetStatusResponse) -> dict[m.TaskStatus, int]:
        return {m.TaskStatus(k): v for k, v in sorted(r.exact_status_counts.items())}

    return Call("GetStatus", pb.GetStatusRequest(), pb.GetStatusResponse, read, True)


def cancel_task(task_id: int, reason: str = "") -> Call[m.Task]:
    return Call("CancelTask", pb.CancelTaskRequest(id64=task_id, reason=reason), pb.Task, m.Task.from_proto)


def retry_task(task_id: int, reason: str = "") -> Call[m.Task]:
    return Call("RetryTask", pb.RetryTaskRequest(id64=task_id, reason=reason), pb.Task, m.Task.from_proto)


class TaskFilterFields(TypedDict, total=False):
    """Which tasks cancel_tasks, retry_tasks and delete_tasks act on, by keyword: every condition given
    must hold; with none, `all=True` is required (every task the action applies to)."""

    statuses: Iterable[m.TaskStatus | Status]
    type: str
    queue: str
    name_contains: str  # any case
    created_after: datetime  # at or after (timezone-aware; to the second)
    created_before: datetime
    all: bool


_BULK: dict[str, tuple[Callable[..., Message], type[Message]]] = {
    "CancelTasks": (pb.CancelTasksRequest, pb.CancelTasksResponse),
    "RetryTasks": (pb.RetryTasksRequest, pb.RetryTasksResponse),
    "DeleteTasks": (pb.DeleteTasksRequest, pb.DeleteTasksResponse),
}


def _aware(field: str, value: datetime) -> datetime:
    if value.tzinfo is None:  # the programmer's mistake, refused where it is made
        raise ValueError(f"{field}: must be timezone-aware (got {value.isoformat()})")
    return value


def _wire_time(field: str, value: datetime | None) -> str:
    """A filter's time, to the second (the API's times)."""
    return "" if value is None else _aware(field, value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(field: str, value: datetime | None) -> str:
    """A time that is kept as given, to the microsecond (a schedule's end)."""
    return "" if value is None else _aware(field, value).isoformat()


def bulk(
    method: str,
    ids: Iterable[int],
    reason: str,
    dry_run: bool,
    where: TaskFilterFields,
    resume_token: str = "",
) -> Call[tuple[int, str]]:
    """CancelTasks, RetryTasks or DeleteTasks of the tasks `ids`, or else of those `where` selects:
    (the count acted on (with `dry_run`, that would be), the token to go on with: empty when done)."""
    request_type, answer = _BULK[method]
    request: Any = request_type(ids=list(ids), reason=reason, dry_run=dry_run, resume_token=resume_token)
    if not request.ids:
        f = request.filter
        f.SetInParent()
        f.statuses.extend(int(s) for s in where.get("statuses", ()))
        if "type" in where:
            f.type = where["type"]
        if "queue" in where:
            f.queue = where["queue"]
        f.name_contains = where.get("name_contains", "")
        f.created_after = _wire_time("created_after", where.get("created_after"))
        f.created_before = _wire_time("created_before", where.get("created_before"))
        f.all = where.get("all", False)
    elif where:
        raise TypeError(f"give ids or {', '.join(where)}, not both")
    return Call(method, request, answer, lambda r: (int(r.count), r.resume_token), dry_run)


def list_task_executions(task_id: int, attempt: int = 0) -> Call[list[m.Execution]]:
    request = pb.ListTaskExecutionsRequest(id64=task_id, attempt=attempt)
    return Call("ListTaskExecutions", request, pb.ListTaskExecutionsResponse,
                lambda r: [m.Execution.from_proto(e) for e in r.executions], True)  # fmt: skip


def list_workers() -> Call[list[m.WorkerInfo]]:
    return Call("ListWorkers", pb.ListWorkersRequest(), pb.ListWorkersResponse,
                lambda r: [m.WorkerInfo.from_proto(w) for w in r.workers], True)  # fmt: skip


def list_task_types() -> Call[list[m.TaskType]]:
    return Call("ListTaskTypes", pb.ListTaskTypesRequest(), pb.ListTaskTypesResponse,
                lambda r: [m.TaskType.from_proto(d) for d in r.declarations], True)  # fmt: skip


def pause_queue(queue: str = "", *, type: str = "", reason: str = "") -> Call[bool]:
    """Pause a queue, or a task type (`type`); True if it was paused already."""
    request = pb.PauseQueueRequest(queue=queue, type=type, reason=reason)
    return Call("PauseQueue", request, pb.PauseQueueResponse, lambda r: r.already, True)


def resume_queue(queue: str = "", *, type: str = "") -> Call[bool]:
    """Resume a paused queue, or task type (`type`); False if it was not paused."""
    request = pb.ResumeQueueRequest(queue=queue, type=type)
    return Call("ResumeQueue", request, pb.ResumeQueueResponse, lambda r: r.resumed, True)


def list_queues() -> Call[list[m.QueueInfo]]:
    return Call("ListQueues", pb.ListQueuesRequest(), pb.ListQueuesResponse,
                lambda r: [m.QueueInfo.from_proto(q) for q in r.queues], True)  # fmt: skip


def set_limit(
    queue: str = "", *, type: str = "", concurrency: int | None = None, rate_limit: str | None = None,
    key: str | None = None,
) -> Call[m.LimitInfo]:  # fmt: skip
    """Set the limit of a queue, or a task type (`type`): each of concurrency (0: none), rate_limit
    ("5/s"; "": none) and key ("": none) given, the others kept."""
    request = pb.SetLimitRequest(queue=queue, type=type)
    if concurrency is not None:
        request.concurrency = concurrency
    if rate_limit is not None:
        request.rate_limit = rate_limit
    if key is not None:
        request.key = key
    return Call("SetLimit", request, pb.SetLimitResponse, lambda r: m.LimitInfo.from_proto(r.limit), True)


def reset_limit(queue: str = "", *, type: str = "") -> Call[m.LimitInfo]:
    """Drop a limit set at run time: a type's declared limit rules again; a queue's is cleared."""
    request = pb.ResetLimitRequest(queue=queue, type=type)
    return Call("ResetLimit", request, pb.ResetLimitResponse, lambda r: m.LimitInfo.from_proto(r.limit), True)


def list_limits() -> Call[list[m.LimitInfo]]:
    return Call("ListLimits", pb.ListLimitsRequest(), pb.ListLimitsResponse,
                lambda r: [m.LimitInfo.from_proto(x) for x in r.limits], True)  # fmt: skip


def _every(every: str | float) -> str:
    """An interval as the wire takes it: "30s", "5m", or a number of seconds."""
    return every if isinstance(every, str) else repr(float(every))


def _schedule(r: Any) -> m.ScheduleInfo:
    return m.ScheduleInfo.from_proto(r.schedule)


def _scheduled_task(
    type: str, parameters: Mapping[str, str] | None, options: TaskOptions | None
) -> pb.CreateTaskRequest:
    """The task a schedule creates at each tick, named as the schedule unless `options` name it."""
    options = options or TaskOptions()
    return m.create_request(replace(options.new_task(type, parameters), name=options.name or ""))


def create_schedule(
    name: str, *, type: str, parameters: Mapping[str, str] | None = None, cron: str | None = None,
    timezone: str = "UTC", every: str | float | None = None, options: TaskOptions | None = None,
    overlap: str = "allow", catchup: str = "none", paused: bool = False, ends_at: datetime | None = None,
) -> Call[m.ScheduleInfo]:  # fmt: skip
    """A schedule creating a task of `type` at each tick of `cron` (in `timezone`) or `every` interval."""
    request = pb.CreateScheduleRequest(
        name=name, cron=cron or "", timezone=timezone, every="" if every is None else _every(every),
        task=_scheduled_task(type, parameters, options), overlap=overlap, catchup=catchup, paused=paused,
        ends_at=_rfc3339("ends_at", ends_at),
    )  # fmt: skip
    return Call("CreateSchedule", request, pb.CreateScheduleResponse, _schedule)


def get_schedule(name_or_id: str | int) -> Call[m.ScheduleInfo]:
    """A schedule by its name, or by its id (a task's schedule_id)."""
    if isinstance(name_or_id, int):
        request = pb.GetScheduleRequest(id64=name_or_id)
    else:
        request = pb.GetScheduleRequest(name=name_or_id)
    return Call("GetSchedule", request, pb.GetScheduleResponse, _schedule, True)


def list_schedules(limit: int = 0, offset: int = 0) -> Call[list[m.ScheduleInfo]]:
    request = pb.ListSchedulesRequest(limit=limit, offset=offset)
    return Call("ListSchedules", request, pb.ListSchedulesResponse,
                lambda r: [m.ScheduleInfo.from_proto(s) for s in r.schedules], True)  # fmt: skip


NEVER = "never"  # update_schedule(ends_at=NEVER): the schedule no longer ends


def update_schedule(
    name: str, *, cron: str | None = None, timezone: str | None = None, every: str | float | None = None,
    type: str | None = None, parameters: Mapping[str, str] | None = None, options: TaskOptions | None = None,
    overlap: str | None = None, catchup: str | None = None, paused: bool | None = None,
    ends_at: datetime | Literal["never"] | None = None,
) -> Call[m.ScheduleInfo]:  # fmt: skip
    """Change what is given (None: kept). A new `type` (with its `parameters` and `options`) replaces
    the task created at each tick whole; `ends_at="never"` removes the end."""
    request = pb.UpdateScheduleRequest(name=name)
    if cron is not None:
        request.cron = cron
    if timezone is not None:
        request.timezone = timezone
    if every is not None:
        request.every = _every(every)
    if type is not None:
        request.task.CopyFrom(_scheduled_task(type, parameters, options))
    elif parameters is not None or options is not None:
        raise TypeError("give the task's type with its parameters or options: it is replaced whole")
    if overlap is not None:
        request.overlap = overlap
    if catchup is not None:
        request.catchup = catchup
    if paused is not None:
        request.paused = paused
    if isinstance(ends_at, datetime):
        request.ends_at = _rfc3339("ends_at", ends_at)
    elif ends_at is not None:
        if ends_at != NEVER:
            raise ValueError(f"ends_at: a datetime, or {NEVER!r} for no end (got {ends_at!r})")
        request.ends_at = ""
    # Setting the same values twice changes nothing more: safe to send again.
    return Call("UpdateSchedule", request, pb.UpdateScheduleResponse, _schedule, True)


def delete_schedule(name: str) -> Call[None]:
    request = pb.DeleteScheduleRequest(name=name)
    return Call("DeleteSchedule", request, pb.DeleteScheduleResponse, lambda r: None)


def trigger_schedule(name: str) -> Call[int]:
    """Create the schedule's task now (by hand: no tick); its id."""
    return Call("TriggerSchedule", pb.TriggerScheduleRequest(name=name), pb.TriggerScheduleResponse,
                lambda r: int(r.task_id64))  # fmt: skip


def create_workflow(
    workflow_or_name: Workflow | str, steps: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Call[int]:  # fmt: skip
    request = workflow_request(workflow_or_name, steps, idempotency_key)
    return Call("CreateWorkflow", request, pb.CreateWorkflowResponse, lambda r: int(r.id),
                bool(request.idempotency_key))  # fmt: skip


def get_workflow(workflow_id: int) -> Call[m.WorkflowInfo]:
    def read(r: pb.GetWorkflowResponse) -> m.WorkflowInfo:
        return m.WorkflowInfo.from_proto(r.workflow, tuple(m.WorkflowStepInfo.from_proto(s) for s in r.steps))

    return Call("GetWorkflow", pb.GetWorkflowRequest(id=workflow_id), pb.GetWorkflowResponse, read, True)


def list_workflows(
    status: m.TaskStatus | Status | None = None, limit: int = 100, offset: int = 0
) -> Call[list[m.WorkflowInfo]]:
    request = pb.ListWorkflowsRequest(limit=limit, offset=offset)
    if status is not None:
        request.status = int(status)  # type: ignore[assignment]
    return Call("ListWorkflows", request, pb.ListWorkflowsResponse,
                lambda r: [m.WorkflowInfo.from_proto(w) for w in r.workflows], True)  # fmt: skip


def cancel_workflow(workflow_id: int) -> Call[int]:
    request = pb.CancelWorkflowRequest(id=workflow_id)
    return Call("CancelWorkflow", request, pb.CancelWorkflowResponse, lambda r: int(r.cancelled))


def retry_workflow(workflow_id: int) -> Call[int]:
    request = pb.RetryWorkflowRequest(id=workflow_id)
    return Call("RetryWorkflow", request, pb.RetryWorkflowResponse, lambda r: int(r.retried))


def watch_request(task_ids: Iterable[int]) -> pb.WatchEventsRequest:
    return pb.WatchEventsRequest(task_ids=list(task_ids))


def finished(task: m.Task) -> bool:
    return task.status.finished


def last_attempt(task: m.Task) -> Call[list[m.Execution]] | None:
    """The call that reads a finished task's last attempt whole (None: it never ran)."""
    return list_task_executions(task.id, task.attempts) if task.attempts else None


def outcome(task: m.Task, last: m.Execution | None) -> Any:
    """What waiting for a finished task gives: its result, or TaskFailed / TaskCancelled."""
    if task.status == m.TaskStatus.SUCCEEDED:
        return last.result if last is not None else None
    if task.status == m.TaskStatus.CANCELLED:
        raise TaskCancelled(task)
    if task.status == m.TaskStatus.FAILED:
        error = (last.error if last is not None else "") or "no error recorded"
        raise TaskFailed(task, error, last.traceback if last is not None else "")
    raise FailedPrecondition(f"task {task.id} is {task.status.name}, not finished; wait() for it")
