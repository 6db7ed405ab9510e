"""The dispatcher: claims work for every connected agent in one statement and feeds their streams.

One loop per server claims for all sessions (store.claim_for: the same SKIP LOCKED claim, priority
and due time as a worker's), woken by the queue's NOTIFY (its own LISTEN connection), by a session
whose slots free up, and by a poll as a fallback. So 1,000 agents cost the database what one busy
worker costs, never a connection each. Flow control: a session is sent at most `slots` + `prefetch`
assignments that it has not reported yet (the prefetched ones wait in the agent, heartbeated, so that
a slot that frees starts its next task at once rather than after a round trip through here), and
nothing while its agent is silent (no heartbeat or report for two thirds of a lease: frozen, say),
since what it is sent then would only wait out another lease.

An original-style agent (its PullEvents names nobody: issue 19) cannot name its stream in its
heartbeats nor report through ReportOutcomes: its open stream, while its caller heartbeats, holds its
tasks (LegacyLeases), and its controller reports through UpdateTaskStatus (store.set_status).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable

import structlog

from taskservice import model
from taskservice.background.listener import Listener
from taskservice.background.periodic import Periodic
from taskservice.store import Claim, Store

log = structlog.get_logger(__name__)

# One statement claims for at most this many slots; more free slots are served by the next round.
CLAIM_BATCH = 1000


class Session:
    """One open PullEvents stream: who it is, how many assignments it may hold, what it holds."""

    def __init__(
        self,
        agent_id: str,
        slots: int,
        task_types: tuple[str, ...],
        held: Iterable[int],
        legacy: bool,
        principal: str | None = None,
        queues: tuple[str, ...] = (),
        prefetch: int = 0,
    ) -> None:
        self.agent_id, self.slots, self.task_types, self.legacy = agent_id, slots, task_types, legacy
        self.prefetch = prefetch  # assignments it keeps waiting beyond its slots
        self.queues = queues  # empty: every queue
        self.principal = principal  # who opened it (None: auth is off)
        # Sent (or held on reconnecting), not reported yet: assignment ids; for an original-style
        # agent, task ids (its controller reports by task, and one task may be several attempts).
        self.outstanding: set[int] = set(held)
        self.inbox: asyncio.Queue[Claim | None] = asyncio.Queue()  # None: the stream is to end
        self.closed = False
        self.heard_at = time.monotonic()  # its last heartbeat or report

    def free(self, silent_after: float) -> int:
        """Slots to fill now: none while closed, or silent."""
        if self.closed or self.silent_for() > silent_after:
            return 0
        return max(self.slots + self.prefetch - len(self.outstanding), 0)

    def silent_for(self) -> float:
        return time.monotonic() - self.heard_at


def legacy_agent_id() -> str:
    """The id the server gives an original-style agent (its PullEvents names nobody)."""
    return f"agent-{uuid.uuid4().hex[:12]}"


class LegacyLeases(Periodic):
    """Original-style agents name no stream in their heartbeats: their open stream holds their tasks
    while their caller heartbeats (Dispatcher.heard_original). Every tick extends what they hold (the
    lease of the open attempt, or the hold between their controller's attempts); a task no longer
    theirs (settled through UpdateTaskStatus, cancelled, reaped) frees its session's slot."""

    name = "legacy-leases"

    def __init__(self, dispatcher: Dispatcher, interval: float) -> None:
        super().__init__(interval)
        self.dispatcher = dispatcher

    async def tick(self) -> None:
        await self.dispatcher.extend_legacy_leases()


class Dispatcher:
    """Claims for the open sessions and hands each its assignments."""

    def __init__(self, store: Store, listen_url: str, lease_seconds: float, poll_interval: float) -> None:
        self.store, self.lease_seconds, self.poll_interval = store, lease_seconds, poll_interval
        # An agent heartbeats every third of a lease: one not heard from for two is not to be fed.
        self._silent_after = lease_seconds * 2 / 3
        self.sessions: dict[str, Session] = {}
        self._wake = asyncio.Event()
        self._listener = Listener(listen_url, self.wake)
        self._legacy = LegacyLeases(self, lease_seconds / 3)
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._turn = 0  # which session is first in the next round

    def start(self) -> None:
        self._listener.start()
        self._legacy.start()
        self._task = asyncio.create_task(self._loop(), name="dispatcher")

    async def stop(self) -> None:
        self.close_all()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._legacy.stop()
        await self._listener.stop()

    def wake(self) -> None:
        self._wake.set()

    # -- sessions ------------------------------------------------------------------------------

    def open(
        self,
        agent_id: str,
        slots: int,
        task_types: tuple[str, ...],
        held: Iterable[int],
        legacy: bool,
        principal: str | None = None,
        queues: tuple[str, ...] = (),
        prefetch: int = 0,
    ) -> Session:
        """A new stream; one already open under the same id (the agent reconnected) is closed."""
        previous = self.sessions.get(agent_id)
        if previous is not None:
            self.close(previous)
        session = Session(agent_id, slots, task_types, held, legacy, principal, queues, prefetch)
        self.sessions[agent_id] = session
        self.wake()
        return session

    def close(self, session: Session) -> None:
        """End a session's stream (it reads None next); no more work is sent to it."""
        if not session.closed:
            session.closed = True
            session.inbox.put_nowait(None)
        if self.sessions.get(session.agent_id) is session:
            del self.sessions[session.agent_id]

    def close_all(self) -> None:
        for session in list(self.sessions.values()):
            self.close(session)

    async def end(self, session: Session) -> None:
        """A stream ended: what was claimed for it but never sent goes back to the queue at once;
        what was sent stays leased to the agent (it may still run it and report it)."""
        self.close(session)
        unsent = []
        while not session.inbox.empty():
            claim = session.inbox.get_nowait()
            if claim is not None:
                unsent.append(claim)
        try:
            if unsent:
                await self.store.finish([model.put_back(c.task, c.execution_id) for c in unsent])
            if session.legacy:  # what it held between its controller's attempts: due at once
                await self.store.release_original_holds(session.agent_id, sorted(session.outstanding))
            if session.agent_id not in self.sessions:  # not reconnected meanwhile
                await self.store.stop_worker(session.agent_id)
        except Exception as error:  # their leases expire and the reaper queues them again
            log.warning("ending an agent's session failed", agent_id=session.agent_id, error=str(error))

    def attempt_settled(self) -> None:
        """A status was set through UpdateTaskStatus: if it was an original-style agent's report,
        its slot is free now rather than at the next lease tick."""
        if any(s.legacy and s.outstanding for s in self.sessions.values()):
            task = asyncio.create_task(self.extend_legacy_leases(), name="legacy-leases-now")
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    def heard(self, agent_id: str, lost: Collection[int] = ()) -> None:
        """The agent heartbeated or reported: it is alive, and may be sent work. A prefetching agent's
        `lost` attempts (cancelled, reaped: its heartbeat's answer) hold no slot any more: it drops
        those still waiting without reporting them."""
        session = self.sessions.get(agent_id)
        if session is not None:
            was_silent = session.free(self._silent_after) == 0
            session.heard_at = time.monotonic()
            if lost and session.prefetch:
                session.outstanding.difference_update(lost)
            if was_silent or (lost and session.free(self._silent_after)):
                self.wake()

    def heard_original(self, principal: str | None) -> None:
        """A heartbeat that names no stream of ours (the original's agent's: no uuid, or its own):
        it speaks for the original-style streams its caller opened (with auth off, every caller is
        the same one). Nothing to look up in the database: the hot path stays as it is."""
        for session in self.sessions.values():
            if session.legacy and session.principal == principal:
                self.heard(session.agent_id)

    def reported(self, agent_id: str, assignment_ids: Collection[int]) -> None:
        """Outcomes of these assignments arrived (counted or refused): their slots are free again."""
        session = self.sessions.get(agent_id)
        if session is not None and assignment_ids:
            session.outstanding.difference_update(assignment_ids)
            session.heard_at = time.monotonic()
            self.wake()

    async def extend_legacy_leases(self) -> None:
        """Keep what the original-style streams hold, unless their caller stopped heartbeating for a
        lease (frozen, say: its TCP connection may stay open): then their leases run out, and
        `task-cli workers` shows them silent."""
        for session in [s for s in self.sessions.values() if s.legacy]:
            if session.silent_for() > self.lease_seconds:
                continue
            held = sorted(session.outstanding)
            try:
                kept = await self.store.extend_original_holds(session.agent_id, held, self.lease_seconds)
            except Exception as error:  # tried again at the next tick
                log.warning("extending an agent's leases failed", agent_id=session.agent_id, error=str(error))
                return
            gone = set(held) - kept
            if gone:  # not reported(): that would count as hearing from the agent
                session.outstanding.difference_update(gone)
                self.wake()

    # -- claiming ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            try:
                while await self._claim_round():
                    pass  # every slot asked for was filled: there may be more due
            except Exception as error:  # the database may blink: the next wake-up or poll tries again
                log.warning("dispatching failed; will try again", error=str(error))

    async def _claim_round(self) -> bool:
        """Claim once for every group of sessions taking the same types from the same queues; whether
        all were filled.

        Sessions take turns being first (a round of CLAIM_BATCH slots may not reach them all)."""
        order = list(self.sessions.values())
        if order:
            turn = self._turn % len(order)
            order = order[turn:] + order[:turn]
        groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = defaultdict(list)
        for session in order:
            kinds = (session.task_types, session.queues)
            groups[kinds].extend([session.agent_id] * session.free(self._silent_after))
        filled = False
        for (task_types, queues), owners in groups.items():
            if not owners:
                continue
            slots = owners[:CLAIM_BATCH]
            self._turn += len(set(slots))
            # Each lease counted from when the claim was sent: the agent is told how much is left as
            # its assignment is sent.
            lease_until = time.monotonic() + self.lease_seconds
            claims = await self.store.claim_for(slots, task_types, self.lease_seconds, queues, lease_until)
            await self._deliver(claims)
            filled = filled or len(claims) == len(slots)
        return filled

    async def _deliver(self, claims: list[Claim]) -> None:
        """Put each claim in its session's inbox."""
        orphans = []
        for claim in claims:
            session = self.sessions.get(claim.task.lease_owner or "")
            if session is None or session.closed:
                orphans.append(claim)  # its stream ended while we claimed
                continue
            session.outstanding.add(claim.task.id if session.legacy else claim.execution_id)
            session.inbox.put_nowait(claim)
        if orphans:
            await self.store.finish([model.put_back(c.task, c.execution_id) for c in orphans])
