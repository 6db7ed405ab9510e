"""What a worker needs from where its work comes from: PostgreSQL (the Store) or an API server (agent)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from taskservice.model import Transition
from taskservice.store import Claim


class WorkQueue(Protocol):
    """The Store has these methods; an agent's link to its server (worker/agent.py) has them too."""

    async def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        concurrency: int,
        task_types: Sequence[str],
        kind: str,
        principal: str | None = None,
        queues: Sequence[str] = (),
        version: str | None = None,
    ) -> None: ...

    async def installation_id(self) -> str: ...

    async def register_task_types(self, declarations: Mapping[str, Mapping[str, Any]]) -> None: ...

    async def claim(
        self,
        worker_id: str,
        limit: int,
        task_types: Iterable[str],
        lease_seconds: float,
        queues: Iterable[str] = (),
    ) -> list[Claim]: ...

    async def extend_leases(
        self, worker_id: str, execution_ids: Sequence[int], lease_seconds: float
    ) -> set[int]: ...

    async def finish(self, transitions: Sequence[Transition]) -> set[int]: ...

    async def stop_worker(self, worker_id: str) -> None: ...
