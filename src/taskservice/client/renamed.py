"""Public names that were renamed: the old ones keep working for one release more, each use warning
(DeprecationWarning) with the new name. They are in no `__all__` and no `dir()`."""

from __future__ import annotations

import warnings
from importlib import import_module
from typing import Any

# Module -> {old name: new name}. The next release keeps the old names; the one after it drops them.
RENAMED = {
    "taskservice": {"Retry": "CallRetry", "Worker": "WorkerInfo"},
    "taskservice.client.messages": {"Worker": "WorkerInfo"},
    "taskservice.client.wire": {"Retry": "CallRetry"},
}


def old_name(module: str, name: str) -> Any:
    """`module`'s value for a renamed `name` (warning the caller), for that module's `__getattr__`;
    AttributeError for any other name."""
    new = RENAMED.get(module, {}).get(name)
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(
        f"{module}.{name} is deprecated: use {module}.{new} (the old name goes after the next release)",
        DeprecationWarning,
        stacklevel=3,  # the caller of the module's __getattr__
    )
    return getattr(import_module(module), new)
