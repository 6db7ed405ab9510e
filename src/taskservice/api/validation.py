"""The rules of the API's protobuf requests; a broken rule names the field and the rule. The rules of a
task's own fields, which `enqueue(conn, ...)` applies too, are in rules/tasks.py."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, NamedTuple

from taskservice import model, tracing
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import (
    CATCHUP_POLICIES,
    CONCURRENCY_MAX,
    OVERLAP_POLICIES,
    SCHEDULE_NAME_MAX,
    STEPS_MAX,
    TRACEBACK_MAX,
    WORKFLOW_STATUSES,
    IdSpan,
    NewTask,
    Rate,
    ScheduleSpec,
    SpawnedTask,
    Status,
    StepSpec,
    TaskSelection,
    Transition,
    WorkflowGraph,
)
from taskservice.plugins.declare import DeclarationError, TaskTypeSpec
from taskservice.rules import schedules, workflows
from taskservice.rules.tasks import (
    IDEMPOTENCY_KEY_MAX,
    MAX_RETRIES_MAX,
    MESSAGE_MAX,
    NAME_MAX,
    PARAMETER_KEY,
    PARAMETER_KEY_MAX,
    RFC3339_RULE,
    BrokenRule,
    PayloadLimits,
    TaskTypes,
    json_value,
    message,
    number,
    queue_name,
    status,
    task_id,
    text,
)
from taskservice.rules.tasks import new_task as checked_task

__all__ = ["BrokenRule", "PayloadLimits", "TaskTypes", "message", "status", "task_id"]

LIST_LIMIT_MAX = 100
LIST_LIMIT_DEFAULT = 30
WATCHED_TASKS_MAX = 1000
BULK_IDS_MAX = 10_000
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # the API's times: UTC, YYYY-MM-DDTHH:MM:SSZ


TIME_TEXT_MAX = 64  # characters of an RFC 3339 time


def rfc3339(field: str, value: str) -> datetime | None:
    """A time as RFC 3339 with its offset ("2026-12-24T18:00:00Z", "2026-12-24T19:00:00.5+01:00");
    empty: None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value) if len(value) <= TIME_TEXT_MAX else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise BrokenRule(field, f"{RFC3339_RULE} (got {shown!r})")
    return parsed


def requested_task(request: pb.CreateTaskRequest, prefix: str = "") -> NewTask:
    """The task a CreateTaskRequest asks for, not yet checked (the rules check it: rules/tasks.py)."""
    return NewTask(
        name=request.name,
        type=request.type,
        parameters=dict(request.payload.parameters),
        description=request.description,
        priority=request.priority,
        max_retries=request.max_retries if request.HasField("max_retries") else None,
        timeout_seconds=request.timeout_seconds if request.HasField("timeout_seconds") else None,
        idempotency_key=request.idempotency_key,
        delay_seconds=request.delay_seconds,
        queue=request.queue or None,
        limit_key=request.limit_key or None,
        run_at=rfc3339(f"{prefix}run_at", request.run_at),
    )


def new_task(
    request: pb.CreateTaskRequest,
    task_types: TaskTypes,
    prefix: str = "",
    limits: PayloadLimits = PayloadLimits(),  # noqa: B008
) -> NewTask:
    """A valid CreateTaskRequest as a NewTask; BrokenRule names the first rule it breaks."""
    new = requested_task(request, prefix)
    return checked_task(new, task_types, prefix, limits, has_payload=request.HasField("payload"))


def new_tasks(
    request: pb.CreateTasksRequest,
    task_types: TaskTypes,
    limits: PayloadLimits = PayloadLimits(),  # noqa: B008
) -> list[NewTask]:
    count = len(request.tasks)
    if not 1 <= count <= model.BATCH_MAX:
        raise BrokenRule("tasks", f"must hold 1 to {model.BATCH_MAX} tasks (got {count})")
    return [new_task(t, task_types, f"tasks[{i}].", limits) for i, t in enumerate(request.tasks)]


def watched_tasks(task_ids: Collection[int]) -> frozenset[int]:
    """The tasks a WatchEvents request wants the events of (empty: every task)."""
    if len(task_ids) > WATCHED_TASKS_MAX:
        raise BrokenRule("task_ids", f"must hold at most {WATCHED_TASKS_MAX} ids (got {len(task_ids)})")
    for index, value in enumerate(task_ids):
        task_id(value, f"task_ids[{index}]")
    return frozenset(task_ids)


def list_order(request: pb.TaskListRequest) -> str:
    """The order of a valid ListTasks request, one of model.LIST_ORDERS (empty: "created_desc")."""
    if request.order_by not in model.LIST_ORDERS:
        if not request.order_by:
            return "created_desc"
        shown = request.order_by if len(request.order_by) <= 40 else request.order_by[:40] + "…"
        columns = ", ".join(model.LIST_COLUMNS)
        raise BrokenRule(
            "order_by", f"must be a column ({columns}) and _asc or _desc, or empty (got {shown!r})"
        )
    return request.order_by


def sortable(order_by: str, matching: int) -> None:
    """Refuses to sort by anything but creation when more than model.SORTED_MAX tasks match."""
    if order_by.startswith("created_") or matching <= model.SORTED_MAX:
        return
    column = order_by.rsplit("_", 1)[0]
    raise BrokenRule(
        "order_by",
        f"sorting by {column} takes at most {model.SORTED_MAX:,} matching tasks ({matching:,} match): "
        "filter by status, type or name first, or sort by created",
    )


def list_request(request: pb.TaskListRequest) -> tuple[Status | None, str | None, str | None, int, int]:
    """(status, type, name_contains, limit, offset) of a valid ListTasks request."""
    if request.limit < 0 or request.limit > LIST_LIMIT_MAX:
        raise BrokenRule(
            "limit", f"must be 1 to {LIST_LIMIT_MAX}, or 0 for {LIST_LIMIT_DEFAULT} (got {request.limit})"
        )
    if request.offset < 0:
        raise BrokenRule("offset", f"must be >= 0 (got {request.offset})")
    wanted = status(request.status) if request.HasField("status") else None
    kind = text("type", request.type, NAME_MAX, single_line=True) if request.HasField("type") else None
    name = text("name_contains", request.name_contains, NAME_MAX, single_line=True)
    return wanted, kind or None, name or None, request.limit or LIST_LIMIT_DEFAULT, request.offset


# -- bulk actions (issue 21) -----------------------------------------------------------------------

BulkRequest = pb.CancelTasksRequest | pb.RetryTasksRequest | pb.DeleteTasksRequest
NO_STATUS = frozenset({Status.ALL, Status.UNKNOWN})  # filter values of ListTasks, no task's status


def time(field: str, value: str) -> datetime | None:
    """One of the API's times (UTC, YYYY-MM-DDTHH:MM:SSZ); empty: none."""
    if not value:
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise BrokenRule(field, f"must be a UTC time YYYY-MM-DDTHH:MM:SSZ (got {shown!r})") from None


RESUME_TOKEN = re.compile(r"^(\d{1,19})-(\d{1,19})$")


def resume_span(token: str) -> IdSpan | None:
    """The span of ids a resume_token (IdSpan.token) leaves to look at; empty: None (from the start)."""
    if not token:
        return None
    found = RESUME_TOKEN.fullmatch(token)
    if found is None or int(found[1]) >= int(found[2]):
        raise BrokenRule("resume_token", "is not a token this server gave: send the previous answer's token")
    return IdSpan(int(found[1]), int(found[2]))


def selection(request: BulkRequest) -> TaskSelection:
    """The tasks a CancelTasks, RetryTasks or DeleteTasks request names: by ids, or by a filter that
    sets a condition or says `all` (an empty filter would act on every task: a mistake, unless said)."""
    if request.ids:
        if request.HasField("filter"):
            raise BrokenRule("ids", "give ids or a filter, not both")
        if len(request.ids) > BULK_IDS_MAX:
            rule = f"must hold at most {BULK_IDS_MAX} ids (got {len(request.ids)}); select more with a filter"
            raise BrokenRule("ids", rule)
        return TaskSelection(ids=tuple(sorted({task_id(v, f"ids[{i}]") for i, v in enumerate(request.ids)})))
    f = request.filter
    statuses = []
    for index, value in enumerate(f.statuses):
        wanted = status(value, f"filter.statuses[{index}]")
        if wanted in NO_STATUS:
            rule = f"{wanted.name} is no task's status; leave statuses empty for any status"
            raise BrokenRule(f"filter.statuses[{index}]", rule)
        statuses.append(wanted)
    kind = text("filter.type", f.type, NAME_MAX, single_line=True) if f.HasField("type") else ""
    name = text("filter.name_contains", f.name_contains, NAME_MAX, single_line=True)
    after = time("filter.created_after", f.created_after)
    before = time("filter.created_before", f.created_before)
    if after is not None and before is not None and before <= after:
        raise BrokenRule("filter.created_before", f"must be after created_after ({f.created_after})")
    queue = queue_name(f.queue, "filter.queue") if f.HasField("queue") else None
    selected = TaskSelection(
        statuses=frozenset(statuses), type=kind or None, name_contains=name or None,
        created_after=after, created_before=before, queue=queue,
    )  # fmt: skip
    if selected == TaskSelection() and not f.all:
        raise BrokenRule(
            "filter",
            "names no task: give ids, or a filter with a condition (statuses, type, queue, "
            "name_contains, created_after, created_before), or set all to act on every task",
        )
    return selected


# -- agents --------------------------------------------------------------------------------------------

AGENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")
TASK_TYPES_MAX = 100
QUEUES_MAX = 100
# What an agent may say about an attempt it ran (the statuses a worker moves a task to).
REPORTED_STATUSES = frozenset(
    {Status.SUCCEEDED, Status.RETRYING, Status.FAILED, Status.QUEUED, Status.CANCELLED, Status.WAITING}
)
# "lost": the agent found its lease ran out (it was paused) and gave the attempt up, as a reaper would.
REPORTED_OUTCOMES = frozenset({"succeeded", "failed", "timed_out", "interrupted", "cancelled", "lost"})
RETRY_DELAY_MAX = 86_400.0
LOST_LEASES_MAX = 1000


def agent_id(value: str, field: str = "agent_id") -> str:
    if not AGENT_ID.fullmatch(value):
        raise BrokenRule(field, "must be 1 to 255 characters of A-Z a-z 0-9 . _ : -")
    return value


def assignment_ids(values: Collection[int], field: str = "held") -> list[int]:
    if len(values) > model.AGENT_HELD_MAX:  # running and waiting
        raise BrokenRule(field, f"must hold at most {model.AGENT_HELD_MAX} assignments (got {len(values)})")
    for i, value in enumerate(values):
        if value < 1:
            raise BrokenRule(f"{field}[{i}]", f"must be >= 1 (got {value})")
    return list(values)


ORIGINAL_AGENT_TYPES = ("run_query", "send_email")


def queue_names(values: Collection[str], field: str = "queues") -> tuple[str, ...]:
    """The queues a worker or agent serves (empty: every queue), sorted and distinct."""
    if len(values) > QUEUES_MAX:
        raise BrokenRule(field, f"must hold at most {QUEUES_MAX} queues (got {len(values)})")
    return tuple(sorted({queue_name(q, f"{field}[{i}]") for i, q in enumerate(values)}))


class PullRequest(NamedTuple):
    agent_id: str  # "" for an original-style agent
    slots: int
    prefetch: int
    task_types: tuple[str, ...]
    host: str
    held: list[int]
    queues: tuple[str, ...]


def pull_request(request: pb.PullEventsRequest) -> PullRequest:
    agent = agent_id(request.agent_id) if request.agent_id else ""
    slots = int(number("slots", request.slots, 0, model.AGENT_SLOTS_MAX)) or 1
    if len(request.task_types) > TASK_TYPES_MAX:
        raise BrokenRule("task_types", f"must hold at most {TASK_TYPES_MAX} types")
    wanted = enumerate(request.task_types)
    named = (text(f"task_types[{i}]", t, NAME_MAX, single_line=True) for i, t in wanted)
    types = tuple(sorted(set(named)))
    if not agent:
        # The original's agent names neither itself nor its types, and runs exactly these.
        types = types or ORIGINAL_AGENT_TYPES
    elif not types:
        raise BrokenRule("task_types", "must name the task types this agent runs (at least one)")
    host = text("host", request.host, NAME_MAX, single_line=True)
    prefetch = int(number("prefetch", request.prefetch, 0, model.AGENT_PREFETCH_MAX)) if agent else 0
    held, queues = assignment_ids(request.held), queue_names(request.queues)
    return PullRequest(agent, slots, prefetch, types, host, held, queues)


def release(value: str, field: str = "version") -> str | None:
    """The release an agent says it runs: at most 100 characters, one line; empty: None."""
    return text(field, value, 100, single_line=True) or None


DECLARATIONS_MAX_BYTES = 256 * 1024


def declarations(source: str, field: str = "declarations_json") -> dict[str, dict[str, Any]]:
    """What an agent declares of the task types it runs (type name -> declaration, as workers publish
    them), each checked as the declaration a worker would have made."""
    if not source:
        return {}
    if len(source.encode()) > DECLARATIONS_MAX_BYTES:
        raise BrokenRule(field, f"must be at most {DECLARATIONS_MAX_BYTES} bytes")
    parsed = json_value(field, source, "a JSON object")
    if not isinstance(parsed, dict) or len(parsed) > TASK_TYPES_MAX:
        raise BrokenRule(field, f"must be a JSON object of at most {TASK_TYPES_MAX} task types")
    checked = {}
    for name, declaration in parsed.items():
        text(f"{field}[{name!r}]", name, NAME_MAX, required=True, single_line=True)
        if not isinstance(declaration, dict):
            raise BrokenRule(f"{field}[{name!r}]", "is not a task type declaration (a JSON object)")
        try:
            spec = TaskTypeSpec.checked(declaration, published=True)
        except DeclarationError as error:
            raise BrokenRule(f"{field}[{name!r}].{error.field}", error.rule) from None
        checked[name] = spec.to_json()
    return checked


def outcomes(
    request: pb.ReportOutcomesRequest,
    max_result_bytes: int,
    task_types: TaskTypes,
    limits: PayloadLimits = PayloadLimits(),  # noqa: B008
) -> list[Transition]:
    """The reported ends of attempts as transitions (the store fences each by its assignment id);
    the children they spawned checked as CreateTask checks a task (`task_types`: theirs)."""
    count = len(request.outcomes)
    if not 1 <= count <= model.BATCH_MAX:
        raise BrokenRule("outcomes", f"must hold 1 to {model.BATCH_MAX} outcomes (got {count})")
    transitions = []
    for i, o in enumerate(request.outcomes):
        try:
            transitions.append(_outcome(o, max_result_bytes, task_types, limits))
        except BrokenRule as broken:  # (the path is made only then: this runs for every outcome)
            raise BrokenRule(f"outcomes[{i}].{broken.field}", broken.rule) from None
    return transitions


def spawned_types(request: pb.ReportOutcomesRequest) -> set[str]:
    """The task types of the children the outcomes carry."""
    return {child.task.type for o in request.outcomes for child in o.spawned}


def _spawned(
    o: pb.AttemptOutcome, status: Status, task_types: TaskTypes, limits: PayloadLimits
) -> tuple[SpawnedTask, ...]:
    if not o.spawned:
        return ()
    if status not in (Status.SUCCEEDED, Status.WAITING):
        raise BrokenRule("spawned", f"only a SUCCEEDED or WAITING outcome spawns (got {status.name})")
    return spawned_children(o.spawned, task_types, "spawned", limits)


def spawned_children(
    spawned: Collection[pb.SpawnedTask], task_types: TaskTypes, field: str, limits: PayloadLimits
) -> tuple[SpawnedTask, ...]:
    """Children an attempt spawned, each checked as CreateTask checks a task."""
    if len(spawned) > STEPS_MAX:
        raise BrokenRule(field, f"must hold at most {STEPS_MAX} children (got {len(spawned)})")
    children: list[SpawnedTask] = []
    names: set[str] = set()
    for child in spawned:
        name = workflows.check_step_name(child.name, f"{field}[{len(children)}].name")
        if name in names:
            raise BrokenRule(f"{field}[{name!r}].name", "names two children; each child's name is its own")
        names.add(name)
        if child.task.idempotency_key or child.task.delay_seconds or child.task.run_at:
            raise BrokenRule(
                f"{field}[{name!r}].task", "a child has no idempotency_key, delay_seconds or run_at"
            )
        task = child.task
        if not task.name:
            task = pb.CreateTaskRequest()
            task.CopyFrom(child.task)
            task.name = name
        children.append(SpawnedTask(name, new_task(task, task_types, f"{field}[{name!r}].task.", limits)))
    return tuple(children)


def _outcome(
    o: pb.AttemptOutcome, max_result_bytes: int, task_types: TaskTypes, limits: PayloadLimits
) -> Transition:
    """One reported outcome; a BrokenRule names the field within it."""
    reported = status(o.status, "status")
    if reported not in REPORTED_STATUSES:
        allowed = ", ".join(s.name for s in sorted(REPORTED_STATUSES))
        raise BrokenRule("status", f"must be one of {allowed} (got {reported.name})")
    if o.outcome not in REPORTED_OUTCOMES:
        raise BrokenRule("outcome", f"must be one of {', '.join(sorted(REPORTED_OUTCOMES))}")
    result = None
    if o.result_json:
        size = len(o.result_json.encode())
        if size > max_result_bytes:
            rule = f"must be at most {max_result_bytes} bytes (got {size}; MAX_RESULT_BYTES)"
            raise BrokenRule("result_json", rule)
        result = json_value("result_json", o.result_json, "JSON")
    return Transition(
        task_id=task_id(o.task_id, "task_id"),
        execution_id=task_id(o.assignment_id, "assignment_id"),
        status=reported,
        retries=int(number("retries", o.retries, 0, MAX_RETRIES_MAX)),
        delay_seconds=number("delay_seconds", o.delay_seconds, 0, RETRY_DELAY_MAX),
        details=text("details", o.details, MESSAGE_MAX, required=True),
        outcome=o.outcome,
        error=text("error", o.error, MESSAGE_MAX) or None,
        result=result,
        lost_leases=int(number("lost_leases", o.lost_leases, 0, LOST_LEASES_MAX)),
        traceback=text("traceback", o.traceback, TRACEBACK_MAX) or None,
        spawned=_spawned(o, reported, task_types, limits),
        trace_parent=tracing.valid(o.trace_parent),  # a malformed one is dropped, not refused
    )


# -- queues and pauses ----------------------------------------------------------------------------------


def queue_or_type(queue: str, task_type: str) -> tuple[str, str]:
    """("queue", name) or ("type", name): what a PauseQueue, ResumeQueue, SetLimit or ResetLimit
    request names."""
    if bool(queue) == bool(task_type):
        raise BrokenRule("queue", "name a queue or a task type (`type`), exactly one of them")
    if queue:
        return "queue", queue_name(queue)
    return "type", text("type", task_type, NAME_MAX, required=True, single_line=True)


# -- limits ------------------------------------------------------------------------------------------

RATE_LIMIT_MAX = 100  # characters of a rate's text


def limit_changes(request: pb.SetLimitRequest) -> dict[str, Any]:
    """What a SetLimit request changes, as store.Limit's fields (None: no such limit); a field it
    leaves out is kept as it is, so it must set one at least."""
    changes: dict[str, Any] = {}
    if request.HasField("concurrency"):
        if not 0 <= request.concurrency <= CONCURRENCY_MAX:
            rule = f"must be 1 to {CONCURRENCY_MAX}, or 0 for none (got {request.concurrency})"
            raise BrokenRule("concurrency", rule)
        changes["concurrency"] = request.concurrency or None
    if request.HasField("rate_limit"):
        rate = text("rate_limit", request.rate_limit, RATE_LIMIT_MAX, single_line=True)
        try:
            changes["rate"] = Rate.parse(rate) if rate else None
        except ValueError as error:
            raise BrokenRule("rate_limit", str(error)) from None
    if request.HasField("key"):
        key = request.key
        if key and (not PARAMETER_KEY.fullmatch(key) or len(key) > PARAMETER_KEY_MAX):
            shown = key if len(key) <= 40 else key[:40] + "…"
            rule = (
                f"must be a parameter's name, 1 to {PARAMETER_KEY_MAX} characters of a-z A-Z 0-9 _ -, "
                f"or empty for none (got {shown!r})"
            )
            raise BrokenRule("key", rule)
        changes["key"] = key or None
    if not changes:
        raise BrokenRule("concurrency", "give concurrency, rate_limit or key: at least one to change")
    return changes


# -- schedules (issue 22) --------------------------------------------------------------------------------

SCHEDULES_LIST_MAX = 1000


def schedule_name(value: str, field: str = "name") -> str:
    return text(field, value, SCHEDULE_NAME_MAX, required=True, single_line=True)


def schedule_spec(request: pb.CreateScheduleRequest) -> ScheduleSpec:
    """The schedule a CreateSchedule request asks for, its interval and end read (the rules check the
    rest: rules/schedules.py). A task without a payload has no parameters."""
    return ScheduleSpec(
        name=request.name,
        task=requested_task(request.task, "task."),
        cron=request.cron or None,
        timezone=request.timezone or "UTC",
        every_seconds=schedules.every(request.every) if request.every else None,
        overlap=request.overlap or OVERLAP_POLICIES[0],
        catchup=request.catchup or CATCHUP_POLICIES[0],
        paused=request.paused,
        ends_at=rfc3339("ends_at", request.ends_at),
    )


def schedule_changes(request: pb.UpdateScheduleRequest) -> dict[str, Any]:
    """What an UpdateSchedule request changes, as ScheduleSpec's fields; a field it leaves out is
    kept, so it must set one at least. A cron expression replaces an interval and the other way round."""
    changes: dict[str, Any] = {}
    if request.HasField("cron") and request.HasField("every"):
        raise BrokenRule("cron", "give a cron expression or an interval (every), one of them")
    if request.HasField("cron"):
        changes.update(cron=request.cron, every_seconds=None)
    if request.HasField("every"):
        changes.update(cron=None, every_seconds=schedules.every(request.every))
    if request.HasField("timezone"):
        changes["timezone"] = request.timezone or "UTC"
    if request.HasField("task"):
        changes["task"] = requested_task(request.task, "task.")
    if request.HasField("overlap"):
        changes["overlap"] = request.overlap or OVERLAP_POLICIES[0]
    if request.HasField("catchup"):
        changes["catchup"] = request.catchup or CATCHUP_POLICIES[0]
    if request.HasField("paused"):
        changes["paused"] = request.paused
    if request.HasField("ends_at"):
        changes["ends_at"] = rfc3339("ends_at", request.ends_at)
    if not changes:
        rule = "give cron, every, timezone, task, overlap, catchup, paused or ends_at: at least one to change"
        raise BrokenRule("cron", rule)
    return changes


def schedule_ref(request: pb.GetScheduleRequest) -> tuple[str | None, int | None]:
    """(name, None) or (None, id) of the schedule a GetSchedule request names."""
    if bool(request.name) == bool(request.id64):
        raise BrokenRule("name", "name a schedule by its name or its id (id64), exactly one of them")
    if request.name:
        return schedule_name(request.name), None
    return None, task_id(request.id64, "id64")


def schedules_page(request: pb.ListSchedulesRequest) -> tuple[int, int]:
    """(limit, offset) of a ListSchedules request."""
    limit = int(number("limit", request.limit, 0, SCHEDULES_LIST_MAX))
    offset = int(number("offset", request.offset, 0, 2**31 - 1))
    return limit or SCHEDULES_LIST_MAX, offset


# -- workflows (issue 23) ------------------------------------------------------------------------------

WORKFLOWS_LIST_MAX = 1000
WORKFLOWS_LIST_DEFAULT = 100


def workflow(
    request: pb.CreateWorkflowRequest,
    task_types: TaskTypes,
    limits: PayloadLimits = PayloadLimits(),  # noqa: B008
) -> tuple[str, WorkflowGraph, str | None]:
    """(name, its steps checked and in order, idempotency key) of a CreateWorkflow request; BrokenRule
    naming the step and the rule it breaks."""
    name = text("name", request.name, NAME_MAX, required=True, single_line=True)
    key = text("idempotency_key", request.idempotency_key, IDEMPOTENCY_KEY_MAX, single_line=True) or None
    count = len(request.steps)
    if not 1 <= count <= STEPS_MAX:
        raise BrokenRule("steps", f"must hold 1 to {STEPS_MAX} steps (got {count})")
    steps: list[StepSpec] = []
    for index, step in enumerate(request.steps):
        step_name = workflows.check_step_name(step.name, f"steps[{index}].name")
        field = workflows.step_field(step_name)
        if not step.HasField("task"):
            raise BrokenRule(f"{field}.task", "is required: the step's type, payload and options")
        if step.task.idempotency_key:
            raise BrokenRule(f"{field}.task.idempotency_key", "a step has none: give the workflow one")
        task = step.task
        if not task.name:
            task = pb.CreateTaskRequest()
            task.CopyFrom(step.task)
            task.name = step_name
        checked = new_task(task, task_types, f"{field}.task.", limits)
        steps.append(StepSpec(step_name, checked, tuple(step.depends_on)))
    return name, workflows.checked_graph(steps), key


def workflow_types(request: pb.CreateWorkflowRequest) -> set[str]:
    return {step.task.type for step in request.steps}


def workflows_page(request: pb.ListWorkflowsRequest) -> tuple[Status | None, int, int]:
    """(status or None for any, limit, offset) of a ListWorkflows request."""
    wanted = None
    if request.HasField("status") and request.status != int(Status.ALL):
        wanted = status(request.status)
        if wanted not in WORKFLOW_STATUSES:
            allowed = ", ".join(s.name for s in WORKFLOW_STATUSES)
            raise BrokenRule("status", f"a workflow is {allowed} (got {wanted.name})")
    limit = int(number("limit", request.limit, 0, WORKFLOWS_LIST_MAX))
    offset = int(number("offset", request.offset, 0, 2**31 - 1))
    return wanted, limit or WORKFLOWS_LIST_DEFAULT, offset


# -- the operator's dashboard (issue 24) -----------------------------------------------------------

STATS_RANGE_MIN, STATS_RANGE_MAX = 60, 7 * 24 * 3600
STATS_BUCKETS_MAX = 1000
WORKER_ID_MAX = 255


def stats_request(request: pb.GetTypeStatsRequest) -> tuple[int, int]:
    """(range_seconds, buckets) of a valid GetTypeStats request."""
    if not STATS_RANGE_MIN <= request.range_seconds <= STATS_RANGE_MAX:
        raise BrokenRule(
            "range_seconds",
            f"must be {STATS_RANGE_MIN} to {STATS_RANGE_MAX} (7 days) (got {request.range_seconds})",
        )
    if not 0 <= request.buckets <= STATS_BUCKETS_MAX:
        raise BrokenRule("buckets", f"must be 1 to {STATS_BUCKETS_MAX}, or 0 for one (got {request.buckets})")
    return request.range_seconds, request.buckets or 1


def worker_id(request: pb.GetWorkerRequest) -> str:
    """The worker a valid GetWorker request names."""
    if not request.id:
        raise BrokenRule("id", "is required: the worker's id, as ListWorkers gives it")
    return text("id", request.id, WORKER_ID_MAX, single_line=True)
