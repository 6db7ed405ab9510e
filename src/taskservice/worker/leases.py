"""The leases of a worker's attempts on its own clock, and the watch that stops those that ran out."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable

from taskservice.background.periodic import Periodic
from taskservice.plugins.context import Lease


class LeaseBook:
    """How long each running attempt's lease lasts, as this worker knows it on its monotonic clock.

    Conservative: a claim or heartbeat *sent* at t grants until t + lease_seconds (the database counts
    from when it ran the statement, later), and an agent's assignment says how much was left when the
    server sent it. A worker paused past that (SIGSTOP, a frozen VM, swapping) learns on waking that
    its lease ran out on its own, before it asks anyone: another worker may run the attempt by now.
    The attempt's context reads the same `Lease` (TaskContext.ensure_current), from any thread.
    """

    def __init__(self, lease_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_seconds, self.clock = lease_seconds, clock
        self._leases: dict[int, Lease] = {}
        # Attempts whose lease ran out here: no heartbeat is sent for them any more, also while
        # their outcome waits to be written (Worker.held forgets them once it is).
        self.ran_out: set[int] = set()

    def grant(self, execution_id: int, sent_at: float, until: float | None = None) -> Lease:
        """The lease of an attempt claimed by a request sent at `sent_at` (or lasting `until`, when
        whoever handed it over said so)."""
        lease = Lease(sent_at + self.lease_seconds if until is None else until, self.clock)
        self._leases[execution_id] = lease
        return lease

    def get(self, execution_id: int) -> Lease | None:
        return self._leases.get(execution_id)

    def drop(self, execution_id: int) -> None:
        """The attempt ended (its outcome is on its way)."""
        self._leases.pop(execution_id, None)

    def extended(self, execution_ids: Iterable[int], sent_at: float) -> None:
        """A heartbeat sent at `sent_at` kept these leases. One that ran out here stays so: the
        attempt is being stopped already (and the answer may come from before a pause)."""
        until = sent_at + self.lease_seconds
        for execution_id in execution_ids:
            lease = self._leases.get(execution_id)
            if lease is not None and lease.expires_at < until and execution_id not in self.ran_out:
                lease.expires_at = until

    def overdue(self) -> list[int]:
        """The attempts whose lease has run out since the last look; they are `ran_out` from now on."""
        now = self.clock()
        found = [
            execution_id
            for execution_id, lease in self._leases.items()
            if lease.expires_at <= now and execution_id not in self.ran_out
        ]
        self.ran_out.update(found)
        return found

    def keep_only(self, execution_ids: Collection[int]) -> None:
        """Forget the ran-out attempts that are not among these (their outcome was written)."""
        if self.ran_out:
            self.ran_out.intersection_update(execution_ids)


class LeaseWatch(Periodic):
    """The worker's one watchdog: every `interval`, and at once when the process wakes from a pause
    (its timer is overdue then), `check` stops the attempts whose lease ran out, even when no
    heartbeat is due. One timer for the worker, none per attempt."""

    name = "lease-watch"

    def __init__(self, interval: float, check: Callable[[], None]) -> None:
        super().__init__(interval)
        self.check = check

    async def tick(self) -> None:
        self.check()
