"""The plugin model: the protocol a task type implements and the registry that finds task types.

A plugin is an object with `run(parameters: dict[str, str])`, plain or `async`; a `run` that takes a
second argument gets the attempt's `TaskContext` (plugins/context.py) there. It returns a JSON-able
result (kept with the attempt) or raises: any exception fails the attempt and is retried with backoff;
`PermanentFailure` fails the task at once (retrying cannot help, e.g. a malformed address). A plugin
may declare its parameters, retry policy and timeout in a `spec` attribute (plugins/declare.py).

Task types come from functions declared with `@task` (plugins/declare.py) once their module is
imported, from the entry point group `taskservice.plugins` (name = task type, value = a class
instantiated without arguments, a ready object or a `@task` function) and from `Registry.register`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from taskservice.plugins.declare import TaskTypeSpec

ENTRY_POINT_GROUP = "taskservice.plugins"


@runtime_checkable
class Plugin(Protocol):
    def run(self, parameters: dict[str, str]) -> Any:
        """Do the task's work; return a JSON-able result or raise."""


class PermanentFailure(Exception):
    """Raise from a plugin to fail the task without retrying."""


class UnknownPluginType(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown plugin type: {name}")
        self.name = name


class _FunctionPlugin:
    """Lets a plain function (sync or async) serve as a plugin."""

    def __init__(self, function: Callable[[dict[str, str]], Any]) -> None:
        self.run = function


# The task types `@task` declared in this process (plugins/declare.py), by name.
_DECLARED: dict[str, Plugin] = {}


def register_declared(name: str, plugin: Plugin) -> None:
    """Called by `@task`: every Registry knows the type from now on (a second one replaces it)."""
    _DECLARED[name] = plugin


def takes_context(plugin: Plugin) -> bool:
    """Whether the plugin's `run` accepts a second argument (the attempt's context)."""
    try:
        signature = inspect.signature(plugin.run)
    except (TypeError, ValueError):  # a builtin without a signature: the old protocol
        return False
    positional = [
        p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    return variadic or len(positional) >= 2


def is_async(plugin: Plugin) -> bool:
    """Whether the plugin's `run` is a coroutine function (runs on the event loop, not in a thread)."""
    return inspect.iscoroutinefunction(plugin.run)


def _as_plugin(obj: object) -> Plugin:
    if inspect.isclass(obj):
        obj = obj()
    if isinstance(obj, Plugin):
        return obj
    if callable(obj):
        return _FunctionPlugin(obj)
    raise TypeError(f"{obj!r} is not a plugin: it needs a run(parameters) method")


class Registry:
    """Task type name -> plugin. Entry points load lazily, the first time a name is asked for.

    `load_entry_points=False` makes a registry of only what is registered on it: no entry points, and
    no `@task` types of this process either (tests build such registries to know what is in them).
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._declared: dict[str, Plugin] = _DECLARED if load_entry_points else {}
        self._plugins: dict[str, Plugin] = {}
        self._takes_context: dict[str, bool] = {}
        self._declarations: dict[str, TaskTypeSpec | None] = {}
        self._entry_points = (
            {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)} if load_entry_points else {}
        )

    def register(self, name: str, plugin: object) -> None:
        """Add or replace task type `name`; `plugin` is an object, a class or a function."""
        self._plugins[name] = _as_plugin(plugin)
        self._takes_context.pop(name, None)
        self._declarations.pop(name, None)

    def get(self, name: str) -> Plugin:
        plugin = self._plugins.get(name)
        if plugin is not None:
            return plugin
        declared = self._declared.get(name)
        if declared is not None:
            return declared  # not kept: a module imported again may declare it anew
        entry_point = self._entry_points.get(name)
        if entry_point is None:
            raise UnknownPluginType(name)
        self._plugins[name] = plugin = _as_plugin(entry_point.load())
        return plugin

    def takes_context(self, name: str) -> bool:
        """Whether task type `name`'s plugin wants the attempt's context as a second argument."""
        known = self._takes_context.get(name)
        if known is None:
            self._takes_context[name] = known = takes_context(self.get(name))
        return known

    def declaration(self, name: str) -> TaskTypeSpec | None:
        """What task type `name` declares (its plugin's `spec`), or None: unknown, or declares nothing.

        Kept per name (CreateTask asks for every task), except for `@task` types, which a module
        imported again may declare anew.
        """
        if name in self._declarations:
            return self._declarations[name]
        from taskservice.plugins.declare import TaskTypeSpec

        try:
            plugin = self.get(name)
        except UnknownPluginType:
            return None
        spec = getattr(plugin, "spec", None)
        found = spec if isinstance(spec, TaskTypeSpec) else None
        if plugin is not self._declared.get(name):
            self._declarations[name] = found
        return found

    def names(self) -> list[str]:
        """Every task type this registry can run, sorted."""
        return sorted(set(self._plugins) | set(self._declared) | set(self._entry_points))

    def __contains__(self, name: object) -> bool:
        return name in self._plugins or name in self._declared or name in self._entry_points
