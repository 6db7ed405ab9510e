"""An agent's link to its API server: work from the PullEvents stream, leases by Heartbeat, outcomes by
ReportOutcomes. It never sees PostgreSQL; a worker runtime fed by it is an agent (`task-cli serve
--address`).

It speaks Connect with binary protobuf through the protocol's async transport
(taskservice.protocol), as the Python clients and `task-cli` do.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from google.protobuf.message import Message

from taskservice import model
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import Status, Transition
from taskservice.protocol import wire
from taskservice.protocol.async_transport import AsyncTransport
from taskservice.rules.transient import is_transient
from taskservice.store import Claim

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)

RECONNECT_DELAY = 1.0
# The server sends a keep-alive at least every 15 s: a stream silent for this long is dead.
STREAM_SILENCE_SECONDS = 60.0
# Taken off the lease an assignment says is left: the time it may have spent on its way here.
LEASE_MARGIN_SECONDS = 0.2


def _time(text: str) -> datetime:
    return _parsed_time(text) if text else datetime.now(UTC)


@functools.lru_cache(maxsize=1024)
def _parsed_time(text: str) -> datetime:
    """Cached: the assignments of one message share their times (one claim's now(), one batch's)."""
    return datetime.fromisoformat(text)


def claim_of(work: pb.WorkAssignment, agent_id: str, received_at: float) -> Claim:
    """An assignment as the worker runtime runs it; its lease counted from `received_at` (monotonic)
    when the server said how much was left, less the time it may have been on its way."""
    t = work.task
    task = model.task_from({
        "id": t.id64 or t.id, "name": t.name, "type": t.type, "status": Status.RUNNING,
        "payload": {"parameters": dict(t.payload.parameters)}, "retries": t.retries,
        "max_retries": t.max_retries, "priority": t.priority, "description": t.description,
        "timeout_seconds": t.timeout_seconds, "attempts": t.attempts, "created_at": _time(t.created_at),
        "updated_at": _time(t.updated_at), "run_at": _time(t.run_at), "lease_owner": agent_id,
        "idempotency_key": t.idempotency_key or None, "execution_id": work.assignment_id,
        "lost_leases": work.lost_leases, "workflow_id": t.workflow_id or None, "step": t.step or None,
        "spawned_by": t.spawned_by or None, "trace_parent": work.trace_parent or None,
    })  # fmt: skip
    parents = {
        p.step: json.loads(p.result_json) if p.result_json else None for p in work.parents if not p.left_out
    }
    left_out = tuple(p.step for p in work.parents if p.left_out)
    lease_until = None
    if work.HasField("lease_seconds_left"):  # else an older server: counted from the claim's start
        lease_until = received_at + work.lease_seconds_left - LEASE_MARGIN_SECONDS
    return Claim(task, work.assignment_id, lease_until, parents, left_out)


def spawned_of(child: model.SpawnedTask) -> pb.SpawnedTask:
    t = child.task
    request = pb.CreateTaskRequest(
        name=t.name, type=t.type, payload=pb.Payload(parameters=t.parameters), description=t.description,
        priority=t.priority, queue=t.queue or "", limit_key=t.limit_key or "",
    )  # fmt: skip
    if t.max_retries is not None:
        request.max_retries = t.max_retries
    if t.timeout_seconds is not None:
        request.timeout_seconds = t.timeout_seconds
    return pb.SpawnedTask(name=child.name, task=request)


def outcome_of(t: Transition) -> pb.AttemptOutcome:
    return pb.AttemptOutcome(
        assignment_id=t.execution_id, task_id=t.task_id, status=int(t.status),  # type: ignore[arg-type]
        retries=t.retries, lost_leases=t.lost_leases, delay_seconds=t.delay_seconds, details=t.details,
        outcome=t.outcome, error=t.error or "",
        result_json="" if t.result is None else json.dumps(t.result, ensure_ascii=False),
        traceback=t.traceback or "", spawned=[spawned_of(child) for child in t.spawned],
        trace_parent=t.trace_parent or "",
    )  # fmt: skip


class AgentLink:
    """The worker runtime's queue (worker/queue.py) when it is an agent.

    `claim` hands out what the stream delivered (the server never sends more than the free slots and
    `prefetch` more: those wait in the inbox, their leases extended with the running ones', so that a
    slot that frees starts its next task without a round trip); `on_work` is called when something
    arrives, `held()` names the attempts still running (a reconnecting stream tells the server, so
    they count against the slots).
    """

    def __init__(
        self,
        address: str,
        token: str,
        agent_id: str,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        prefetch: int = 0,
    ) -> None:
        self.agent_id, self.clock = agent_id, clock  # the clock: the worker's, for the leases
        self.prefetch = prefetch
        self.transport = AsyncTransport(address, timeout)
        self._head = self.transport.address.head(wire.headers(token, timeout, user_agent="task-cli-agent"))
        self._stream_head = self.transport.address.head(
            wire.headers(token, None, user_agent="task-cli-agent", stream=True)
        )
        # With a token, look once for the server saying it did not check it (auth off: api/access.py).
        self._token_unconfirmed = bool(token)
        self.on_work: Callable[[], None] = lambda: None
        self.held: Callable[[], Iterable[int]] = list
        self.inbox: collections.deque[Claim] = collections.deque()
        self.hello = pb.PullEventsRequest(agent_id=agent_id, slots=1)
        self.installation = ""  # the server's installation id: the plugins' idempotency keys start with it
        self._declarations = ""  # the JSON of what the task types it runs declare (PullEvents sends it)
        self.stream = AgentStream(self)

    async def close(self) -> None:
        self.transport.close()

    async def call(self, method: str, request: Message, response_type: type[M]) -> M:
        """One unary call; a RetryableError (or one whose code says the server failed) is transient
        (rules/transient.py), anything else a refusal of what was sent."""
        try:
            data = await self.transport.post(
                wire.SERVICE_PATH + method, self._head, request.SerializeToString()
            )
        finally:
            self._check_token()
        return wire.decode(data, response_type)

    def _check_token(self) -> None:
        if self._token_unconfirmed and self.transport.token_ignored:
            self._token_unconfirmed = False
            log.warning(
                f"the server at {self.transport.address.url} runs with auth off: the token was not checked"
            )

    def accept(self, work: pb.WorkAssignment, received_at: float) -> None:
        """Put an assignment the stream delivered in the inbox (the Kubernetes agent's link keeps the
        assignment itself too: its container fields make the Task resource)."""
        self.inbox.append(claim_of(work, self.agent_id, received_at))

    # -- the WorkQueue of the runtime ----------------------------------------------------------

    async def installation_id(self) -> str:
        """The server's installation id, as the stream's first message said ("" before it opened)."""
        return self.installation

    async def register_task_types(self, declarations: Mapping[str, Mapping[str, Any]]) -> None:
        # Sent when the stream opens (register_worker comes next and keeps them in its hello).
        self._declarations = json.dumps(declarations, separators=(",", ":")) if declarations else ""

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
    ) -> None:
        # The stream says who we are when it opens (and again each time it reconnects).
        self.hello = pb.PullEventsRequest(
            agent_id=worker_id, slots=concurrency, task_types=list(task_types), host=host, pid=pid,
            declarations_json=self._declarations, queues=list(queues), version=version or "",
            prefetch=self.prefetch,
        )  # fmt: skip

    async def claim(
        self,
        worker_id: str,
        limit: int,
        task_types: Iterable[str],
        lease_seconds: float,
        queues: Iterable[str] = (),
    ) -> list[Claim]:
        # The server sends only what this agent's types and queues (its hello) allow. One whose lease
        # ran out while it waited (the agent was paused, say) is not started but given back: it may
        # be running elsewhere by now (fenced: the give-back counts only if no one reaped it).
        now = self.clock()
        claims: list[Claim] = []
        ran_out: list[Claim] = []
        while self.inbox and len(claims) < limit:
            claim = self.inbox.popleft()
            expired = claim.lease_until is not None and claim.lease_until <= now
            (ran_out if expired else claims).append(claim)
        if ran_out:
            log.warning("assignments waited here past their lease (was this agent paused?); giving them back",
                        attempts=[c.execution_id for c in ran_out])  # fmt: skip
            await self.finish([model.put_back(c.task, c.execution_id) for c in ran_out])
        return claims

    def waiting(self) -> list[int]:
        """The attempts delivered and not started yet (their leases are kept as the running ones')."""
        return [claim.execution_id for claim in self.inbox]

    async def extend_leases(
        self, worker_id: str, execution_ids: Sequence[int], lease_seconds: float
    ) -> set[int]:
        """Extend the leases of the running attempts `execution_ids` and of those waiting in the inbox;
        returns the running ones kept. A waiting one lost (cancelled, reaped) leaves the inbox."""
        waiting = self.waiting()
        request = pb.HeartbeatRequest(
            timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), uuid=worker_id,
            held=[*execution_ids, *waiting],
        )  # fmt: skip
        sent_at = self.clock()
        answer = await self.call("Heartbeat", request, pb.HeartbeatResponse)
        lost = set(answer.lost)
        if waiting:  # (the inbox may have changed meanwhile: only those named were extended)
            until = sent_at + (answer.lease_seconds or lease_seconds) - LEASE_MARGIN_SECONDS
            named = set(waiting)
            kept = [
                dataclasses.replace(c, lease_until=max(c.lease_until or until, until))
                if c.execution_id in named
                else c
                for c in self.inbox
                if c.execution_id not in lost
            ]
            self.inbox.clear()
            self.inbox.extend(kept)
        return set(execution_ids) - lost

    async def finish(self, transitions: Sequence[Transition]) -> set[int]:
        request = pb.ReportOutcomesRequest(
            agent_id=self.agent_id, outcomes=[outcome_of(t) for t in transitions]
        )
        answer = await self.call("ReportOutcomes", request, pb.ReportOutcomesResponse)
        return {t.execution_id for t in transitions} - set(answer.refused)

    async def stop_worker(self, worker_id: str) -> None:
        """Nothing to do: the server marks the agent stopped when its stream ends."""


class AgentStream:
    """The helper that keeps the PullEvents stream open (reconnecting when it drops) and puts what
    it delivers in the link's inbox. A refusal (no or a wrong token, say) ends it: the agent stops
    and says why. Stopped, it gives back what arrived but never started."""

    name = "agent-stream"

    def __init__(self, link: AgentLink) -> None:
        self.link = link
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        unstarted = [self.link.inbox.popleft() for _ in range(len(self.link.inbox))]
        if unstarted:
            with contextlib.suppress(Exception):  # else their leases expire and they run again
                await self.link.finish([model.put_back(c.task, c.execution_id) for c in unstarted])

    async def _loop(self) -> None:
        while True:
            try:
                await self._follow()
                log.warning("the server ended the work stream; reconnecting")
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("work stream lost; reconnecting", error=str(error))
            finally:
                self.connected.clear()
            await asyncio.sleep(RECONNECT_DELAY)

    async def _follow(self) -> None:
        link = self.link
        hello = pb.PullEventsRequest()
        hello.CopyFrom(link.hello)
        hello.held[:] = sorted([*link.held(), *link.waiting()])
        path = wire.SERVICE_PATH + "PullEvents"
        messages = link.transport.stream(
            path, link._stream_head, hello.SerializeToString(), STREAM_SILENCE_SECONDS
        )
        async with contextlib.aclosing(messages):
            async for message in messages:
                link._check_token()
                self._received(pb.PullEventsResponse.FromString(message))

    def _received(self, message: pb.PullEventsResponse) -> None:
        if message.installation_id:
            self.link.installation = message.installation_id
        if message.HasField("work"):
            received_at = self.link.clock()
            for work in (message.work, *message.more_work):
                self.link.accept(work, received_at)
            self.link.on_work()
        elif message.agent_id and not self.connected.is_set():
            self.connected.set()
            log.info("agent connected", agent_id=message.agent_id, lease_seconds=message.lease_seconds)
