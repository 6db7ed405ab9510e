"""A task's fields and their limits, checked alike by the API and by `enqueue(conn, ...)`; a broken rule
names the field and the rule."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskservice.model import DEFAULT_QUEUE, LIMIT_KEY_MAX, QUEUE_NAME, QUEUE_RULE, NewTask, Status
from taskservice.plugins import simulated
from taskservice.plugins.containers import ContainerError
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
RFC3339_RULE = "must be a time with its offset, RFC 3339 (e.g. 2026-12-24T18:00:00Z)"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (e.g. U+0085, a line break)


@dataclass(frozen=True)
class PayloadLimits:
    """MAX_PAYLOAD_BYTES and MAX_PARAMETERS: how much one task may carry."""

    max_bytes: int = 65536
    max_parameters: int = 100


class BrokenRule(ValueError):
    """A value broke a rule; `field` is the path of the field (e.g. `tasks[2].name`). The API answers it
    `invalid_argument`; `enqueue(conn, ...)` raises it as the public `taskservice.InvalidArgument`."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field, self.rule = field, rule


def text(field: str, value: str, maximum: int, *, required: bool = False, single_line: bool = False) -> str:
    if required and not value.strip():
        raise BrokenRule(field, "is required and must not be blank")
    if len(value) > maximum:
        raise BrokenRule(field, f"must be at most {maximum} characters (got {len(value)})")
    if "\x00" in value:
        raise BrokenRule(field, "must not contain NUL characters")
    if single_line and _CONTROL.search(value):
        raise BrokenRule(field, "must not contain control characters (such as line breaks)")
    return value


def json_value(field: str, source: str, what: str) -> Any:
    """The JSON `source` parsed; BrokenRule when it is not JSON or a string in it holds NUL, which
    jsonb cannot hold (the text holds one only as the escape \\u0000: the walk is only done then)."""
    try:
        value = json.loads(source)
    except ValueError as error:
        raise BrokenRule(field, f"must be {what} ({error})") from None
    pending = [value] if "\\u0000" in source else []
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and "\x00" in item:
            rule = "must not contain NUL characters (\\u0000): PostgreSQL cannot hold them"
            raise BrokenRule(field, rule)
    return value


def number(field: str, value: float, low: float, high: float, *, low_open: bool = False) -> float:
    if math.isnan(value) or value > high or value < low or (low_open and value == low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise BrokenRule(field, f"must be {bound} and <= {high:g} (got {value:g})")
    return value


def task_id(value: int, field: str = "id") -> int:
    if value < 1:
        raise BrokenRule(field, f"must be >= 1 (got {value})")
    return value


def status(value: int, field: str = "status") -> Status:
    try:
        return Status(value)
    except ValueError:
        known = ", ".join(f"{s.name} ({s.value})" for s in Status)
        raise BrokenRule(field, f"unknown status {value}; known: {known}") from None


def queue_name(value: str, field: str = "queue") -> str:
    """A queue's name (a task's, a worker's, a pause's), as model.QUEUE_NAME allows."""
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        shown = repr(value[:101]) if isinstance(value, str) else type(value).__name__
        raise BrokenRule(field, f"must be {QUEUE_RULE} (got {shown})")
    return value


def message(value: str, field: str = "message") -> str:
    return text(field, value, MESSAGE_MAX)


def new_task(
    new: NewTask,
    task_types: TaskTypes,
    prefix: str = "",
    limits: PayloadLimits = PayloadLimits(),
    *,
    has_payload: bool = True,
) -> NewTask:
    """The task with its type's declared defaults filled in; BrokenRule names the first rule it breaks.

    `has_payload` False: the request carried no payload at all (a CreateTaskRequest can say so), which
    is refused after the name and type are checked. An unset max_retries or timeout_seconds (None) takes
    the type's declared one, else stays None (the server's MAX_RETRIES and TASK_TIME_OUT).
    """
    name = text(f"{prefix}name", new.name, NAME_MAX, required=True, single_line=True)
    kind = text(f"{prefix}type", new.type, NAME_MAX, required=True, single_line=True)
    if kind not in task_types:
        known = ", ".join(sorted(task_types)) or "none"
        raise BrokenRule(f"{prefix}type", f"unknown task type {kind!r}; registered types: {known}")
    if not has_payload:
        raise BrokenRule(f"{prefix}payload", "is required (send an empty parameters map for none)")
    parameters = dict(new.parameters)
    _payload(parameters, prefix, limits)
    declared = task_types[kind]
    if declared is not None:
        try:
            declared.check(parameters)
        except ParameterError as error:
            rule = error.rule
            if kind in simulated.ORIGINAL_TYPES and not declared.declares(error.name):
                rule = f"{rule}; {simulated.HINT}"  # e.g. the original's end2end: {"test": "test_1"}
            raise BrokenRule(f"{prefix}payload.parameters[{error.name!r}]", rule) from None
        try:  # a container task type's args and env must render with them (a no-op for other types)
            declared.container_for(parameters)
        except ContainerError as error:
            raise BrokenRule(f"{prefix}payload.parameters", f"its type's {error}") from None
    description = text(f"{prefix}description", new.description, DESCRIPTION_MAX)
    priority = int(number(f"{prefix}priority", new.priority, 0, PRIORITY_MAX))
    max_retries = None if declared is None else declared.max_retries
    if new.max_retries is not None:
        max_retries = int(number(f"{prefix}max_retries", new.max_retries, 0, MAX_RETRIES_MAX))
    timeout = None if declared is None else declared.timeout_seconds
    if new.timeout_seconds is not None:
        timeout = number(f"{prefix}timeout_seconds", new.timeout_seconds, 0, TIMEOUT_MAX, low_open=True)
    key = text(f"{prefix}idempotency_key", new.idempotency_key or "", IDEMPOTENCY_KEY_MAX, single_line=True)
    delay = number(f"{prefix}delay_seconds", new.delay_seconds, 0, DELAY_MAX)
    if new.run_at is not None:
        if delay:
            raise BrokenRule(f"{prefix}run_at", "give run_at or delay_seconds, not both")
        if new.run_at.tzinfo is None:
            raise BrokenRule(f"{prefix}run_at", RFC3339_RULE)
    declared_queue = None if declared is None else declared.queue
    queue = queue_name(new.queue or declared_queue or DEFAULT_QUEUE, f"{prefix}queue")
    limit_key = text(f"{prefix}limit_key", new.limit_key or "", LIMIT_KEY_MAX, single_line=True)
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
        queue=queue,
        limit_key=limit_key or None,
        run_at=new.run_at,
    )


def _payload(parameters: dict[str, str], prefix: str, limits: PayloadLimits) -> None:
    field = f"{prefix}payload.parameters"
    for key, value in parameters.items():
        # A caller of enqueue(conn, ...) may hand in anything; the wire only ever carries strings.
        if not isinstance(key, str) or not isinstance(value, str):
            got = type(value if isinstance(key, str) else key).__name__
            raise BrokenRule(f"{field}[{key!r}]", f"keys and values must be strings (got {got})")
    if len(parameters) > limits.max_parameters:
        got = f"got {len(parameters)}; MAX_PARAMETERS"
        raise BrokenRule(field, f"must hold at most {limits.max_parameters} parameters ({got})")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in parameters.items())
    if size > limits.max_bytes:
        raise BrokenRule(
            f"{prefix}payload",
            f"must be at most {limits.max_bytes} bytes of keys and values (got {size}; MAX_PAYLOAD_BYTES)",
        )
    for key, value in parameters.items():
        # fullmatch: with match, `$` also matches before a final line break ("key\n" passed).
        if not PARAMETER_KEY.fullmatch(key) or len(key) > PARAMETER_KEY_MAX:
            raise BrokenRule(
                f"{field}[{key!r}]",
                f"key must match ^[a-zA-Z0-9_-]+$ and be at most {PARAMETER_KEY_MAX} characters",
            )
        text(f"{field}[{key!r}]", value, PARAMETER_VALUE_MAX)
