"""How the Python clients repeat a call that failed `unavailable`, and tell a user their token went
unchecked. The protocol itself is taskservice.protocol's."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskservice import tracing


@dataclass(frozen=True)
class CallRetry:
    """Backoff for calls that failed `unavailable` and are safe to send again."""

    attempts: int = 4  # in all, the first one included
    base_seconds: float = 0.1
    max_seconds: float = 2.0

    def delays(self) -> Iterator[float]:
        """The pause before each repeat: exponential, capped, with full jitter (callers spread out)."""
        for n in range(self.attempts - 1):
            yield random.uniform(0, min(self.max_seconds, self.base_seconds * 2**n))


def traced(head: bytes) -> bytes:
    """A call's header lines with the caller's W3C `traceparent` when a span of its OpenTelemetry is
    current (opentelemetry imported): the server's spans, and the task it creates, continue its trace."""
    traceparent = tracing.current_traceparent()
    return head if traceparent is None else head + b"traceparent: %s\r\n" % traceparent.encode()


def warn_token_ignored(address: str) -> None:
    """Tell the user, once per client, that the server at `address` did not check their token."""
    import warnings

    warnings.warn(
        f"the server at {address} runs with auth off (AUTH_REQUIRED=false): the token this client "
        "sends is not checked there",
        UserWarning,
        stacklevel=4,
    )


if not TYPE_CHECKING:  # type checkers see only the current names

    def __getattr__(name: str) -> Any:
        from taskservice.client.renamed import old_name

        return old_name(__name__, name)
