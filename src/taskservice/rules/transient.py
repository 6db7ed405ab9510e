"""Which failures are worth trying again (the database or the server was the problem) and which not."""

from __future__ import annotations

import asyncpg

from taskservice.protocol.errors import RetryableError, TaskServiceError

# SQLSTATE classes that say the database, not the outcome, was the problem: try the same again later.
# 08 connection exception, 40 transaction rollback (deadlock, serialization), 53 insufficient
# resources, 57 operator intervention, 58 system error.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
# Beside the retryable ones, the Connect codes that say the server failed, not what was sent.
SERVER_FAILED_CODES = frozenset({"internal"})


def is_transient(error: BaseException) -> bool:
    """Whether a failed call may succeed unchanged later (else what was sent was refused, or a bug).

    An agent's calls (worker/agent.py) are TaskServiceErrors: transient when retryable or the server's
    own failure, else a refusal of what was sent.
    """
    if isinstance(error, TaskServiceError):
        return isinstance(error, RetryableError) or error.code in SERVER_FAILED_CODES
    if isinstance(error, asyncpg.PostgresError):
        return str(error.sqlstate or "")[:2] in TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, asyncpg.DataError | TypeError | ValueError):  # refused before it was sent
        return False
    return isinstance(error, OSError | asyncpg.InterfaceError)
