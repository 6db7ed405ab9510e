"""Leader election among the controller's replicas: a coordination.k8s.io/v1 Lease
(`taskservice-controller`) held through the official client's `kubernetes.leaderelection`, so that
several replicas act once. Only the leader watches and acts; one that fails to renew stops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

LEASE_NAME = "taskservice-controller"


def timings(lease_seconds: int) -> tuple[int, int, int]:
    """(lease duration, renew deadline, retry period), in whole seconds as the client's Lease lock
    stores them, within its rules: retry >= 1, renew > 1.2 * retry, lease > renew."""
    renew = max(2, lease_seconds * 2 // 3)
    retry = max(1, lease_seconds // 5)
    return max(lease_seconds, renew + 1), renew, retry


class Election:
    """Runs `lead()` (blocking while it leads) once this candidate holds the Lease; `lost()` when it
    could not renew it. In a daemon thread: the client's loop sleeps and never returns while it leads."""

    def __init__(
        self,
        namespace: str,
        identity: str,
        lease_seconds: int,
        lead: Callable[[], None],
        lost: Callable[[], None],
    ) -> None:
        self.namespace, self.identity, self.lease_seconds = namespace, identity, lease_seconds
        self.lead, self.lost = lead, lost
        self.failure: BaseException | None = None  # what ended the election (the API unreachable, say)
        self.thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._elect()
        except BaseException as error:
            self.failure = error
            self.lost()

    def _elect(self) -> None:
        from kubernetes.leaderelection import electionconfig, leaderelection
        from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

        # The client logs each renewal and each look at another's Lease at INFO: its warnings are enough
        # (the controller says itself when it leads and when it stops).
        logging.getLogger("leaderelection").setLevel(logging.WARNING)
        lease, renew, retry = timings(self.lease_seconds)
        lock = LeaseLock(LEASE_NAME, self.namespace, self.identity)
        config = electionconfig.Config(lock, lease, renew, retry, self.lead, self.lost)
        leaderelection.LeaderElection(config).run()
