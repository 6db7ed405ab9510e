"""Model records to API messages; times as UTC `YYYY-MM-DDTHH:MM:SSZ`."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from google.protobuf import struct_pb2

from taskservice import model
from taskservice.api.ids import narrow
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import Execution, HistoryEntry, Schedule, Status, Task, original_status
from taskservice.plugins.containers import ContainerError, ContainerSpec
from taskservice.plugins.declare import TaskTypeSpec
from taskservice.store import (
    Claim,
    HistoryEvent,
    Limit,
    LimitWait,
    Pause,
    Throughput,
    TypeStats,
    WorkerAttempt,
    WorkerInfo,
)

log = structlog.get_logger(__name__)


def statuses(status: Status) -> dict[str, Any]:
    """The original's `status` field and its exact twin (proto/cloud/v1/task.proto, "Statuses")."""
    return {"status": int(original_status(status)), "exact_status": int(status)}


_STATUS_FIELDS = {status: statuses(status) for status in Status}


def timestamp(value: datetime | None) -> str:
    """UTC, second precision, `Z` suffix; empty for no time."""
    if value is None:
        return ""
    return _utc_text(value)


@functools.lru_cache(maxsize=4096)
def _utc_text(value: datetime) -> str:
    """Cached: the tasks of one claim or list share their times (one statement's now(), one batch's
    creation), and formatting one costs more than the rest of its field."""
    return value.astimezone(UTC).isoformat(timespec="seconds")[:19] + "Z"


# In list responses (ListTasks, ListTaskExecutions) large fields are cut and the message marked;
# GetTask, and ListTaskExecutions for one attempt, return them whole.
LIST_TEXT_MAX = 256  # characters of a description or a parameter value
LIST_PARAMETERS_MAX = 20
LIST_RESULT_MAX = 4096  # bytes of a result's JSON


def _cut(text: str) -> str:
    return text if len(text) <= LIST_TEXT_MAX else text[: LIST_TEXT_MAX - 1] + "…"


def no_live_worker(task_type: str, queue: str) -> str:
    """Why a task waits when no worker or agent heard from within a lease runs its type (serving its
    queue, when that is not the default one)."""
    serving = "" if queue == model.DEFAULT_QUEUE else f" for queue {queue}"
    return f"no live worker runs type {task_type}{serving}"


def waiting_for(parents: list[tuple[str, Status]]) -> str:
    """Why a workflow step waits: "waiting for steps b (RUNNING), c (QUEUED)"."""
    shown = ", ".join(f"{step} ({status.name})" for step, status in parents[:5])
    more = f" and {len(parents) - 5} more" if len(parents) > 5 else ""
    return f"waiting for step{'s' if len(parents) > 1 else ''} {shown}{more}" if parents else ""


def paused(kind: str, name: str) -> str:
    """Why a task waits when its queue or type is paused."""
    return f"{kind} {name} is paused"


def limited(wait: LimitWait, parameters: Mapping[str, str]) -> str:
    """Why a task waits when its key is at its limit's concurrency, or has no start left within its
    rate: "concurrency limit 2 for customer_id 42 (type send_email)", "rate limit 5/s for type X"."""
    limit = wait.limit
    what = f"concurrency limit {limit.concurrency}" if wait.at_concurrency else f"rate limit {limit.rate}"
    scope = f"{limit.kind} {limit.name}"
    if wait.key and limit.key and parameters.get(limit.key) == wait.key:
        whose = f"{limit.key} {wait.key}"
    elif wait.key:  # the task's own key (CreateTaskRequest.limit_key)
        whose = f"key {wait.key}"
    elif limit.key:  # the tasks without the parameter share one key
        whose = f"tasks without {limit.key}"
    else:
        return f"{what} for {scope}"
    return f"{what} for {whose} ({scope})"


def limit(x: Limit) -> pb.TaskLimit:
    return pb.TaskLimit(
        kind=x.kind, name=x.name, concurrency=x.concurrency or 0, rate_limit=str(x.rate or ""),
        key=x.key or "", set_by=x.set_by or "", updated_at=timestamp(x.updated_at), waiting=x.waiting,
        running=x.running,
    )  # fmt: skip


def schedule(s: Schedule) -> pb.Schedule:
    spec, task = s.spec, s.spec.task
    template = pb.CreateTaskRequest(
        name=task.name, type=task.type, payload=pb.Payload(parameters=task.parameters),
        description=task.description, priority=task.priority, queue=task.queue or model.DEFAULT_QUEUE,
        limit_key=task.limit_key or "",
    )  # fmt: skip
    if task.max_retries is not None:
        template.max_retries = task.max_retries
    if task.timeout_seconds is not None:
        template.timeout_seconds = task.timeout_seconds
    message = pb.Schedule(
        id64=s.id, name=spec.name, cron=spec.cron or "", timezone=spec.timezone,
        every_seconds=spec.every_seconds or 0.0, task=template, overlap=spec.overlap, catchup=spec.catchup,
        paused=spec.paused, ends_at=timestamp(spec.ends_at), next_tick=timestamp(s.next_tick),
        last_tick=timestamp(s.last_tick), last_task_id64=s.last_task_id or 0, missed=s.missed,
        skipped=s.skipped, declared_type=s.declared_type or "", created_by=s.created_by,
        created_at=timestamp(s.created_at), updated_at=timestamp(s.updated_at),
        undeclared_at=timestamp(s.undeclared_at),
    )  # fmt: skip
    if s.last_status is not None:
        message.last_task_status = int(s.last_status)  # type: ignore[assignment]
    return message


def pause(p: Pause) -> pb.QueuePause:
    return pb.QueuePause(
        kind=p.kind, name=p.name, reason=p.reason, paused_by=p.paused_by, paused_at=timestamp(p.paused_at)
    )


def listed_task(t: Task) -> pb.Task:
    """A task as a list shows it: long texts and many parameters cut, and `truncated` set if so."""
    keys = sorted(t.parameters)[:LIST_PARAMETERS_MAX]
    parameters = {key: _cut(t.parameters[key]) for key in keys}
    message = task(t, parameters=parameters, description=_cut(t.description))
    message.last_error = _cut(t.last_error or "")
    message.truncated = (
        len(keys) < len(t.parameters)
        or parameters != {k: t.parameters[k] for k in keys}
        or (message.description != t.description)
        or message.last_error != (t.last_error or "")
    )
    return message


def task(t: Task, parameters: dict[str, str] | None = None, description: str | None = None) -> pb.Task:
    message = pb.Task(
        id=narrow(t.id),
        id64=t.id,
        name=t.name,
        type=t.type,
        **_STATUS_FIELDS[t.status],
        retries=t.retries,
        priority=t.priority,
        created_at=timestamp(t.created_at),
        description=t.description if description is None else description,
        max_retries=t.max_retries,
        attempts=t.attempts,
        updated_at=timestamp(t.updated_at),
        timeout_seconds=t.timeout_seconds,
        run_at=timestamp(t.run_at),
        queue=t.queue,
        trace_id=t.trace_id,
    )
    message.payload.SetInParent()  # present even when empty, as the original sends it
    message.payload.parameters.update(t.parameters if parameters is None else parameters)
    # The fields most tasks leave empty are set only when they are not (a protobuf field passed its
    # default still costs its conversion: this is the dispatcher's and the lists' hot path).
    optional = (
        ("limit_key", t.limit_key), ("limit_scope", t.limit_scope), ("schedule_id", t.schedule_id),
        ("worker_id", t.lease_owner), ("idempotency_key", t.idempotency_key),
        ("workflow_id", t.workflow_id), ("step", t.step), ("spawned_by", t.spawned_by),
        ("last_worker_id", t.last_worker_id), ("last_attempt_seconds", t.last_attempt_seconds),
        ("last_error", t.last_error),
    )  # fmt: skip
    for name, value in optional:
        if value:
            setattr(message, name, value)
    if t.schedule_tick is not None:
        message.schedule_tick = timestamp(t.schedule_tick)
    if t.dependencies:
        message.dependencies.extend(str(parent) for parent in t.dependencies)
    return message


def history(entry: HistoryEntry) -> pb.TaskHistory:
    return pb.TaskHistory(
        id=narrow(entry.id),
        id64=entry.id,
        **statuses(entry.status),
        created_at=timestamp(entry.created_at),
        details=entry.details,
    )


def _value(result: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    if result is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(result, bool):
        value.bool_value = result
    elif isinstance(result, int | float):
        value.number_value = result
    elif isinstance(result, str):
        value.string_value = result
    elif isinstance(result, dict):
        value.struct_value.update(result)
    elif isinstance(result, list):
        value.list_value.extend(result)
    else:
        value.string_value = str(result)
    return value


def execution(e: Execution, *, whole: bool = False) -> pb.TaskExecution:
    """An attempt; its result cut to a preview past LIST_RESULT_MAX unless `whole`."""
    duration = (e.finished_at - e.started_at).total_seconds() if e.finished_at else 0.0
    result, cut = e.result, model.is_cut_result(e.result)
    if not whole and not cut and e.result is not None:
        text = json.dumps(e.result, ensure_ascii=False)
        if len(text.encode()) > LIST_RESULT_MAX:
            result, cut = model.cut_result(text, LIST_RESULT_MAX, LIST_RESULT_MAX // 2), True
    return pb.TaskExecution(
        id=e.id,
        task_id=narrow(e.task_id),
        task_id64=e.task_id,
        attempt=e.attempt,
        worker_id=e.worker_id,
        started_at=timestamp(e.started_at),
        finished_at=timestamp(e.finished_at),
        outcome=e.outcome,
        error=e.error or "",
        result=_value(result),
        result_truncated=cut,
        duration_seconds=duration,
        started_after_seconds=e.started_after_seconds,
        traceback=e.traceback or "",
    )


def alive(w: WorkerInfo, within_seconds: float) -> bool:
    """Running, and heard from within `within_seconds`."""
    return (
        w.stopped_at is None and (datetime.now(UTC) - w.last_heartbeat_at).total_seconds() <= within_seconds
    )


def worker(w: WorkerInfo, alive_within_seconds: float) -> pb.Worker:
    return pb.Worker(
        id=w.id,
        host=w.host,
        pid=w.pid,
        concurrency=w.concurrency,
        task_types=w.task_types,
        started_at=timestamp(w.started_at),
        last_heartbeat_at=timestamp(w.last_heartbeat_at),
        stopped_at=timestamp(w.stopped_at),
        running=w.running,
        alive=alive(w, alive_within_seconds),
        kind=w.kind,
        queues=w.queues,
        version=w.version or "",
    )


def event(e: HistoryEvent) -> pb.TaskEvent:
    return pb.TaskEvent(
        id=e.entry.id,
        task_id=narrow(e.entry.task_id),
        task_id64=e.entry.task_id,
        **statuses(e.entry.status),
        details=e.entry.details,
        created_at=timestamp(e.entry.created_at),
        task_name=e.task_name,
        task_type=e.task_type,
    )


def task_type(name: str, spec: TaskTypeSpec | None) -> pb.TaskTypeDeclaration:
    """A task type and what it declares (`declared` false when it declares nothing)."""
    if spec is None:
        return pb.TaskTypeDeclaration(name=name, declared=False, extra_parameters=True)
    declaration = pb.TaskTypeDeclaration(
        name=name,
        declared=True,
        description=spec.description,
        extra_parameters=spec.extra_parameters,
        permanent_errors=spec.permanent_errors,
        queue=spec.queue or model.DEFAULT_QUEUE,
    )
    for p in spec.parameters:
        parameter = declaration.parameters.add(
            name=p.name,
            type=p.type,
            required=p.required,
            description=p.description,
            choices=p.choices,
            aliases=p.aliases,
            format=p.format,
        )
        if p.default is not None:
            parameter.default_value = p.default
        if p.minimum is not None:
            parameter.minimum = p.minimum
        if p.maximum is not None:
            parameter.maximum = p.maximum
    if spec.max_retries is not None:
        declaration.max_retries = spec.max_retries
    if spec.timeout_seconds is not None:
        declaration.timeout_seconds = spec.timeout_seconds
    if spec.backoff_seconds is not None:
        declaration.backoff_seconds = spec.backoff_seconds
    if spec.container is not None:
        c = spec.container
        declaration.container.CopyFrom(
            pb.ContainerSpec(
                image=c.image, entrypoint=c.entrypoint, args=c.args, env=c.env,
                resource_requests=c.resource_requests, resource_limits=c.resource_limits,
                service_account=c.service_account,
            )
        )  # fmt: skip
    return declaration


def assignment(
    claim: Claim,
    now: float,
    trace_parent: str | None = None,
    containers: Mapping[str, TaskTypeSpec] | None = None,
) -> pb.WorkAssignment:
    """A claimed attempt as an agent receives it, at `now` (monotonic): the attempt's id is its
    fencing token; with how much of its lease is left, the traceparent its attempt continues, and
    the task's container when its type is one of `containers` (api/containers.py)."""
    work = pb.WorkAssignment(
        assignment_id=claim.execution_id,
        task=task(claim.task),
        lost_leases=claim.task.lost_leases,
        trace_parent=trace_parent or "",
    )
    declared = containers.get(claim.task.type) if containers else None
    if declared is not None:
        fill_container(work.task, claim.task, declared)
    if claim.lease_until is not None:
        work.lease_seconds_left = max(claim.lease_until - now, 0.0)
    for step, result in claim.parents.items():
        work.parents.append(pb.StepResult(step=step, result_json=_json(result)))
    for step in claim.parents_left_out:
        work.parents.append(pb.StepResult(step=step, left_out=True))
    return work


def rendered(t: Task, declared: TaskTypeSpec) -> ContainerSpec:
    """The task's container: its type's, rendered with its parameters. One it cannot render (its type
    was declared anew since it was created, naming a parameter it lacks) keeps the `${name}` it lacks,
    said in the log: the error is the container's to show, not the API's to refuse."""
    assert declared.container is not None
    try:
        container = declared.container_for(t.parameters)
    except ContainerError as error:
        log.warning("cannot render a task's container", task_id=t.id, type=t.type, error=str(error))
        container = declared.container.render(t.parameters, strict=False)
    assert container is not None
    return container


def fill_container(message: pb.Task, t: Task, declared: TaskTypeSpec) -> None:
    """Set a container task's fields (11-14, 125-127): its type's container rendered for it."""
    container = rendered(t, declared)
    message.base_image = container.image
    message.entrypoint = container.entrypoint
    message.args[:] = container.args
    message.env.update(container.env)
    message.resource_requests.update(container.resource_requests)
    message.resource_limits.update(container.resource_limits)
    message.service_account = container.service_account


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def workflow(w: model.Workflow) -> pb.Workflow:
    return pb.Workflow(
        id=w.id,
        name=w.name,
        status=w.status,  # type: ignore[arg-type]
        created_at=timestamp(w.created_at),
        updated_at=timestamp(w.updated_at),
        finished_at=timestamp(w.finished_at),
        steps=w.step_total,
        step_counts={status.name: n for status, n in w.step_counts.items()},
        created_by=w.created_by,
        idempotency_key=w.idempotency_key or "",
    )


def workflow_step(s: model.WorkflowStep) -> pb.WorkflowStepState:
    return pb.WorkflowStepState(
        name=s.name,
        task_id=s.task_id,
        type=s.type,
        status=s.status,  # type: ignore[arg-type]
        depends_on=s.depends_on,
        spawned_by=s.spawned_by or "",
        attempts=s.attempts,
        updated_at=timestamp(s.updated_at),
    )


# -- the operator's dashboard (issue 24) ------------------------------------------------------------


def type_stats(s: TypeStats, range_seconds: float) -> pb.TypeStats:
    return pb.TypeStats(
        type=s.type,
        finished=s.finished,
        succeeded=s.succeeded,
        failed=s.failed,
        failure_rate=s.failed / s.finished if s.finished else 0.0,
        per_minute=s.finished * 60.0 / range_seconds,
        p50_seconds=s.p50_seconds,
        p95_seconds=s.p95_seconds,
        p95_wait_seconds=s.p95_wait_seconds or 0.0,
    )


def throughput(t: Throughput, range_seconds: float) -> dict[str, Any]:
    """The chart's fields of a GetTypeStatsResponse."""
    return {
        "buckets": [
            pb.ThroughputBucket(start=timestamp(b.start), succeeded=b.succeeded, failed=b.failed)
            for b in t.buckets
        ],
        "bucket_seconds": range_seconds / len(t.buckets),
        "until": timestamp(t.until),
    }


def worker_attempt(a: WorkerAttempt) -> pb.WorkerAttempt:
    return pb.WorkerAttempt(
        id=a.id,
        task_id=a.task_id,
        task_name=a.task_name,
        task_type=a.task_type,
        attempt=a.attempt,
        started_at=timestamp(a.started_at),
        finished_at=timestamp(a.finished_at),
        outcome=a.outcome,
        duration_seconds=a.duration_seconds,
        error=_cut(a.error or ""),
    )
