"""The container task types this server renders tasks' containers from (Task fields 11-14 and 125-127).

The declarations are the published ones (an agent's PullEvents, store/task_types.py), kept here by
name: a task whose type is not a container type costs one dict lookup. They are read from the
database again at most every REFRESH_SECONDS (another server may have registered an agent), and
taken at once from the agents that connect to this one (so the assignments it sends are rendered
with what its agent just declared).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from taskservice.api import convert
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import Task
from taskservice.plugins.declare import TaskTypeSpec
from taskservice.store import Store

REFRESH_SECONDS = 5.0


class ContainerTypes:
    """Container task types by name, as last published (`current`)."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.refresh_seconds, self.clock = refresh_seconds, clock
        self._types: dict[str, TaskTypeSpec] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def current(self, store: Store) -> Mapping[str, TaskTypeSpec]:
        """The container types, read again when the last read is older than `refresh_seconds`."""
        if self._fresh():
            return self._types
        async with self._lock:  # one read for the requests that find them stale together
            if not self._fresh():
                read_at = self.clock()
                self._types = _container_types((await store.container_declarations()).items())
                self._read_at = read_at
        return self._types

    def _fresh(self) -> bool:
        return self._read_at is not None and self.clock() - self._read_at < self.refresh_seconds

    def published(self, declarations: Mapping[str, Mapping[str, Any]]) -> None:
        """Declarations an agent of this server just published (and the store kept): taken at once."""
        types = dict(self._types)
        for name, declaration in declarations.items():
            types.pop(name, None)
            types.update(_container_types([(name, declaration)]))
        self._types = types

    async def fill(self, store: Store, tasks: Iterable[tuple[Task, pb.Task]]) -> None:
        """Render the container of each task of a container type into its message."""
        types = await self.current(store)
        if not types:
            return
        for task, message in tasks:
            declared = types.get(task.type)
            if declared is not None:
                convert.fill_container(message, task, declared)


def _container_types(declarations: Iterable[tuple[str, Any]]) -> dict[str, TaskTypeSpec]:
    found = {}
    for name, declaration in declarations:
        spec = TaskTypeSpec.from_json(declaration)
        if spec is not None and spec.container is not None:
            found[name] = spec
    return found
