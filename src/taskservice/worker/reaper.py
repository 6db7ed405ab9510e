"""The lease reaper: puts back tasks whose worker stopped heartbeating (crashed, killed or hung), and
queues the workflow steps whose release was missed (their last parent finished by a worker of the
release before workflows)."""

from __future__ import annotations

import structlog

from taskservice.background.periodic import Periodic
from taskservice.model import RetryPolicy
from taskservice.store import Store

log = structlog.get_logger(__name__)


class LeaseReaper(Periodic):
    name = "lease-reaper"

    def __init__(self, store: Store, policy: RetryPolicy, interval: float) -> None:
        super().__init__(interval)
        self.store, self.policy = store, policy

    async def tick(self) -> None:
        for transition in await self.store.reap_expired_leases(self.policy):
            log.warning("lease expired", task_id=transition.task_id, details=transition.details)
        if released := await self.store.release_stranded_steps():
            log.warning("workflow steps released late: their parents had all succeeded", steps=released)
