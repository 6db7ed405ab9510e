"""The API's messages as plain dataclasses (ids as ints, times as aware datetimes), built from protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, struct_pb2

from taskservice import model
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import NewTask

__all__ = [
    "Execution", "HistoryEntry", "LimitInfo", "NewTask", "QueueInfo", "ScheduleInfo", "Task", "TaskEvent",
    "TaskList", "TaskStatus", "WorkerInfo", "WorkflowInfo", "WorkflowStepInfo",
]  # fmt: skip


class TaskStatus(IntEnum):
    """A task's status. The numbers are the wire's (and `model.Status`'s, which a value compares equal
    to); the wire's filter values UNKNOWN (4) and ALL (5) are no task's status, so they are not here."""

    QUEUED = 0
    RUNNING = 1
    FAILED = 2
    SUCCEEDED = 3
    RETRYING = 6
    CANCELLED = 7
    WAITING = 8  # a workflow step waiting for the steps it depends on

    @property
    def finished(self) -> bool:
        return model.Status(self).finished


def _time(text: str) -> datetime | None:
    """The wire's `YYYY-MM-DDTHH:MM:SSZ` (empty: no time)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if text else None


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    type: str
    status: TaskStatus
    parameters: dict[str, str]
    description: str
    priority: int
    retries: int
    max_retries: int
    attempts: int
    timeout_seconds: float
    created_at: datetime | None
    updated_at: datetime | None
    run_at: datetime | None
    worker_id: str
    idempotency_key: str
    # In list answers only: the parameters or description were cut (get_task returns them whole).
    truncated: bool = False
    queue: str = model.DEFAULT_QUEUE
    # Waiting only: why it waits beyond being due ("queue emails is paused", "no live worker runs ...",
    # "concurrency limit 2 for customer_id 42 (type send_email)").
    waiting_reason: str = ""
    # The limit it counts under ("type:send_email", "queue:emails"; empty: none), and its key there.
    limit_scope: str = ""
    limit_key: str = ""
    # The schedule that created it (get_schedule(id) names it), and the tick it was created for (None:
    # triggered by hand).
    schedule_id: int | None = None
    schedule_tick: datetime | None = None
    # The workflow it is a step of (get_workflow), its step's name there, the task that spawned it at
    # run time, and the tasks it waits for (its step's parents; get_task only).
    workflow_id: int | None = None
    step: str | None = None
    spawned_by: int | None = None
    dependencies: tuple[int, ...] = ()

    @classmethod
    def from_proto(cls, m: pb.Task) -> Task:
        return cls(
            id=m.id64 or m.id, name=m.name, type=m.type, status=TaskStatus(m.exact_status),
            parameters=dict(m.payload.parameters), description=m.description, priority=m.priority,
            retries=m.retries, max_retries=m.max_retries, attempts=m.attempts,
            timeout_seconds=m.timeout_seconds, created_at=_time(m.created_at),
            updated_at=_time(m.updated_at), run_at=_time(m.run_at), worker_id=m.worker_id,
            idempotency_key=m.idempotency_key, truncated=m.truncated, queue=m.queue or model.DEFAULT_QUEUE,
            waiting_reason=m.waiting_reason, limit_scope=m.limit_scope, limit_key=m.limit_key,
            schedule_id=m.schedule_id or None, schedule_tick=_time(m.schedule_tick),
            workflow_id=m.workflow_id or None, step=m.step or None, spawned_by=m.spawned_by or None,
            dependencies=tuple(int(d) for d in m.dependencies),
        )  # fmt: skip

    @classmethod
    def from_record(cls, t: model.Task) -> Task:
        """The task as stored (what `taskservice.testing.enqueued` reads), as GetTask would answer it
        but with its times to the microsecond."""
        return cls(
            id=t.id, name=t.name, type=t.type, status=TaskStatus(t.status), parameters=t.parameters,
            description=t.description, priority=t.priority, retries=t.retries, max_retries=t.max_retries,
            attempts=t.attempts, timeout_seconds=t.timeout_seconds, created_at=t.created_at,
            updated_at=t.updated_at, run_at=t.run_at, worker_id=t.lease_owner or "",
            idempotency_key=t.idempotency_key or "", queue=t.queue, limit_scope=t.limit_scope or "",
            limit_key=t.limit_key or "", schedule_id=t.schedule_id, schedule_tick=t.schedule_tick,
            workflow_id=t.workflow_id, step=t.step, spawned_by=t.spawned_by, dependencies=t.dependencies,
        )  # fmt: skip


@dataclass(frozen=True)
class TaskList:
    """A page of tasks, newest first, and how many match the filters."""

    tasks: list[Task]
    total: int


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    status: TaskStatus
    created_at: datetime | None
    details: str

    @classmethod
    def from_proto(cls, m: pb.TaskHistory) -> HistoryEntry:
        return cls(m.id64 or m.id, TaskStatus(m.exact_status), _time(m.created_at), m.details)


def _result(value: struct_pb2.Value) -> Any:
    return _integers(json_format.MessageToDict(value)) if value.WhichOneof("kind") else None


def _integers(value: Any) -> Any:
    """JSON numbers as the task returned them: protobuf's Value holds every number as a double, so a
    whole number within 2**53 (exact in a double) comes back an int (640, not 640.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, list):
        return [_integers(item) for item in value]
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Execution:
    """One attempt of a task."""

    id: int
    task_id: int
    attempt: int
    worker_id: str
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error: str
    result: Any
    result_truncated: bool
    duration_seconds: float
    started_after_seconds: float
    traceback: str = ""  # a failed attempt's (its last frames); `error` is its one-line form

    @classmethod
    def from_proto(cls, m: pb.TaskExecution) -> Execution:
        return cls(
            id=m.id, task_id=m.task_id64 or m.task_id, attempt=m.attempt, worker_id=m.worker_id,
            started_at=_time(m.started_at), finished_at=_time(m.finished_at), outcome=m.outcome,
            error=m.error, result=_result(m.result), result_truncated=m.result_truncated,
            duration_seconds=m.duration_seconds, started_after_seconds=m.started_after_seconds,
            traceback=m.traceback,
        )  # fmt: skip


@dataclass(frozen=True)
class WorkerInfo:
    """A worker or agent the server knows (ListWorkers): what it runs and when it was last heard from."""

    id: str
    host: str
    pid: int
    concurrency: int
    task_types: list[str]
    started_at: datetime | None
    last_heartbeat_at: datetime | None
    stopped_at: datetime | None
    running: int
    alive: bool
    queues: list[str]  # empty: every queue

    @classmethod
    def from_proto(cls, m: pb.Worker) -> WorkerInfo:
        return cls(
            id=m.id, host=m.host, pid=m.pid, concurrency=m.concurrency, task_types=list(m.task_types),
            started_at=_time(m.started_at), last_heartbeat_at=_time(m.last_heartbeat_at),
            stopped_at=_time(m.stopped_at), running=m.running, alive=m.alive, queues=list(m.queues),
        )  # fmt: skip


@dataclass(frozen=True)
class QueueInfo:
    """A queue (ListQueues): its waiting and running tasks, the live workers serving it, and whether
    it is paused (since when, why, by whom)."""

    name: str
    paused: bool
    waiting: int
    running: int
    workers: int
    paused_at: datetime | None
    reason: str
    paused_by: str

    @classmethod
    def from_proto(cls, m: pb.Queue) -> QueueInfo:
        return cls(
            m.name, m.paused, m.waiting, m.running, m.workers, _time(m.pause.paused_at), m.pause.reason,
            m.pause.paused_by,
        )  # fmt: skip


@dataclass(frozen=True)
class LimitInfo:
    """A limit on a task type (`kind` "type") or a queue ("queue"), from ListLimits: at most
    `concurrency` attempts running at once and `rate_limit` starts ("5/s"), per value of the parameter
    `key` (None: all its tasks count together); its tasks waiting under it and running. `set_by`: who
    set it at run time (None: declared with its type)."""

    kind: str
    name: str
    concurrency: int | None
    rate_limit: str | None
    key: str | None
    set_by: str | None
    updated_at: datetime | None
    waiting: int
    running: int

    @classmethod
    def from_proto(cls, m: pb.TaskLimit) -> LimitInfo:
        return cls(
            m.kind, m.name, m.concurrency or None, m.rate_limit or None, m.key or None, m.set_by or None,
            _time(m.updated_at), m.waiting, m.running,
        )  # fmt: skip


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule: at each tick of `cron` (in `timezone`) or every `every_seconds`, it creates `task`
    (every option resolved). `overlap` "allow" or "skip" (no new run while the last is unfinished);
    `catchup` "none", "last" or "all" (of the ticks missed while the schedulers were down). `next_tick`
    None: it ended. `last_task_status` None: no task yet, or deleted since. `missed` and `skipped`
    count the ticks not run for those two reasons. `declared_type`: the task type declaring it in code;
    `undeclared_at`: when that code stopped declaring it (it runs on until deleted)."""

    id: int
    name: str
    cron: str | None
    timezone: str
    every_seconds: float | None
    task: NewTask
    overlap: str
    catchup: str
    paused: bool
    ends_at: datetime | None
    next_tick: datetime | None
    last_tick: datetime | None
    last_task_id: int | None
    last_task_status: TaskStatus | None
    missed: int
    skipped: int
    declared_type: str | None
    created_by: str
    created_at: datetime | None
    updated_at: datetime | None
    undeclared_at: datetime | None = None

    @classmethod
    def from_proto(cls, m: pb.Schedule) -> ScheduleInfo:
        t = m.task
        task = NewTask(
            name=t.name, type=t.type, parameters=dict(t.payload.parameters), description=t.description,
            priority=t.priority, max_retries=t.max_retries if t.HasField("max_retries") else None,
            timeout_seconds=t.timeout_seconds if t.HasField("timeout_seconds") else None,
            queue=t.queue or None, limit_key=t.limit_key or None,
        )  # fmt: skip
        status = TaskStatus(m.last_task_status) if m.HasField("last_task_status") else None
        return cls(
            id=m.id64, name=m.name, cron=m.cron or None, timezone=m.timezone,
            every_seconds=m.every_seconds or None, task=task, overlap=m.overlap, catchup=m.catchup,
            paused=m.paused, ends_at=_time(m.ends_at), next_tick=_time(m.next_tick),
            last_tick=_time(m.last_tick), last_task_id=m.last_task_id64 or None, last_task_status=status,
            missed=m.missed, skipped=m.skipped, declared_type=m.declared_type or None,
            created_by=m.created_by, created_at=_time(m.created_at), updated_at=_time(m.updated_at),
            undeclared_at=_time(m.undeclared_at),
        )  # fmt: skip


@dataclass(frozen=True)
class Parameter:
    """A parameter a task type declares (values travel as strings: "42", "0.5", "true")."""

    name: str
    type: str  # string, integer, number, boolean or enum
    required: bool
    default: str | None
    description: str
    choices: list[str]  # enum only
    minimum: float | None
    maximum: float | None
    format: str = ""  # what a string must look like: "email" (an e-mail address); "": any string


@dataclass(frozen=True)
class TaskType:
    """A task type the server or its workers know, with what it declares (`declared` False: nothing,
    any parameters are taken)."""

    name: str
    declared: bool
    description: str
    parameters: list[Parameter]
    extra_parameters: bool
    max_retries: int | None
    timeout_seconds: float | None
    queue: str  # its tasks' queue when they name none
    image: str = ""  # a container task type's image (a Kubernetes Job runs its tasks); "": not one

    @classmethod
    def from_proto(cls, m: pb.TaskTypeDeclaration) -> TaskType:
        parameters = [
            Parameter(
                p.name, p.type, p.required, p.default_value if p.HasField("default_value") else None,
                p.description, list(p.choices), p.minimum if p.HasField("minimum") else None,
                p.maximum if p.HasField("maximum") else None, p.format,
            )
            for p in m.parameters
        ]  # fmt: skip
        return cls(
            m.name, m.declared, m.description, parameters, m.extra_parameters,
            m.max_retries if m.HasField("max_retries") else None,
            m.timeout_seconds if m.HasField("timeout_seconds") else None, m.queue or model.DEFAULT_QUEUE,
            m.container.image,
        )  # fmt: skip


@dataclass(frozen=True)
class TaskEvent:
    """A status change (a history row), with its task's name and type."""

    id: int
    task_id: int
    status: TaskStatus
    details: str
    created_at: datetime | None
    task_name: str
    task_type: str

    @classmethod
    def from_proto(cls, m: pb.TaskEvent) -> TaskEvent:
        return cls(
            id=m.id, task_id=m.task_id64 or m.task_id, status=TaskStatus(m.exact_status), details=m.details,
            created_at=_time(m.created_at), task_name=m.task_name, task_type=m.task_type,
        )  # fmt: skip


@dataclass(frozen=True)
class WorkflowStepInfo:
    """A step of a workflow (GetWorkflow): its task, and the steps it waits for (`depends_on`, the
    children spawned for it to wait for included). `spawned_by`: the step whose task spawned it at
    run time (None: one of the workflow's own)."""

    name: str
    task_id: int
    type: str
    status: TaskStatus
    depends_on: tuple[str, ...]
    spawned_by: str | None
    attempts: int
    updated_at: datetime | None = None

    @classmethod
    def from_proto(cls, m: pb.WorkflowStepState) -> WorkflowStepInfo:
        return cls(
            m.name, m.task_id, m.type, TaskStatus(m.status), tuple(m.depends_on), m.spawned_by or None,
            m.attempts, _time(m.updated_at),
        )  # fmt: skip


@dataclass(frozen=True)
class WorkflowInfo:
    """A workflow: RUNNING while any step is unfinished, then SUCCEEDED if every step did, else FAILED
    if one failed, else CANCELLED. `step_counts`: its steps by status; `steps`: each step, in creation
    order (a step after those it depends on), from get_workflow (empty in list_workflows)."""

    id: int
    name: str
    status: TaskStatus
    created_at: datetime | None
    updated_at: datetime | None  # its steps' last change
    finished_at: datetime | None  # None: still running
    step_counts: dict[TaskStatus, int]
    created_by: str
    steps: tuple[WorkflowStepInfo, ...] = ()
    idempotency_key: str = ""

    @classmethod
    def from_proto(cls, m: pb.Workflow, steps: tuple[WorkflowStepInfo, ...] = ()) -> WorkflowInfo:
        counts = {TaskStatus[name]: count for name, count in m.step_counts.items() if count}
        return cls(
            id=m.id, name=m.name, status=TaskStatus(m.status), created_at=_time(m.created_at),
            updated_at=_time(m.updated_at), finished_at=_time(m.finished_at),
            step_counts=dict(sorted(counts.items())), created_by=m.created_by, steps=steps,
            idempotency_key=m.idempotency_key,
        )  # fmt: skip


def create_request(new: NewTask) -> pb.CreateTaskRequest:
    """The CreateTaskRequest of a task to create (the server checks the rules)."""
    request = pb.CreateTaskRequest(
        name=new.name, type=new.type, payload=pb.Payload(parameters=dict(new.parameters)),
        description=new.description, priority=new.priority, idempotency_key=new.idempotency_key or "",
        delay_seconds=new.delay_seconds, queue=new.queue or "", limit_key=new.limit_key or "",
        run_at=new.run_at.isoformat() if new.run_at is not None else "",
    )  # fmt: skip
    if new.max_retries is not None:
        request.max_retries = new.max_retries
    if new.timeout_seconds is not None:
        request.timeout_seconds = new.timeout_seconds
    return request


if not TYPE_CHECKING:  # type checkers see only the current names

    def __getattr__(name: str) -> Any:
        from taskservice.client.renamed import old_name

        return old_name(__name__, name)
