"""The plugin model: the protocol a task type implements and the registry that finds task types.

A plugin is an object with `run(parameters: dict[str, str])`, plain or `async`. It returns a JSON-able
result (kept with the attempt) or raises: any exception fails the attempt and is retried with backoff;
`PermanentFailure` fails the task at once (retrying cannot help, e.g. a malformed address).

Task types come from the entry point group `taskservice.plugins` (name = task type, value = a class
instantiated without arguments, or a ready object) and from `Registry.register`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

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
    """Task type name -> plugin. Entry points load lazily, the first time a name is asked for."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._plugins: dict[str, Plugin] = {}
        self._entry_points = (
            {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)} if load_entry_points else {}
        )

    def register(self, name: str, plugin: object) -> None:
        """Add or replace task type `name`; `plugin` is an object, a class or a function."""
        self._plugins[name] = _as_plugin(plugin)

    def get(self, name: str) -> Plugin:
        if name not in self._plugins:
            entry_point = self._entry_points.get(name)
            if entry_point is None:
                raise UnknownPluginType(name)
            self._plugins[name] = _as_plugin(entry_point.load())
        return self._plugins[name]

    def names(self) -> list[str]:
        """Every task type this registry can run, sorted."""
        return sorted(set(self._plugins) | set(self._entry_points))

    def __contains__(self, name: object) -> bool:
        return name in self._plugins or name in self._entry_points
