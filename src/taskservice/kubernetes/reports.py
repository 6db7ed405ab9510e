"""The controller's calls to the API server, with the agent's token and in its name: Heartbeat (is this
attempt still the current one?) and ReportOutcomes (how it ended), both fenced by the attempt."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from taskservice import model
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.model import Transition
from taskservice.protocol import wire
from taskservice.protocol.sync_transport import SyncTransport
from taskservice.worker.agent import outcome_of


class ServerLink:
    """Blocking calls to the API server at `address` (safe to share between threads)."""

    def __init__(self, address: str, token: str, timeout: float = 30.0) -> None:
        self.transport = SyncTransport(address, timeout)
        self._head = self.transport.address.head(
            wire.headers(token, timeout, user_agent="task-cli-controller")
        )

    def _call(self, method: str, request: pb.HeartbeatRequest | pb.ReportOutcomesRequest) -> bytes:
        return self.transport.post(wire.SERVICE_PATH + method, self._head, request.SerializeToString())

    def keep(self, agent_id: str, attempts: Sequence[int]) -> set[int]:
        """Extend the leases of `attempts`, whose Jobs run, in the name of the agent that created them
        (without that agent being heard: `leases_only`); those no longer current (cancelled, reaped,
        settled meanwhile), which nothing extends."""
        lost: set[int] = set()
        for start in range(0, len(attempts), model.AGENT_HELD_MAX):
            request = pb.HeartbeatRequest(
                timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), uuid=agent_id,
                held=attempts[start : start + model.AGENT_HELD_MAX], leases_only=True,
            )  # fmt: skip
            lost.update(wire.decode(self._call("Heartbeat", request), pb.HeartbeatResponse).lost)
        return lost

    def still_current(self, agent_id: str, attempt: int) -> bool:
        """Whether the attempt is still the task's current one (its lease extended if so)."""
        return not self.keep(agent_id, [attempt])

    def report(self, agent_id: str, transition: Transition) -> bool:
        """Report how the attempt ended; False when the server refused it (the attempt is no longer
        current: nothing changed). An AuthError when the caller is not the one that registered the
        agent (the controller's token is not the agent's)."""
        request = pb.ReportOutcomesRequest(agent_id=agent_id, outcomes=[outcome_of(transition)])
        answer = wire.decode(self._call("ReportOutcomes", request), pb.ReportOutcomesResponse)
        return transition.execution_id not in answer.refused

    def close(self) -> None:
        self.transport.close()
