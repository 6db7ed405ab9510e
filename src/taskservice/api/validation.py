"""Every rule a request must meet, in one place; a broken rule names the field and the rule."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import TRACEBACK_MAX, NewTask, Status, Transition
from taskservice.plugins import simulated
from taskservice.plugins.declare import ParameterError, TaskTypeSpec

# Task type name -> its declaration (None: it declares nothing, and any parameters are accepted).
TaskTypes = Mapping[str, TaskTypeSpec | None]

NAME_MAX = 255
DESCRIPTION_MAX = 5000
PARAMETER_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
PARAMETER_KEY_MAX = 255
PARAMETER_VALUE_MAX = 1024
MESSAGE_MAX = 2000
PRIORITY_MAX = 1000
MAX_RETRIES_MAX = 10
TIMEOUT_MAX = 86_400.0
DELAY_MAX = 31_536_000.0
IDEMPOTENCY_KEY_MAX = 255
LIST_LIMIT_MAX = 100
LIST_LIMIT_DEFAULT = 30
BATCH_MAX = 1000
WATCHED_TASKS_MAX = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (e.g. U+0085, a line break)


@dataclass(frozen=True)
class PayloadLimits:
    """MAX_PAYLOAD_BYTES and MAX_PARAMETERS: how much one task may carry."""

    max_bytes: int = 65536
    max_parameters: int = 100


class InvalidArgument(ValueError):
    """A request broke a rule; `field` is the path of the field (e.g. `tasks[2].name`)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field, self.rule = field, rule


def _text(field: str, value: str, maximum: int, *, required: bool = False, single_line: bool = False) -> str:
    if required and not value.strip():
        raise InvalidArgument(field, "is required and must not be blank")
    if len(value) > maximum:
        raise InvalidArgument(field, f"must be at most {maximum} characters (got {len(value)})")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")
    if single_line and _CONTROL.search(value):
        raise InvalidArgument(field, "must not contain control characters (such as line breaks)")
    return value


def _json(field: str, text: str, what: str) -> Any:
    """The JSON `text` parsed; InvalidArgument when it is not JSON or a string in it holds NUL, which
    jsonb cannot hold (the text holds one only as the escape \\u0000: the walk is only done then)."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidArgument(field, f"must be {what} ({error})") from None
    pending = [value] if "\\u0000" in text else []
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and "\x00" in item:
            rule = "must not contain NUL characters (\\u0000): PostgreSQL cannot hold them"
            raise InvalidArgument(field, rule)
    return value


def _number(field: str, value: float, low: float, high: float, *, low_open: bool = False) -> float:
    if math.isnan(value) or value > high or value < low or (low_open and value == low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise InvalidArgument(field, f"must be {bound} and <= {high:g} (got {value:g})")
    return value


def task_id(value: int, field: str = "id") -> int:
    if value < 1:
        raise InvalidArgument(field, f"must be >= 1 (got {value})")
    return value


def new_task(
    request: pb.CreateTaskRequest,
    task_types: TaskTypes,
    prefix: str = "",
    limits: PayloadLimits = PayloadLimits(),
) -> NewTask:
    """A valid CreateTaskRequest as a NewTask, or InvalidArgument for the first broken rule."""
    name = _text(f"{prefix}name", request.name, NAME_MAX, required=True, single_line=True)
    kind = _text(f"{prefix}type", request.type, NAME_MAX, required=True, single_line=True)
    if kind not in task_types:
        known = ", ".join(sorted(task_types)) or "none"
        raise InvalidArgument(f"{prefix}type", f"unknown task type {kind!r}; registered types: {known}")
    if not request.HasField("payload"):
        raise InvalidArgument(f"{prefix}payload", "is required (send an empty parameters map for none)")
    parameters = dict(request.payload.parameters)
    if len(parameters) > limits.max_parameters:
        raise InvalidArgument(
            f"{prefix}payload.parameters",
            f"must hold at most {limits.max_parameters} parameters (got {len(parameters)}; MAX_PARAMETERS)",
        )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in parameters.items())
    if size > limits.max_bytes:
        raise InvalidArgument(
            f"{prefix}payload",
            f"must be at most {limits.max_bytes} bytes of keys and values (got {size}; MAX_PAYLOAD_BYTES)",
        )
    for key, value in parameters.items():
        field = f"{prefix}payload.parameters[{key!r}]"
        # fullmatch: with match, `$` also matches before a final line break ("key\n" passed).
        if not PARAMETER_KEY.fullmatch(key) or len(key) > PARAMETER_KEY_MAX:
            raise InvalidArgument(
                field, f"key must match ^[a-zA-Z0-9_-]+$ and be at most {PARAMETER_KEY_MAX} characters"
            )
        _text(field, value, PARAMETER_VALUE_MAX)
    declared = task_types[kind]
    if declared is not None:
        try:
            declared.check(parameters)
        except ParameterError as error:
            rule = error.rule
            if kind in simulated.ORIGINAL_TYPES and not declared.declares(error.name):
                rule = f"{rule}; {simulated.HINT}"  # e.g. the original's end2end: {"test": "test_1"}
            raise InvalidArgument(f"{prefix}payload.parameters[{error.name!r}]", rule) from None
    description = _text(f"{prefix}description", request.description, DESCRIPTION_MAX)
    priority = int(_number(f"{prefix}priority", request.priority, 0, PRIORITY_MAX))
    # Unset: the type's declared defaults, else (None) the server's MAX_RETRIES and TASK_TIME_OUT.
    max_retries = None if declared is None else declared.max_retries
    if request.HasField("max_retries"):
        max_retries = int(_number(f"{prefix}max_retries", request.max_retries, 0, MAX_RETRIES_MAX))
    timeout = None if declared is None else declared.timeout_seconds
    if request.HasField("timeout_seconds"):
        timeout = _number(f"{prefix}timeout_seconds", request.timeout_seconds, 0, TIMEOUT_MAX, low_open=True)
    key = _text(f"{prefix}idempotency_key", request.idempotency_key, IDEMPOTENCY_KEY_MAX, single_line=True)
    delay = _number(f"{prefix}delay_seconds", request.delay_seconds, 0, DELAY_MAX)
    return NewTask(
        name=name,
        type=kind,
        parameters=parameters,
        description=description,
        priority=priority,
        max_retries=max_retries,
        timeout_seconds=timeout,
        idempotency_key=key or None,
        delay_seconds=delay,
    )


def new_tasks(
    request: pb.CreateTasksRequest,
    task_types: TaskTypes,
    limits: PayloadLimits = PayloadLimits(),
) -> list[NewTask]:
    count = len(request.tasks)
    if not 1 <= count <= BATCH_MAX:
        raise InvalidArgument("tasks", f"must hold 1 to {BATCH_MAX} tasks (got {count})")
    return [new_task(t, task_types, f"tasks[{i}].", limits) for i, t in enumerate(request.tasks)]


def watched_tasks(task_ids: Collection[int]) -> frozenset[int]:
    """The tasks a WatchEvents request wants the events of (empty: every task)."""
    if len(task_ids) > WATCHED_TASKS_MAX:
        raise InvalidArgument("task_ids", f"must hold at most {WATCHED_TASKS_MAX} ids (got {len(task_ids)})")
    for index, value in enumerate(task_ids):
        task_id(value, f"task_ids[{index}]")
    return frozenset(task_ids)


def status(value: int, field: str = "status") -> Status:
    try:
        return Status(value)
    except ValueError:
        known = ", ".join(f"{s.name} ({s.value})" for s in Status)
        raise InvalidArgument(field, f"unknown status {value}; known: {known}") from None


def message(value: str, field: str = "message") -> str:
    return _text(field, value, MESSAGE_MAX)


def list_request(request: pb.TaskListRequest) -> tuple[Status | None, str | None, str | None, int, int]:
    """(status, type, name_contains, limit, offset) of a valid ListTasks request."""
    if request.limit < 0 or request.limit > LIST_LIMIT_MAX:
        raise InvalidArgument(
            "limit", f"must be 1 to {LIST_LIMIT_MAX}, or 0 for {LIST_LIMIT_DEFAULT} (got {request.limit})"
        )
    if request.offset < 0:
        raise InvalidArgument("offset", f"must be >= 0 (got {request.offset})")
    wanted = status(request.status) if request.HasField("status") else None
    kind = _text("type", request.type, NAME_MAX, single_line=True) if request.HasField("type") else None
    name = _text("name_contains", request.name_contains, NAME_MAX, single_line=True)
    return wanted, kind or None, name or None, request.limit or LIST_LIMIT_DEFAULT, request.offset


# -- agents --------------------------------------------------------------------------------------------

AGENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")
SLOTS_MAX = 1000
TASK_TYPES_MAX = 100
HELD_MAX = 1000
# What an agent may say about an attempt it ran (the statuses a worker moves a task to).
REPORTED_STATUSES = frozenset(
    {Status.SUCCEEDED, Status.RETRYING, Status.FAILED, Status.QUEUED, Status.CANCELLED}
)
# "lost": the agent found its lease ran out (it was paused) and gave the attempt up, as a reaper would.
REPORTED_OUTCOMES = frozenset({"succeeded", "failed", "timed_out", "interrupted", "cancelled", "lost"})
RETRY_DELAY_MAX = 86_400.0
LOST_LEASES_MAX = 1000


def agent_id(value: str, field: str = "agent_id") -> str:
    if not AGENT_ID.fullmatch(value):
        raise InvalidArgument(field, "must be 1 to 255 characters of A-Z a-z 0-9 . _ : -")
    return value


def assignment_ids(values: Collection[int], field: str = "held") -> list[int]:
    if len(values) > HELD_MAX:
        raise InvalidArgument(field, f"must hold at most {HELD_MAX} assignments (got {len(values)})")
    for i, value in enumerate(values):
        if value < 1:
            raise InvalidArgument(f"{field}[{i}]", f"must be >= 1 (got {value})")
    return list(values)


ORIGINAL_AGENT_TYPES = ("run_query", "send_email")


def pull_request(request: pb.PullEventsRequest) -> tuple[str, int, tuple[str, ...], str, list[int]]:
    """(agent_id or "" for an original-style agent, slots, task_types, host, held)."""
    agent = agent_id(request.agent_id) if request.agent_id else ""
    slots = int(_number("slots", request.slots, 0, SLOTS_MAX)) or 1
    if len(request.task_types) > TASK_TYPES_MAX:
        raise InvalidArgument("task_types", f"must hold at most {TASK_TYPES_MAX} types")
    wanted = enumerate(request.task_types)
    named = (_text(f"task_types[{i}]", t, NAME_MAX, single_line=True) for i, t in wanted)
    types = tuple(sorted(set(named)))
    if not agent:
        # The original's agent names neither itself nor its types, and runs exactly these.
        types = types or ORIGINAL_AGENT_TYPES
    elif not types:
        raise InvalidArgument("task_types", "must name the task types this agent runs (at least one)")
    host = _text("host", request.host, NAME_MAX, single_line=True)
    return agent, slots, types, host, assignment_ids(request.held)


DECLARATIONS_MAX_BYTES = 256 * 1024


def declarations(text: str, field: str = "declarations_json") -> dict[str, dict[str, Any]]:
    """What an agent declares of the task types it runs (type name -> declaration, as workers publish
    them), each checked as the declaration a worker would have made."""
    if not text:
        return {}
    if len(text.encode()) > DECLARATIONS_MAX_BYTES:
        raise InvalidArgument(field, f"must be at most {DECLARATIONS_MAX_BYTES} bytes")
    parsed = _json(field, text, "a JSON object")
    if not isinstance(parsed, dict) or len(parsed) > TASK_TYPES_MAX:
        raise InvalidArgument(field, f"must be a JSON object of at most {TASK_TYPES_MAX} task types")
    checked = {}
    for name, declaration in parsed.items():
        _text(f"{field}[{name!r}]", name, NAME_MAX, required=True, single_line=True)
        spec = TaskTypeSpec.from_json(declaration)
        if spec is None:
            raise InvalidArgument(f"{field}[{name!r}]", "is not a task type declaration")
        checked[name] = spec.to_json()
    return checked


def outcomes(request: pb.ReportOutcomesRequest, max_result_bytes: int) -> list[Transition]:
    """The reported ends of attempts as transitions (the store fences each by its assignment id)."""
    count = len(request.outcomes)
    if not 1 <= count <= BATCH_MAX:
        raise InvalidArgument("outcomes", f"must hold 1 to {BATCH_MAX} outcomes (got {count})")
    return [_outcome(o, f"outcomes[{i}].", max_result_bytes) for i, o in enumerate(request.outcomes)]


def _outcome(o: pb.AttemptOutcome, prefix: str, max_result_bytes: int) -> Transition:
    reported = status(o.status, f"{prefix}status")
    if reported not in REPORTED_STATUSES:
        allowed = ", ".join(s.name for s in sorted(REPORTED_STATUSES))
        raise InvalidArgument(f"{prefix}status", f"must be one of {allowed} (got {reported.name})")
    if o.outcome not in REPORTED_OUTCOMES:
        raise InvalidArgument(f"{prefix}outcome", f"must be one of {', '.join(sorted(REPORTED_OUTCOMES))}")
    result = None
    if o.result_json:
        size = len(o.result_json.encode())
        if size > max_result_bytes:
            rule = f"must be at most {max_result_bytes} bytes (got {size}; MAX_RESULT_BYTES)"
            raise InvalidArgument(f"{prefix}result_json", rule)
        result = _json(f"{prefix}result_json", o.result_json, "JSON")
    return Transition(
        task_id=task_id(o.task_id, f"{prefix}task_id"),
        execution_id=task_id(o.assignment_id, f"{prefix}assignment_id"),
        status=reported,
        retries=int(_number(f"{prefix}retries", o.retries, 0, MAX_RETRIES_MAX)),
        delay_seconds=_number(f"{prefix}delay_seconds", o.delay_seconds, 0, RETRY_DELAY_MAX),
        details=_text(f"{prefix}details", o.details, MESSAGE_MAX, required=True),
        outcome=o.outcome,
        error=_text(f"{prefix}error", o.error, MESSAGE_MAX) or None,
        result=result,
        lost_leases=int(_number(f"{prefix}lost_leases", o.lost_leases, 0, LOST_LEASES_MAX)),
        traceback=_text(f"{prefix}traceback", o.traceback, TRACEBACK_MAX) or None,
    )
