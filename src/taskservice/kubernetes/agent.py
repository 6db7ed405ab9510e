"""The Kubernetes agent (`task-cli serve --kubernetes`): an agent of the API server, like `task-cli
serve --address`, whose way to run an assignment is to create its Task resource; the controller runs
it as a Job and reports. The agent keeps the attempt's lease by its heartbeats while it holds it, and
forgets it when a heartbeat's answer names it lost (finished by the controller's report, cancelled,
reaped), deleting its resource then unless the resource's status says it finished (a cancelled
attempt's resource goes, and the controller deletes its Job with it).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from typing import Any

import structlog

from taskservice import model
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.kubernetes import resources
from taskservice.kubernetes.kube import Kube, describe
from taskservice.model import RetryPolicy
from taskservice.worker.agent import AgentLink
from taskservice.worker.heartbeat import Heartbeat
from taskservice.worker.runtime import release
from taskservice.worker.supervisor import HelperDied, Supervisor

log = structlog.get_logger(__name__)

# Tries to put an assignment's resource in place of an older attempt's (deleted meanwhile by others).
CREATE_TRIES = 5


class KubernetesLink(AgentLink):
    """The agent's link to its server, keeping each assignment as the server sent it (the Claim the
    runtime uses leaves out the container's fields)."""

    def __init__(self, address: str, token: str, agent_id: str) -> None:
        super().__init__(address, token, agent_id)
        self.assignments: dict[int, pb.WorkAssignment] = {}

    def accept(self, work: pb.WorkAssignment, received_at: float) -> None:
        self.assignments[work.assignment_id] = work
        super().accept(work, received_at)


class KubernetesAgent:
    """Turns the assignments of its container task types (`declarations`: name -> declaration JSON,
    each with a "container") into Task resources in `kube`'s namespace; at most `slots` at once."""

    kind = "kubernetes agent"

    def __init__(
        self,
        link: KubernetesLink,
        kube: Kube,
        declarations: Mapping[str, Mapping[str, Any]],
        slots: int,
        lease_seconds: float,
        policy: RetryPolicy,
    ) -> None:
        self.link, self.kube, self.declarations = link, kube, dict(declarations)
        self.slots, self.lease_seconds, self.policy = slots, lease_seconds, policy
        self.id = link.agent_id
        self._held: dict[int, str] = {}  # attempt (assignment id) -> its resource's name
        self._wake = asyncio.Event()
        self._heartbeat = Heartbeat(link, self.id, lease_seconds, self.held, self._lost)
        self._supervisor = Supervisor()
        self._forgetting: set[asyncio.Task[None]] = set()

    def held(self) -> list[int]:
        return list(self._held)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; HelperDied when its stream or heartbeat died (and it stopped)."""
        link = self.link
        await link.register_task_types(self.declarations)
        await link.register_worker(
            self.id, socket.gethostname(), os.getpid(), self.slots, sorted(self.declarations), "agent",
            version=release(),
        )  # fmt: skip
        link.on_work, link.held = self._wake.set, self.held
        self._supervisor.start(link.stream, self._heartbeat)
        log.info(
            f"{self.kind} started", worker_id=self.id, server=link.transport.address.url,
            namespace=self.kube.namespace, runs=", ".join(sorted(self.declarations)), slots=self.slots,
        )  # fmt: skip
        waits = [asyncio.ensure_future(e.wait()) for e in (stop, self._supervisor.failed)]
        try:
            while not stop.is_set() and not self._supervisor.failed.is_set():
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait([woken, *waits], return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                self._wake.clear()
                for claim in await link.claim(self.id, len(link.inbox), (), self.lease_seconds):
                    await self._start(claim.task, claim.execution_id)
        finally:
            for wait in waits:
                wait.cancel()
            await link.stream.stop()  # what arrived but was not started goes back to the queue
            await self._heartbeat.stop()
            await asyncio.gather(*self._forgetting, return_exceptions=True)
            await link.close()
            log.info(f"{self.kind} stopped", worker_id=self.id, left_to_their_leases=len(self._held))
        if self._supervisor.failed.is_set():
            raise HelperDied(self._supervisor.reason)

    async def _start(self, task: model.Task, attempt: int) -> None:
        work = self.link.assignments.pop(attempt, None)
        if work is None or not work.task.base_image:
            why = "its task type declares no container (is the server older than the agent?)"
            await self._fail(task, attempt, why, retryable=False)
            return
        backoff = float(self.declarations.get(task.type, {}).get("backoff_seconds") or 0)
        body = resources.task_resource(work, self.id, self.kube.namespace, backoff)
        try:
            await asyncio.to_thread(self._put, body)
        except Exception as error:
            why = f"its Task resource could not be created: {describe(error)}"
            await self._fail(task, attempt, why, retryable=True, backoff=backoff)
            return
        self._held[attempt] = body["metadata"]["name"]
        log.info("task resource created", task_id=task.id, attempt=attempt, name=body["metadata"]["name"])

    def _put(self, body: dict[str, Any]) -> None:
        """Create the resource, in place of an older attempt's of the same task (delete, create)."""
        name, attempt = body["metadata"]["name"], int(body["spec"]["attempt"])
        for _ in range(CREATE_TRIES):
            if self.kube.create_task(body):
                return
            existing = self.kube.get_task(name)
            if existing is None:
                continue
            if int(existing["spec"]["attempt"]) >= attempt:  # ours already, or ours is stale (heartbeats say)
                return
            self.kube.delete_task(name, existing["metadata"].get("uid"))
        raise RuntimeError(f"{name} exists for an older attempt and could not be replaced")

    async def _fail(
        self, task: model.Task, attempt: int, error: str, *, retryable: bool, backoff: float = 0.0
    ) -> None:
        """Report the attempt failed (retried after the type's backoff, as the controller would)."""
        policy = self.policy
        if backoff > 0:
            policy = RetryPolicy(backoff, policy.cap, policy.max_lost_leases)
        transition = model.attempt_failed(
            task, attempt, "Task failed", model.cut_error(error), policy, retryable=retryable
        )
        log.warning("assignment failed", task_id=task.id, attempt=attempt, error=error)
        try:
            await self.link.finish([transition])
        except Exception as failure:  # its lease runs out, and the task is queued again
            log.warning("reporting a failed assignment failed", task_id=task.id, error=str(failure))

    # -- attempts no longer current ---------------------------------------------------------------

    def _lost(self, attempts: set[int]) -> None:
        for attempt in attempts:
            name = self._held.pop(attempt, None)
            if name is not None:
                forgetting = asyncio.create_task(asyncio.to_thread(self._forget, name, attempt))
                self._forgetting.add(forgetting)
                forgetting.add_done_callback(self._forgotten)

    def _forgotten(self, forgetting: asyncio.Task[None]) -> None:
        self._forgetting.discard(forgetting)
        if not forgetting.cancelled() and forgetting.exception() is not None:
            log.warning("deleting a task resource failed", error=str(forgetting.exception()))

    def _forget(self, name: str, attempt: int) -> None:
        """The attempt is over for the server: its resource goes unless its status says it finished
        (the controller keeps those until their retention time)."""
        resource = self.kube.get_task(name)
        if resource is None or int(resource["spec"]["attempt"]) != attempt:
            return
        status = resource.get("status") or {}
        if int(status.get("attempt") or 0) == attempt and status.get("phase") in resources.FINISHED_PHASES:
            return
        if self.kube.delete_task(name, resource["metadata"].get("uid")):
            log.info("task resource deleted: the attempt is no longer current", name=name, attempt=attempt)
