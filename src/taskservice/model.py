"""The task lifecycle: statuses, allowed transitions, the retry policy and history wording. Pure, no I/O."""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any, TypedDict


class Status(IntEnum):
    """Task statuses; numbers are the wire contract's `TaskStatusEnum` and never change."""

    QUEUED = 0
    RUNNING = 1
    FAILED = 2
    SUCCEEDED = 3
    UNKNOWN = 4
    ALL = 5  # only a filter value: "any status"
    RETRYING = 6
    CANCELLED = 7
    WAITING = 8  # a workflow step waiting for the steps it depends on (migration 0070)

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# What the original's clients, whose enum ends at ALL, are shown in its status fields: RETRYING and
# WAITING wait to run, as QUEUED does; CANCELLED finished without succeeding, as FAILED did.
AS_ORIGINAL: dict[Status, Status] = {
    Status.RETRYING: Status.QUEUED,
    Status.WAITING: Status.QUEUED,
    Status.CANCELLED: Status.FAILED,
}


def original_status(status: Status) -> Status:
    """The status as the original's enum (0-5) says it."""
    return AS_ORIGINAL.get(status, status)


def shown_as(status: Status) -> frozenset[Status]:
    """The statuses the original's enum shows as `status`: an old client's filter by QUEUED also
    wants the RETRYING tasks it is shown as QUEUED (and FAILED the CANCELLED ones)."""
    return frozenset({status, *(s for s, shown in AS_ORIGINAL.items() if shown == status)})


CLAIMABLE = frozenset({Status.QUEUED, Status.RETRYING})
# The queue of a task whose request and type's declaration name none (migration 0040).
# The orders of a task list (ListTasks.order_by): a column and a direction. Creation's is read from an
# index whatever the count; the others sort every matching task, so only when at most SORTED_MAX match.
LIST_COLUMNS = ("created", "name", "type", "status", "duration", "worker", "error")
LIST_ORDERS = tuple(f"{column}_{way}" for column in LIST_COLUMNS for way in ("desc", "asc"))
SORTED_MAX = 10_000
# Slots of an agent (PullEventsRequest.slots), and assignments it may keep waiting beyond them
# (PullEventsRequest.prefetch); a Heartbeat names at most as many attempts as both.
AGENT_SLOTS_MAX = 1000
AGENT_PREFETCH_MAX = 1000
AGENT_HELD_MAX = AGENT_SLOTS_MAX + AGENT_PREFETCH_MAX
# Tasks or outcomes in one call (CreateTasks, ReportOutcomes) and outcomes in one statement of a
# worker's reporter, at most: a longer backlog goes in several, one after the other.
BATCH_MAX = 1000

DEFAULT_QUEUE = "default"
# What a queue's name may be: it is typed on command lines and shown in metrics' labels.
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
QUEUE_RULE = "1 to 100 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit"
# Limits (migration 0050): a rate is at most RATE_MAX starts per period of at most a day; a key is
# what a task is counted by, a payload parameter's name or a task's own value.
CONCURRENCY_MAX = 1_000_000
RATE_MAX = 10_000
RATE_PERIOD_MAX = 86_400.0
LIMIT_KEY_MAX = 255
_RATE = re.compile(r"\s*(\d{1,9})\s*/\s*(\d{0,9}(?:\.\d{1,6})?)\s*([a-z]+)\s*")
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
               "h": 3600.0, "hour": 3600.0, "d": 86_400.0, "day": 86_400.0}  # fmt: skip
RATE_RULE = 'a count per period, as "5/s", "100/min", "10/30s" or "1000/h" (at most 10000, per at most a day)'


@dataclass(frozen=True)
class Rate:
    """At most `count` starts in any `per_seconds`."""

    count: int
    per_seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """ "5/s", "100/min", "10/30s", "1000/h", "1/day"; ValueError saying RATE_RULE otherwise."""
        match = _RATE.fullmatch(text.lower())
        unit = match and (_RATE_UNITS.get(match[3]) or _RATE_UNITS.get(match[3].removesuffix("s")))
        if not match or not unit:
            raise ValueError(f"must be {RATE_RULE} (got {text!r})")
        count, per = int(match[1]), float(match[2] or 1) * unit
        if not 1 <= count <= RATE_MAX or not 0 < per <= RATE_PERIOD_MAX:
            raise ValueError(f"must be {RATE_RULE} (got {text!r})")
        return cls(count, per)

    def __str__(self) -> str:
        for unit, seconds in (("d", 86_400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
            if self.per_seconds % seconds == 0:
                every = self.per_seconds / seconds
                return f"{self.count}/{'' if every == 1 else f'{every:g}'}{unit}"
        return f"{self.count}/{self.per_seconds:g}s"


TASK_STATUSES: tuple[Status, ...] = tuple(s for s in Status if s not in (Status.UNKNOWN, Status.ALL))

# The lifecycle, written down once: target status -> the statuses a task may move to it from.
#   QUEUED -> RUNNING -> SUCCEEDED
#                     -> RETRYING -> RUNNING ...      (an attempt failed, retries left)
#                     -> FAILED                        (no attempt left)
#   QUEUED | RETRYING | RUNNING | WAITING -> CANCELLED
#   RUNNING -> QUEUED                                  (a stopping worker puts its task back)
#   SUCCEEDED | FAILED | CANCELLED -> QUEUED           (run a finished task again)
# Workflow steps (migration 0070), moved by the database's statements, never by hand:
#   WAITING -> QUEUED                                  (every step it waits for succeeded)
#   RUNNING -> WAITING                                 (it waits for the children it spawned)
ALLOWED_FROM: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.RUNNING, *FINISHED}),
    Status.RUNNING: CLAIMABLE,
    Status.SUCCEEDED: frozenset({Status.RUNNING}),
    Status.RETRYING: frozenset({Status.RUNNING}),
    Status.FAILED: frozenset({Status.RUNNING}),
    Status.CANCELLED: frozenset({Status.QUEUED, Status.RETRYING, Status.RUNNING, Status.WAITING}),
}


# What the bulk actions (CancelTasks, RetryTasks, DeleteTasks) apply to: what CancelTask and RetryTask
# do to one task; and a task is deleted only once it finished (never under a worker).
CANCELLABLE = ALLOWED_FROM[Status.CANCELLED]
RETRYABLE = FINISHED
DELETABLE = FINISHED

# What an operator may set by hand (UpdateTaskStatus); RUNNING and RETRYING belong to the workers.
OPERATOR_TARGETS = frozenset({Status.QUEUED, Status.CANCELLED, Status.SUCCEEDED, Status.FAILED})


def can_move(current: Status, target: Status) -> bool:
    """Whether the lifecycle allows `current -> target`."""
    return current in ALLOWED_FROM.get(target, frozenset())


class IllegalTransition(Exception):
    """A status change the lifecycle does not allow."""

    def __init__(self, task_id: int, current: Status, target: Status) -> None:
        allowed = ", ".join(s.name for s in sorted(ALLOWED_FROM.get(target, frozenset()))) or "nothing"
        super().__init__(
            f"task {task_id} is {current.name}; it can move to {target.name} only from {allowed}"
        )
        self.task_id, self.current, self.target = task_id, current, target


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**(n-1))).

    `max_lost_leases`: a lost lease (the worker died or hung) does not spend a retry, since the task
    did nothing wrong; but a task whose attempts keep killing their workers is stopped after this many.
    """

    base: float = 1.0
    cap: float = 300.0
    max_lost_leases: int = 3

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        ceiling: float = min(self.cap, self.base * 2.0 ** max(retry_number - 1, 0))
        # Half fixed, half jitter: never zero (a flapping task still backs off) and never in lockstep.
        jitter: float = (rng or random).uniform(0, ceiling / 2)
        return ceiling / 2 + jitter


@dataclass(frozen=True)
class Task:
    """A task as stored."""

    id: int
    name: str
    type: str
    status: Status
    payload: dict[str, Any]
    retries: int
    max_retries: int
    priority: int
    description: str
    timeout_seconds: float
    attempts: int
    created_at: datetime
    updated_at: datetime
    run_at: datetime
    lease_owner: str | None = None  # the worker of the open attempt (RUNNING only)
    lease_expires_at: datetime | None = None
    idempotency_key: str | None = None
    execution_id: int | None = None  # the current (or last) attempt: the fencing token
    lost_leases: int = 0  # attempts that ended because their worker stopped responding
    queue: str = DEFAULT_QUEUE
    limit_scope: str | None = None  # the limit it is under ("type:<name>", "queue:<name>"), if any
    limit_key: str | None = None  # its key under that limit
    schedule_id: int | None = None  # the schedule that created it (migration 0060), if any
    schedule_tick: datetime | None = None  # the tick it was created for (None: triggered by hand)
    workflow_id: int | None = None  # the workflow it is a step of (migration 0070), if any
    step: str | None = None  # its step's name there
    spawned_by: int | None = None  # the task that spawned it at run time, if any
    dependencies: tuple[int, ...] = ()  # the tasks it waits for (GetTask only)
    # The W3C traceparent of whoever created it (migration 0080): its attempts continue that trace.
    trace_parent: str | None = None

    @property
    def trace_id(self) -> str:
        """The trace id of trace_parent (32 hex digits), or "" when it has none."""
        parts = (self.trace_parent or "").split("-")
        return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""

    # Its current (or last) attempt's worker, duration (so far, while it runs) and error, if any.
    last_worker_id: str | None = None
    last_attempt_seconds: float | None = None
    last_error: str | None = None

    @property
    def parameters(self) -> dict[str, str]:
        params = self.payload.get("parameters", {})
        return {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}


_TASK_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Task) if f.default is not dataclasses.MISSING}


def task_from(values: Mapping[str, Any]) -> Task:
    """`Task(**values)`, every required field given (the store's rows have them), at a fraction of the
    cost: a frozen dataclass's __init__ sets each of its ~30 fields through object.__setattr__, which a
    claim of hundreds of tasks pays per field (about 3 µs a task)."""
    task = object.__new__(Task)
    task.__dict__.update(_TASK_DEFAULTS)
    task.__dict__.update(values)
    return task


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    task_id: int
    status: Status
    details: str
    created_at: datetime


@dataclass(frozen=True)
class Execution:
    """One attempt at running a task."""

    id: int
    task_id: int
    attempt: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error: str | None
    result: Any
    started_after_seconds: float = 0.0  # since the task was created
    traceback: str | None = None  # a failed attempt's, bounded (cut_traceback)


@dataclass(frozen=True)
class NewTask:
    """What a client submits; validated by the interface that accepts it."""

    name: str
    type: str
    parameters: dict[str, str] = field(default_factory=dict)
    description: str = ""
    priority: int = 0
    max_retries: int | None = None
    timeout_seconds: float | None = None
    idempotency_key: str | None = None
    delay_seconds: float = 0.0
    queue: str | None = None  # None: the type's declared queue, else DEFAULT_QUEUE
    limit_key: str | None = None  # its key under a limit; None: its parameter the limit names
    # Instead of delay_seconds: when it may start (timezone-aware; a time past: now), by the database's
    # clock, so that no client's or server's clock moves it.
    run_at: datetime | None = None
    # The W3C traceparent of the trace that creates it (docs/observability.md); None: none.
    trace_parent: str | None = None


_NEW_TASK_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(NewTask) if f.default is not dataclasses.MISSING
}


def new_task_from(values: Mapping[str, Any]) -> NewTask:
    """`NewTask(**values)`, `parameters` given, without the frozen __init__'s cost (see task_from): every
    task CreateTasks and enqueue_many check is built anew (about 1.5 µs a task)."""
    new = object.__new__(NewTask)
    new.__dict__.update(_NEW_TASK_DEFAULTS)
    new.__dict__.update(values)
    return new


# Schedules (migration 0060): the policies a schedule may have, and the bounds of its clock.
OVERLAP_POLICIES = ("allow", "skip")  # skip: no new run while the previous one is unfinished
CATCHUP_POLICIES = ("none", "last", "all")  # after downtime: no missed tick, the last one, each one
CATCHUP_MAX = 100  # `all` creates at most this many missed ticks at once, the latest
EVERY_MIN_SECONDS = 1.0
EVERY_MAX_SECONDS = 366 * 86_400.0
SCHEDULE_NAME_MAX = 200
EVERY_RULE = 'a duration such as "30s", "5m", "2h" or "1d" (at least 1 second, at most 366 days)'
_EVERY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)?\s*")
CRON_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def every_seconds(text: str) -> float:
    """Seconds of a duration ("30s", "5m", "2h", "1d", or a number of seconds); ValueError saying
    EVERY_RULE otherwise."""
    match = _EVERY.fullmatch(text.lower())
    seconds = (
        float(match[1]) * {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}[(match[2] or "s")[0]]
        if match
        else 0
    )
    if not EVERY_MIN_SECONDS <= seconds <= EVERY_MAX_SECONDS:
        raise ValueError(f"must be {EVERY_RULE} (got {text[:50]!r})")
    return seconds


def cron_expression(text: str) -> str:
    """A cron expression as stored: five fields (a nickname such as @hourly becomes its five); ValueError
    saying what is wrong otherwise. Evaluated by cronsim (rules/schedules.py)."""
    from cronsim import CronSim, CronSimError  # here: only what handles schedules pays for the import

    expression = CRON_NICKNAMES.get(text.strip().lower(), text.strip())
    if len(expression.split()) != 5:
        raise ValueError(
            f"must have five fields (minute hour day month weekday) or be one of {', '.join(CRON_NICKNAMES)}"
            f" (got {text[:100]!r})"
        )
    try:
        CronSim(expression, datetime(2026, 1, 1))
    except CronSimError as error:
        raise ValueError(f"is not a valid cron expression: {error} (got {text[:100]!r})") from None
    return expression


CRON_MAX = 200  # characters of a cron expression


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule is: at each tick of `cron` (in `timezone`) or every `every_seconds`, create
    `task`. `overlap` and `catchup` are among OVERLAP_POLICIES and CATCHUP_POLICIES; no tick after
    `ends_at` fires."""

    name: str
    task: NewTask
    cron: str | None = None
    timezone: str = "UTC"
    every_seconds: float | None = None
    overlap: str = "allow"
    catchup: str = "none"
    paused: bool = False
    ends_at: datetime | None = None


@dataclass(frozen=True)
class Schedule:
    """A schedule as stored: its spec, when it is next due (None: ended), and what it did last."""

    id: int
    spec: ScheduleSpec
    next_tick: datetime | None
    last_tick: datetime | None = None
    last_task_id: int | None = None
    missed: int = 0  # ticks not created because the schedulers were down (catch-up none or bounded)
    skipped: int = 0  # ticks not created because the previous run was unfinished (overlap skip)
    declared_type: str | None = None  # the task type that declares it, if it was declared in code
    undeclared_at: datetime | None = None  # when its type's code stopped declaring it (it runs on)
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_status: Status | None = None  # the status of its last task (None: none, or deleted since)


@dataclass(frozen=True)
class Firing:
    """What a scheduler does with a due schedule now: create a task for each of `ticks` (oldest
    first), count `missed` and `skipped` ticks, and make `next_tick` (None: ended) the next due."""

    ticks: tuple[datetime, ...]
    next_tick: datetime | None
    missed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class TaskSelection:
    """Which tasks a bulk action is for: every condition set must hold (an empty one: any). A new
    condition is a field here, in the API's TaskFilter, in api/validation.py's selection(), and in the
    two statements of queries.sql that select (pick_tasks, count_selected)."""

    ids: tuple[int, ...] = ()
    statuses: frozenset[Status] = frozenset()
    type: str | None = None
    name_contains: str | None = None
    created_after: datetime | None = None  # created at or after
    created_before: datetime | None = None  # created before
    queue: str | None = None

    def statuses_within(self, applicable: frozenset[Status]) -> frozenset[Status]:
        """The statuses to act on: those asked for that the action applies to (none asked: all of them)."""
        return applicable & self.statuses if self.statuses else applicable


@dataclass(frozen=True)
class IdSpan:
    """The tasks a bulk action has left to look at: ids in (after, last]. `last` is the highest id when
    the action began, so tasks created since are never taken, however many calls it takes."""

    after: int
    last: int

    def token(self) -> str:
        """The span as the API's resume_token."""
        return f"{self.after}-{self.last}"


@dataclass(frozen=True)
class TaskOptions:
    """How to create a task besides its type and parameters: the one value every way of creating a
    task takes (`Client.create_task`, `enqueue`, a declared type's typed calls)."""

    name: str | None = None  # None: the type's name
    description: str = ""
    priority: int = 0
    delay_seconds: float = 0.0
    run_at: datetime | None = None  # instead of delay_seconds: when it may start (timezone-aware)
    idempotency_key: str | None = None
    max_retries: int | None = None  # None: the type's declared default, else the server's
    timeout_seconds: float | None = None
    queue: str | None = None  # None: the type's declared queue, else "default"
    # Its key under its type's (or queue's) limit; None: the value of the parameter the limit names.
    limit_key: str | None = None

    def __post_init__(self) -> None:
        # The programmer's mistakes, refused where they are made rather than at the server.
        if self.run_at is not None:
            if self.delay_seconds:
                raise ValueError("run_at: give run_at or delay_seconds, not both")
            if self.run_at.tzinfo is None:
                raise ValueError(f"run_at: must be timezone-aware (got {self.run_at.isoformat()})")

    def new_task(self, type: str, parameters: Mapping[str, str] | None = None) -> NewTask:
        """The task to create (not yet checked: the interface that takes it checks it)."""
        return NewTask(
            name=type if self.name is None else self.name, type=type, parameters=dict(parameters or {}),
            description=self.description, priority=self.priority, max_retries=self.max_retries,
            timeout_seconds=self.timeout_seconds, idempotency_key=self.idempotency_key,
            delay_seconds=self.delay_seconds, queue=self.queue, limit_key=self.limit_key, run_at=self.run_at,
        )  # fmt: skip


class TaskOptionFields(TypedDict, total=False):
    """TaskOptions' fields as keyword arguments: the create-task calls' older form (`priority=5`)."""

    name: str | None
    description: str
    priority: int
    delay_seconds: float
    run_at: datetime | None
    idempotency_key: str | None
    max_retries: int | None
    timeout_seconds: float | None
    queue: str | None
    limit_key: str | None


def task_options(options: TaskOptions | None, fields: TaskOptionFields) -> TaskOptions:
    """`options`, or the same given as keyword arguments (not both)."""
    if options is None:
        return TaskOptions(**fields)
    if fields:
        raise TypeError(f"give options=TaskOptions(...) or {', '.join(fields)}, not both")
    return options


class Outcome:
    """How an attempt ended; the values are stored in `task_executions.outcome`."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"  # the worker stopped; the task went back to the queue
    LOST = "lost"  # the worker's lease expired (it crashed or hung)
    CANCELLED = "cancelled"


# Workflows (migration 0070): a named graph of steps, each a task that starts once every step it
# depends on succeeded. Step names are typed on command lines and joined by "/" under a spawning step.
STEPS_MAX = 1000  # steps of a workflow at creation, and children one attempt may spawn
STEP_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
STEP_NAME_RULE = "1 to 100 characters of A-Z a-z 0-9 . _ -"
STEP_PATH_MAX = 255  # a spawned child's full name, "<parent's step>/<name>"
# The parents' results a step is given, in all: past it, the later parents' are left out (ctx.parents
# lacks them and ctx.parents_left_out names them) rather than a fan-in of big results filling memory.
PARENT_RESULTS_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class StepSpec:
    """A step of a workflow to create: its task, and the steps (by name) it starts after."""

    name: str
    task: NewTask
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkflowGraph:
    """A checked workflow (rules/workflows.py): its steps with each one's parents before it (the order
    they are created in, so that a step's task id is above its parents'), and the edges as (parent,
    child) names."""

    steps: tuple[StepSpec, ...]
    edges: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SpawnedTask:
    """A child a running attempt spawned (ctx.spawn): its name under the spawner's step, and its task."""

    name: str
    task: NewTask


@dataclass(frozen=True)
class WorkflowStep:
    """A step of a workflow as it stands."""

    name: str
    task_id: int
    type: str
    status: Status
    depends_on: tuple[str, ...]
    spawned_by: str | None  # the step that spawned it at run time; None: one of the workflow's own
    attempts: int
    updated_at: datetime


@dataclass(frozen=True)
class Workflow:
    """A workflow as it stands, its status derived from its steps' (workflow_status)."""

    id: int
    name: str
    status: Status
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    step_counts: dict[Status, int]
    created_by: str = ""
    idempotency_key: str | None = None
    steps: tuple[WorkflowStep, ...] = ()  # GetWorkflow only

    @property
    def step_total(self) -> int:
        return sum(self.step_counts.values())


WORKFLOW_STATUSES = (Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


def workflow_status(step_counts: Mapping[Status, int]) -> Status:
    """RUNNING while any step is unfinished; then SUCCEEDED if every step did, else FAILED if any
    failed, else CANCELLED."""
    if any(n and not status.finished for status, n in step_counts.items()):
        return Status.RUNNING
    if step_counts.get(Status.FAILED):
        return Status.FAILED
    if step_counts.get(Status.CANCELLED):
        return Status.CANCELLED
    return Status.SUCCEEDED


@dataclass(frozen=True)
class Transition:
    """A decided status change of a running task, with the history line that explains it."""

    task_id: int
    execution_id: int
    status: Status
    retries: int
    delay_seconds: float
    details: str
    outcome: str
    error: str | None = None
    result: Any = None
    lost_leases: int = 0
    traceback: str | None = None  # a failed attempt's, bounded (cut_traceback)
    # Children the attempt spawned (SUCCEEDED and WAITING only), created with its outcome.
    spawned: tuple[SpawnedTask, ...] = ()
    # The attempt's W3C traceparent when tracing is on: the spawned children continue its trace.
    trace_parent: str | None = None


# History wording, in the seed's words.
SCHEDULED = "Task is scheduled"


def started(attempt: int) -> str:
    return f"Task started (Attempt {attempt})"


# What every `succeeded` transition holds but its task's own: copied for each (succeeded, below).
_SUCCEEDED = {
    **{f.name: f.default for f in dataclasses.fields(Transition) if f.default is not dataclasses.MISSING},
    "status": Status.SUCCEEDED,
    "delay_seconds": 0.0,
    "outcome": Outcome.SUCCEEDED,
}


def succeeded(
    task: Task, execution_id: int, result: Any, spawned: tuple[SpawnedTask, ...] = ()
) -> Transition:
    """The transition of an attempt that succeeded. Made without the frozen dataclass's __init__,
    which sets each of its 13 fields through object.__setattr__ (see task_from): the same
    Transition, 1.3 µs less of a worker's Python per task (0.7 µs against 2.0)."""
    values = _SUCCEEDED.copy()
    values["task_id"], values["execution_id"], values["result"] = task.id, execution_id, result
    values["retries"], values["lost_leases"], values["spawned"] = task.retries, task.lost_leases, spawned
    values["details"] = f"Task completed successfully (Attempt {task.attempts})" + (
        f"; spawned {_children(spawned)}" if spawned else ""
    )
    transition = object.__new__(Transition)
    object.__setattr__(transition, "__dict__", values)
    return transition


def _children(spawned: tuple[SpawnedTask, ...]) -> str:
    """ "1 child", "3 children": a history line's count of the children an attempt spawned."""
    return f"{len(spawned)} {'child' if len(spawned) == 1 else 'children'}"


def waiting_for_children(
    task: Task, execution_id: int, result: Any, spawned: tuple[SpawnedTask, ...]
) -> Transition:
    """A continuation: the attempt spawned children and runs again once they all succeeded."""
    return Transition(
        task.id,
        execution_id,
        Status.WAITING,
        task.retries,
        0.0,
        f"Task is waiting for the {_children(spawned)} it spawned (Attempt {task.attempts})",
        Outcome.SUCCEEDED,
        result=result,
        lost_leases=task.lost_leases,
        spawned=spawned,
    )


def attempt_failed(
    task: Task,
    execution_id: int,
    reason: str,
    error: str,
    policy: RetryPolicy,
    *,
    outcome: str = Outcome.FAILED,
    retryable: bool = True,
    backoff: bool = True,
    traceback: str | None = None,
) -> Transition:
    """An attempt ended badly: retry (after a backoff) while retries are left, else FAILED."""
    line = f"{reason} (Attempt {task.attempts}): {error}"
    if retryable and task.retries < task.max_retries:
        retry = task.retries + 1
        delay = policy.delay(retry) if backoff else 0.0
        details = f"{line}; retry {retry} of {task.max_retries} in {delay:.1f}s"
        return Transition(
            task.id, execution_id, Status.RETRYING, retry, delay, details, outcome, error,
            lost_leases=task.lost_leases, traceback=traceback,
        )  # fmt: skip
    why = "not retryable" if not retryable else f"no retries left ({task.max_retries} used)"
    return Transition(
        task.id, execution_id, Status.FAILED, task.retries, 0.0, f"{line}; {why}", outcome, error,
        lost_leases=task.lost_leases, traceback=traceback,
    )  # fmt: skip


def lease_expired(task: Task, execution_id: int, policy: RetryPolicy) -> Transition:
    """The worker holding the task stopped heartbeating (crashed, killed, hung).

    The task did nothing wrong: it goes back at once and keeps its retries. A task that has lost
    `policy.max_lost_leases` leases (it may be what kills its workers) fails instead.
    """
    owner = task.lease_owner or "unknown worker"
    lost = task.lost_leases + 1
    line = f"Lease expired (Attempt {task.attempts}): worker {owner} stopped responding"
    error = f"worker {owner} stopped responding"
    if lost >= policy.max_lost_leases:
        details = f"{line}; lost {lost} leases (MAX_LOST_LEASES={policy.max_lost_leases}): giving up"
        return Transition(
            task.id, execution_id, Status.FAILED, task.retries, 0.0, details, Outcome.LOST, error,
            lost_leases=lost,
        )  # fmt: skip
    details = (
        f"{line}; queued again without spending a retry ({lost} of {policy.max_lost_leases} lost leases)"
    )
    return Transition(
        task.id, execution_id, Status.RETRYING, task.retries, 0.0, details, Outcome.LOST, error,
        lost_leases=lost,
    )  # fmt: skip


def unstorable(transition: Transition, problem: str) -> Transition:
    """The outcome of an attempt that the database refused to store (a result it cannot hold, say):
    the attempt fails for that reason alone, without the outcome, instead of blocking every other one."""
    reason = f"the attempt's outcome could not be stored: {problem}"[:2000]
    return Transition(
        transition.task_id, transition.execution_id, Status.FAILED, transition.retries, 0.0,
        f"Task failed: {reason}", Outcome.FAILED, reason, lost_leases=transition.lost_leases,
    )  # fmt: skip


def put_back(task: Task, execution_id: int) -> Transition:
    """A stopping worker returns an unfinished task; the attempt does not count as a retry."""
    return Transition(
        task.id,
        execution_id,
        Status.QUEUED,
        task.retries,
        0.0,
        f"Worker stopped before the task finished; put back in the queue (Attempt {task.attempts})",
        Outcome.INTERRUPTED,
        "worker shut down",
        lost_leases=task.lost_leases,
    )


# The original's controller (seed; issue 19) reports its own attempts through UpdateTaskStatus:
# RUNNING "Running attempt N of 3", FAILED "Attempt N failed: <err>" after each failed attempt (then
# RUNNING again, or its final FAILED "All 3 attempts failed. Last error: <err>"), SUCCEEDED at the end.
_ORIGINAL_ATTEMPT_FAILED = re.compile(r"Attempt \d+ failed: ")


def original_attempt_failed(message: str) -> bool:
    """Whether a FAILED from the original's controller ends one of its attempts, not the task: it
    says "Attempt N failed: <err>" and always sends its final FAILED after (even after its last)."""
    return _ORIGINAL_ATTEMPT_FAILED.match(message) is not None


def original_attempt_ended(task: Task, execution_id: int, message: str, hold_seconds: float) -> Transition:
    """The original's controller failed one attempt and will try again (or say it gave up): the
    attempt closes as failed and the task waits RETRYING, due only after `hold_seconds` (its hold,
    which its agent's open stream extends: no one else claims it meanwhile). Its words are the line."""
    error = message.split(": ", 1)[1] if ": " in message else message
    return Transition(
        task.id, execution_id, Status.RETRYING, task.retries, hold_seconds, message, Outcome.FAILED, error,
        lost_leases=task.lost_leases,
    )  # fmt: skip


def cancelled_details(reason: str) -> str:
    return f"Task cancelled: {reason}" if reason else "Task cancelled"


def requeued_details(reason: str) -> str:
    return f"Task queued again: {reason}" if reason else "Task queued again"


# -- results too large to keep whole ---------------------------------------------------------------

CUT_RESULT_KEYS = frozenset({"truncated", "limit_bytes", "preview"})


def cut_result(text: str, limit_bytes: int, preview_chars: int) -> dict[str, Any]:
    """What is kept (or shown) of a result whose JSON is over `limit_bytes`: the start of its JSON
    `text`, marked as cut."""
    return {"truncated": True, "limit_bytes": limit_bytes, "preview": text[:preview_chars]}


def is_cut_result(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == CUT_RESULT_KEYS and value["truncated"] is True


# -- what a failed attempt keeps of its error ------------------------------------------------------

# The one-line error (`NoSuchCustomer: nobody`) is at most this long: with the history line's words
# around it, it stays within what an agent may report (api/validation.py's MESSAGE_MAX).
ERROR_MAX = 1000
# A traceback is at most this long: its last frames, the ones that matter, are kept (cut_traceback).
TRACEBACK_MAX = 8192


def cut_error(text: str) -> str:
    """`text`, its start kept when it is over ERROR_MAX characters."""
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


def cut_traceback(text: str, limit: int = TRACEBACK_MAX) -> str:
    """`text` when it is at most `limit` characters; else its last lines (the frames nearest the
    error, and the error itself) under a line saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = f"[... the first lines were cut: this traceback had {len(text)} characters ...]\n"
    tail = text[len(text) - (limit - len(marker)) :]
    start = tail.find("\n") + 1
    if 0 < start < len(tail):  # begin at a whole line
        tail = tail[start:]
    return marker + tail
