"""`Workflow`: a named graph of steps built in code, or read from a mapping (a workflow file's `steps`).

    wf = Workflow("etl")
    a = wf.step(extract, url="https://example.com/data.csv")    # a declared type, its parameters typed
    b = wf.step(transform, after=a, rows=1000)
    c = wf.step("send_email", parameters={"recipient": "ops@example.com"}, after=[a, b])
    client.create_workflow(wf)

A step's `after` names steps made before it only, so a workflow built here has no cycle. The server
checks the rest (the types and their parameters, the options), as CreateTask does.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import count
from typing import TYPE_CHECKING, Any, ParamSpec, overload

from taskservice.client.messages import create_request
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import TaskOptions

if TYPE_CHECKING:
    from taskservice.client.typed import DeclaredTask

S = ParamSpec("S")

# A step's keys in a workflow file (and in `create_workflow(name, steps)`), besides none other.
STEP_KEYS = (
    "type", "parameters", "depends_on", "description", "priority", "max_retries", "timeout", "queue",
    "limit_key", "delay",
)  # fmt: skip
WORKFLOW_KEYS = ("name", "steps")
_WHOLE = re.compile(r"[-+]?[0-9]+")


@dataclass(frozen=True)
class StepRef:
    """A step of a `Workflow` being built: what a later step's `after` names (or its `.name`)."""

    name: str
    workflow: Workflow = field(repr=False, compare=False)


After = StepRef | str | Sequence[StepRef | str]


class Workflow:
    """A workflow to create (`client.create_workflow(wf)`): its name and its steps, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._steps: dict[str, pb.WorkflowStep] = {}

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, steps={list(self._steps)!r})"

    def __len__(self) -> int:
        return len(self._steps)

    @property
    def steps(self) -> tuple[StepRef, ...]:
        """Its steps so far, in the order they were made."""
        return tuple(StepRef(name, self) for name in self._steps)

    @overload
    def step(
        self, type: DeclaredTask[Any, Any, S], name: str | None = None, after: After = (),
        options: TaskOptions | None = None, *args: S.args, **kwargs: S.kwargs,
    ) -> StepRef: ...  # fmt: skip

    @overload
    def step(
        self, type: str, name: str | None = None, after: After = (), options: TaskOptions | None = None,
        *, parameters: Mapping[str, str] | None = None,
    ) -> StepRef: ...  # fmt: skip

    def step(
        self, type: Any, name: str | None = None, after: After = (), options: TaskOptions | None = None,
        *args: Any, **kwargs: Any,
    ) -> StepRef:  # fmt: skip
        """Add a step: a task of `type` that starts once every step of `after` succeeded.

        `type` is a declared type (`@task`) with its parameters by keyword, checked against its
        function as `extract.create(client, url=...)` checks them; or a type's name with
        `parameters=`. (A declared type whose function takes a parameter called name, after or
        options: give its name, `parameters=extract.sent(...)`.) `name` is the step's, unique in the
        workflow: by default the type's, with `-2`, `-3`... when taken. `after`: a step, or a list of
        steps (StepRefs or names) made before this one. `options`: its task's (TaskOptions: name,
        priority, queue, delay...; no idempotency key, the workflow's own covers its steps); a
        declared type's `with_options` by default.
        """
        if isinstance(type, str):
            unknown = set(kwargs) - {"parameters"}
            if args or unknown:
                given = ", ".join(sorted(unknown)) or "positional parameters"
                raise TypeError(f"step({type!r}, ...): a type's name takes its parameters as "
                                f"parameters={{...}} (got {given})")  # fmt: skip
            type_name, parameters = type, dict(kwargs.get("parameters") or {})
        elif hasattr(type, "sent"):
            type_name, parameters = type.name, type.sent(*args, **kwargs)
            options = options if options is not None else type.options
        else:
            raise TypeError(f"type: a task type declared by @task, or a type's name (got {type!r})")
        options = options or TaskOptions()
        if options.idempotency_key is not None:
            raise ValueError(
                "options.idempotency_key: a step has none; the workflow's covers its steps "
                "(create_workflow(..., idempotency_key=...))"
            )
        name = self._new_name(type_name) if name is None else name
        if name in self._steps:
            raise ValueError(f"name: the workflow has a step {name!r} already")
        task = create_request(replace(options.new_task(type_name, parameters), name=options.name or ""))
        self._steps[name] = pb.WorkflowStep(name=name, task=task, depends_on=self._names(after))
        return StepRef(name, self)

    def _new_name(self, type_name: str) -> str:
        """The type's name, or the first of `name-2`, `name-3`... not taken."""
        if type_name not in self._steps:
            return type_name
        return next(f"{type_name}-{n}" for n in count(2) if f"{type_name}-{n}" not in self._steps)

    def _names(self, after: After) -> list[str]:
        """The names of the steps of `after`, each once; a ValueError for one this workflow has not."""
        listed = [after] if isinstance(after, StepRef | str) else list(after)
        names: list[str] = []
        for step in listed:
            if isinstance(step, StepRef) and step.workflow is not self:
                raise ValueError(f"after: step {step.name!r} is a step of workflow {step.workflow.name!r}")
            name = step.name if isinstance(step, StepRef) else step
            if name not in self._steps:
                raise ValueError(f"after: no step {name!r} before this one (an earlier step's name)")
            if name not in names:
                names.append(name)
        return names

    def request(self, idempotency_key: str | None = None) -> pb.CreateWorkflowRequest:
        """The CreateWorkflowRequest creating it (the server checks the rest)."""
        return pb.CreateWorkflowRequest(
            name=self.name, steps=list(self._steps.values()), idempotency_key=idempotency_key or ""
        )

    @classmethod
    def from_steps(cls, name: str, steps: Mapping[str, Any]) -> Workflow:
        """A workflow from a mapping of each step's name to its `type`, `parameters` (values strings,
        or numbers and booleans, sent as their text), `depends_on` (step names, in any order), and its
        task's `description`, `priority`, `max_retries`, `timeout` and `delay` (seconds), `queue`,
        `limit_key`: what a workflow file's `steps` hold. A ValueError names the step and key at fault,
        or the cycle."""
        if not isinstance(steps, Mapping):
            raise ValueError(f"steps: must be a mapping of each step's name to the step (got {_kind(steps)})")
        specs = {_step_name(key): _step_spec(key, spec) for key, spec in steps.items()}
        workflow = cls(name)
        for step in _in_order(specs):
            depends_on, options, type_name, parameters = specs[step]
            workflow.step(type_name, step, depends_on, options, parameters=parameters)
        return workflow


def workflow_request(
    workflow_or_name: Workflow | str,
    steps: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> pb.CreateWorkflowRequest:
    """The request of `create_workflow`: a Workflow, or a name and its steps as `from_steps` takes them."""
    if isinstance(workflow_or_name, Workflow):
        if steps is not None:
            raise TypeError("give a Workflow, or a name and its steps, not both")
        return workflow_or_name.request(idempotency_key)
    if steps is None:
        raise TypeError(f"create_workflow({workflow_or_name!r}): give its steps too, or a Workflow")
    return Workflow.from_steps(workflow_or_name, steps).request(idempotency_key)


def read_workflow(data: Any) -> Workflow:
    """A workflow file's content once parsed (YAML or JSON): a mapping of `name` and `steps`."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a workflow file holds a mapping of name and steps (got {_kind(data)})")
    unknown = [key for key in data if key not in WORKFLOW_KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (a workflow has {', '.join(WORKFLOW_KEYS)})")
    for key in WORKFLOW_KEYS:
        if key not in data:
            raise ValueError(f"{key}: is required")
    return Workflow.from_steps(_text("name", data["name"]), data["steps"])


# -- a step from a mapping ------------------------------------------------------------------------

_Spec = tuple[list[str], TaskOptions, str, dict[str, str]]


def _kind(value: Any) -> str:
    """What a value is, in a message: "a list", "null", "the number 5"."""
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return f"the {'boolean' if isinstance(value, bool) else 'number'} {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return "a mapping" if isinstance(value, Mapping) else "a list" if isinstance(value, list) else "a value"


def _step_name(key: Any) -> str:
    if not isinstance(key, str):
        raise ValueError(f"steps: a step's name must be text (got {_kind(key)})")
    return key


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be text (got {_kind(value)})")
    return value


def _whole(where: str, value: Any) -> int:
    """A whole number, given as one or as its text ("5": what a YAML file's scalars are read as)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value)
    raise ValueError(f"{where}: must be a whole number (got {_kind(value)})")


def _seconds(where: str, value: Any) -> float:
    """A number of seconds, given as a number or its text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{where}: must be a number of seconds (got {_kind(value)})")


def parameter_text(where: str, value: Any) -> str:
    """A parameter's value as sent: text as is, a boolean as true or false, a number as its text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise ValueError(f"{where}: must be text, a number or a boolean (got {_kind(value)})")


def _step_spec(name: str, spec: Any) -> _Spec:
    where = f"steps[{name!r}]"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: must be a mapping of type, parameters, depends_on... (got {_kind(spec)})")
    unknown = [key for key in spec if key not in STEP_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (a step has {', '.join(STEP_KEYS)})")
    if "type" not in spec:
        raise ValueError(f"{where}.type: is required")
    type_name = _text(f"{where}.type", spec["type"])
    given = spec.get("parameters", {})
    if not isinstance(given, Mapping):
        raise ValueError(f"{where}.parameters: must be a mapping of names to values (got {_kind(given)})")
    parameters = {
        _text(f"{where}.parameters", key): parameter_text(f"{where}.parameters[{key!r}]", value)
        for key, value in given.items()
    }
    depends_on = spec.get("depends_on", [])
    listed = [depends_on] if isinstance(depends_on, str) else depends_on
    if not isinstance(listed, list):
        raise ValueError(f"{where}.depends_on: must be a list of step names (got {_kind(depends_on)})")
    after = [_text(f"{where}.depends_on", step) for step in listed]
    options = TaskOptions(
        description=_text(f"{where}.description", spec.get("description", "")),
        priority=_whole(f"{where}.priority", spec.get("priority", 0)),
        max_retries=_whole(f"{where}.max_retries", spec["max_retries"]) if "max_retries" in spec else None,
        timeout_seconds=_seconds(f"{where}.timeout", spec["timeout"]) if "timeout" in spec else None,
        queue=_text(f"{where}.queue", spec["queue"]) if "queue" in spec else None,
        limit_key=_text(f"{where}.limit_key", spec["limit_key"]) if "limit_key" in spec else None,
        delay_seconds=_seconds(f"{where}.delay", spec.get("delay", 0)),
    )  # fmt: skip
    return after, options, type_name, parameters


def _in_order(specs: Mapping[str, _Spec]) -> list[str]:
    """The steps in the order given, except that each comes after the steps it depends on; a
    ValueError for a dependency on no step, or a cycle."""
    position = {name: n for n, name in enumerate(specs)}
    waits_for = {name: set(spec[0]) for name, spec in specs.items()}
    for name, spec in specs.items():
        for parent in spec[0]:
            if parent not in specs:
                raise ValueError(f"steps[{name!r}].depends_on: names no step of this workflow: {parent!r}")
            if parent == name:
                raise ValueError(f"steps[{name!r}].depends_on: a step cannot depend on itself")
    children: dict[str, list[str]] = {name: [] for name in specs}
    for name, parents in waits_for.items():
        for parent in parents:
            children[parent].append(name)
    ready = [position[name] for name, parents in waits_for.items() if not parents]
    heapq.heapify(ready)
    names, ordered = list(specs), []
    while ready:
        name = names[heapq.heappop(ready)]
        ordered.append(name)
        for child in children[name]:
            waits_for[child].discard(name)
            if not waits_for[child]:
                heapq.heappush(ready, position[child])
    if len(ordered) < len(specs):
        cycle = _cycle(waits_for)
        raise ValueError(f"steps[{cycle[0]!r}].depends_on: makes a cycle: {' -> '.join(cycle)}")
    return ordered


def _cycle(waits_for: Mapping[str, Iterable[str]]) -> list[str]:
    """A cycle among the steps left waiting: each waits for the next."""
    step = next(name for name, parents in waits_for.items() if parents)
    seen: list[str] = []
    while step not in seen:
        seen.append(step)
        step = sorted(waits_for[step])[0]
    return [*seen[seen.index(step) :], step]
