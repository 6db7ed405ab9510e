"""The plugin model: the one kind of entry a task type is (`TaskEntry`) and the registry that holds them.

The form to write is a function declared with `taskservice.task` (`@task("resize_avatar")`): its
signature declares the parameters, and it runs sync (on one of the worker's threads) or async (on
its event loop). A plugin returns a JSON-able result (kept with the attempt) or raises: any exception
fails the attempt and is retried with backoff; `PermanentFailure` fails the task at once (retrying
cannot help, e.g. a malformed address).

The seed's form still works, through one adapter (`entry_for`) applied once, at registration: an
object (or a class, instantiated without arguments) with `run(parameters)` or `run(parameters, ctx)`,
plain or `async`, and an optional `spec` (plugins/declare.py); a plain function `f(parameters)` too.
The worker calls every entry the same way, `entry.call(parameters, ctx)`, and never looks at a
plugin's shape again.

Task types come from `@task` functions once their module is imported, from the entry point group
`taskservice.plugins` (name = task type, value = any form above) and from `Registry.register`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from taskservice.plugins.container_types import ContainerType
    from taskservice.plugins.context import TaskContext
    from taskservice.plugins.declare import TaskTypeSpec

ENTRY_POINT_GROUP = "taskservice.plugins"


@runtime_checkable
class Plugin(Protocol):
    """The seed's plugin form (adapted by `entry_for`); new task types are `@task` functions."""

    def run(self, parameters: dict[str, str]) -> Any:
        """Do the task's work; return a JSON-able result or raise."""


class PermanentFailure(Exception):
    """Raise from a plugin to fail the task without retrying."""


class UnknownPluginType(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown plugin type: {name}")
        self.name = name


@dataclass(frozen=True, slots=True)
class TaskEntry:
    """A task type as the registry holds it, whatever form it was written in."""

    name: str
    spec: TaskTypeSpec | None  # what it declares (parameters, retries, timeout), if anything
    # Called with the task's parameters and the attempt's context: the result, or (async) an awaitable.
    call: Callable[[dict[str, str], TaskContext], Any]
    is_async: bool  # awaited on the worker's loop; otherwise run on one of its threads
    plugin: Plugin  # what was registered: the @task function's DeclaredTask, the seed-style object
    # Why its `spec` could not be read, if it could not: `Registry.declaration` raises it (the worker
    # says so and runs the type undeclared) rather than registration failing.
    spec_error: Exception | None = None


class _FunctionPlugin:
    """A plain function registered as a plugin, as `Registry.get` gives it back."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.run = function


def takes_context(plugin: object) -> bool:
    """Whether a seed-style plugin's `run` accepts a second argument (the attempt's context)."""
    return _takes_second(plugin.run) if isinstance(plugin, Plugin) else False


def _takes_second(function: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: the old protocol
        return False
    positional = [
        p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    return variadic or len(positional) >= 2


def is_async(plugin: object) -> bool:
    """Whether a plugin (seed-style or `@task`) runs on the event loop rather than in a thread."""
    return inspect.iscoroutinefunction(getattr(plugin, "run", None))


def entry_for(name: str, plugin: object) -> TaskEntry:
    """The one adapter: any plugin form as the registry's entry (its shape is looked at here, once)."""
    from taskservice.plugins.declare import TaskTypeSpec, TypedTask

    spec_error: Exception | None = None
    if isinstance(plugin, TypedTask):  # @task: it parses its parameters and takes the context itself
        run_declared: Callable[[dict[str, str], TaskContext], Any] = plugin.run
        return TaskEntry(name, plugin.spec, run_declared, is_async(plugin), plugin)
    if inspect.isclass(plugin):
        plugin = plugin()
    if isinstance(plugin, Plugin):
        run: Callable[..., Any] = plugin.run
        try:
            spec = getattr(plugin, "spec", None)
        except Exception as error:  # a property that fails
            spec, spec_error = None, error
        spec = spec if isinstance(spec, TaskTypeSpec) else None
    elif callable(plugin):
        plugin = _FunctionPlugin(plugin)  # so that every entry's `plugin` has a run, as before
        run, spec = plugin.run, None
    else:
        raise TypeError(
            f"{plugin!r} is not a plugin: declare a function with @task, or give it run(parameters)"
        )
    # Without a context parameter, the context is dropped here (an async run's coroutine is passed on).
    call = run if _takes_second(run) else (lambda parameters, ctx: run(parameters))
    return TaskEntry(name, spec, call, inspect.iscoroutinefunction(run), plugin, spec_error)


def _is_container(entry: TaskEntry) -> bool:
    """A container task type's entry (the Kubernetes agent runs it, never a worker)."""
    return entry.spec is not None and entry.spec.container is not None


def register_declared(name: str, plugin: object) -> None:
    """Called by `@task`: every Registry knows the type from now on (a second one replaces it)."""
    Registry.declare(name, plugin)


class Registry:
    """Task type name -> TaskEntry. Entry points load lazily, the first time a name is asked for.

    `load_entry_points=False` makes a registry of only what is registered on it: no entry points, and
    no `@task` types of this process either (tests build such registries to know what is in them).
    """

    # The `@task` types declared in this process: every registry (but those above) sees them.
    _declared: ClassVar[dict[str, TaskEntry]] = {}

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._with_declared = load_entry_points
        self._entries: dict[str, TaskEntry] = {}
        self._entry_points = (
            {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)} if load_entry_points else {}
        )

    @classmethod
    def declare(cls, name: str, plugin: object) -> None:
        """Add task type `name` to every registry of this process (as `@task` does)."""
        cls._declared[name] = entry_for(name, plugin)

    def register(self, name: str, plugin: object) -> None:
        """Add or replace task type `name` in this registry; `plugin` is any form `entry_for` takes."""
        self._entries[name] = entry_for(name, plugin)

    def entry(self, name: str) -> TaskEntry:
        """Task type `name`, or UnknownPluginType."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry
        if self._with_declared:
            entry = self._declared.get(name)
            if entry is not None:
                return entry  # not kept: a module imported again may declare it anew
        entry_point = self._entry_points.get(name)
        if entry_point is None:
            raise UnknownPluginType(name)
        self._entries[name] = entry = entry_for(name, entry_point.load())
        return entry

    def get(self, name: str) -> Plugin:
        """The plugin registered as task type `name` (its entry's `plugin`)."""
        return self.entry(name).plugin

    def takes_context(self, name: str) -> bool:
        """Whether task type `name`'s plugin takes the attempt's context (every entry's `call` does)."""
        entry = self.entry(name)
        return _takes_second(entry.plugin.run) if isinstance(entry.plugin, Plugin) else False

    def declaration(self, name: str) -> TaskTypeSpec | None:
        """What task type `name` declares (its plugin's `spec`), or None: unknown, or declares nothing."""
        try:
            entry = self.entry(name)
        except UnknownPluginType:
            return None
        if entry.spec_error is not None:
            raise entry.spec_error
        return entry.spec

    def names(self) -> list[str]:
        """Every task type this registry can run, sorted: the types a worker (or a plain agent) claims.

        Container task types are left out (the Kubernetes agent runs them: `container_types`), those
        of entry points once loaded (`runs` loads them).
        """
        declared = self._declared if self._with_declared else {}
        known = {**declared, **self._entries}
        names = set(known) | set(self._entry_points)
        return sorted(name for name in names if name not in known or not _is_container(known[name]))

    def runs(self, name: str) -> bool:
        """Whether a worker runs task type `name`: known, and not a container task type (loaded to
        see; one that fails to load counts as run, and fails as it runs)."""
        try:
            return not _is_container(self.entry(name))
        except UnknownPluginType:
            return False
        except Exception:
            return True

    def container_types(self) -> dict[str, ContainerType]:
        """The container task types it knows (entry points loaded to see which), by name."""
        from taskservice.plugins.container_types import ContainerType

        declared = self._declared if self._with_declared else {}
        found: dict[str, ContainerType] = {}
        for name in sorted(set(declared) | set(self._entries) | set(self._entry_points)):
            try:
                entry = self.entry(name)
            except Exception:  # a plugin that fails to load is no container type we know of
                continue
            if isinstance(entry.plugin, ContainerType):
                found[name] = entry.plugin
        return found

    def __contains__(self, name: object) -> bool:
        declared = self._declared if self._with_declared else {}
        return name in self._entries or name in declared or name in self._entry_points
