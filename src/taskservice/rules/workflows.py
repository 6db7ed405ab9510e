"""The rules of a workflow's graph: step names, known dependencies, no cycle, a bounded size. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from taskservice import model
from taskservice.model import StepSpec, WorkflowGraph
from taskservice.rules.tasks import BrokenRule

# A workflow or a spawn breaks a rule: `field` names the step ("steps['load'].depends_on").
BadStep = BrokenRule


def step_field(name: str, rest: str = "") -> str:
    return f"steps[{name!r}]" + (f".{rest}" if rest else "")


def check_step_name(name: str, field: str) -> str:
    if not model.STEP_NAME.fullmatch(name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise BadStep(field, f"must be {model.STEP_NAME_RULE} (got {shown!r})")
    return name


def checked_graph(steps: Sequence[StepSpec]) -> WorkflowGraph:
    """The workflow's steps in an order where each comes after those it depends on; BadStep naming
    the step for a bad or repeated name, an unknown or repeated dependency, a cycle, or too many steps."""
    if not 1 <= len(steps) <= model.STEPS_MAX:
        raise BadStep("steps", f"must hold 1 to {model.STEPS_MAX} steps (got {len(steps)})")
    by_name: dict[str, StepSpec] = {}
    for index, step in enumerate(steps):
        check_step_name(step.name, f"steps[{index}].name")
        if step.name in by_name:
            raise BadStep(
                f"steps[{index}].name", f"{step.name!r} names two steps; each step's name is its own"
            )
        by_name[step.name] = step
    for step in steps:
        seen: set[str] = set()
        for parent in step.depends_on:
            field = step_field(step.name, "depends_on")
            if parent == step.name:
                raise BadStep(field, "a step cannot depend on itself")
            if parent not in by_name:
                raise BadStep(field, f"names no step of this workflow: {parent!r}")
            if parent in seen:
                raise BadStep(field, f"names {parent!r} twice")
            seen.add(parent)
    return WorkflowGraph(_in_order(steps, by_name), tuple((p, s.name) for s in steps for p in s.depends_on))


def _in_order(steps: Sequence[StepSpec], by_name: dict[str, StepSpec]) -> tuple[StepSpec, ...]:
    """Kahn's order, stable (a step keeps its place among those ready); a cycle is named by a step on it."""
    waiting = {s.name: len(s.depends_on) for s in steps}
    children: dict[str, list[str]] = {s.name: [] for s in steps}
    for step in steps:
        for parent in step.depends_on:
            children[parent].append(step.name)
    ready = [s.name for s in steps if not s.depends_on]
    ordered: list[StepSpec] = []
    while ready:
        name = ready.pop(0)
        ordered.append(by_name[name])
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(ordered) < len(steps):
        stuck = {name for name, left in waiting.items() if left > 0}
        first = next(s.name for s in steps if s.name in stuck)
        raise BadStep(
            step_field(first, "depends_on"), f"makes a cycle: {' -> '.join(_cycle(first, stuck, by_name))}"
        )
    return tuple(ordered)


def _cycle(start: str, stuck: set[str], by_name: dict[str, StepSpec]) -> list[str]:
    """A cycle among the steps Kahn's order could not place, named from `start`'s way into it: each
    of them waits for another of them, so following those parents meets a step twice."""
    path: list[str] = []
    at = start
    while at not in path:
        path.append(at)
        at = next(p for p in by_name[at].depends_on if p in stuck)
    return [*path[path.index(at) :], at]


def spawned_step(parent_step: str, name: str) -> str:
    """A spawned child's full step name; BadStep when it is too long (spawns nested too deep)."""
    full = f"{parent_step}/{name}"
    if len(full) > model.STEP_PATH_MAX:
        raise BadStep(
            f"spawned[{name!r}]",
            f"its step's full name {full[:60]!r}… passes {model.STEP_PATH_MAX} characters"
            " (spawns nested too deep)",
        )
    return full
