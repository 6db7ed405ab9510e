"""One exception per Connect code a client meets, grouped by what the caller does about it.

- RetryableError: the server, or the way to it, was the problem; the same call may succeed later.
- RequestError: what was sent was refused; change it before sending it again.
- AuthError: who sent it was refused; authenticate again, or use a token with the right role.
Codes outside the groups (internal, unknown, ...) are plain TaskServiceError.
"""

from __future__ import annotations


class TaskServiceError(Exception):
    """A call failed; `code` is the Connect code's name (not_found, invalid_argument, ...)."""

    code = "unknown"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(f"{code or self.code}: {message}")
        self.message = message
        if code is not None:
            self.code = code


class RetryableError(TaskServiceError):
    """The server, its database or the network failed the call: it may succeed unchanged later."""


class RequestError(TaskServiceError):
    """The server refused what was sent: sending it again unchanged fails again."""


class AuthError(TaskServiceError):
    """The server refused the caller: no token, an unknown one, or one whose role may not do this."""


class InvalidArgument(RequestError):
    """The request broke a rule; the message names the field and the rule."""

    code = "invalid_argument"


class NotFound(RequestError):
    code = "not_found"


class FailedPrecondition(RequestError):
    """The task is not in a status that allows this (retrying a running task, say)."""

    code = "failed_precondition"


class OutOfRange(RequestError):
    code = "out_of_range"


class Unauthenticated(AuthError):
    """No token, or one the server does not know (expired, revoked)."""

    code = "unauthenticated"


class PermissionDenied(AuthError):
    """The token's role may not call this method, or the agent does not hold what it named."""

    code = "permission_denied"


class ResourceExhausted(RetryableError):
    """A limit was hit: a request too large, or an event stream that fell too far behind."""

    code = "resource_exhausted"


class Unavailable(RetryableError):
    """The server (or its database) could not be reached; calls safe to repeat were retried first."""

    code = "unavailable"

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent  # False: the request never left (no connection), so any call may be repeated


class Timeout(RetryableError):
    """No answer in time: a call past its timeout, or `wait()` before the task finished."""

    code = "deadline_exceeded"


_BY_CODE: dict[str, type[TaskServiceError]] = {
    kind.code: kind
    for kind in (
        InvalidArgument, NotFound, FailedPrecondition, OutOfRange, Unauthenticated, PermissionDenied,
        ResourceExhausted, Unavailable, Timeout,
    )
}  # fmt: skip
_GROUP_OF: dict[str, type[TaskServiceError]] = {
    "aborted": RetryableError,
    "already_exists": RequestError,
    "unimplemented": RequestError,
}


def error_for(code: str, message: str) -> TaskServiceError:
    """The exception of a Connect error: its class, else its group's, else TaskServiceError."""
    kind = _BY_CODE.get(code)
    if kind is not None:
        return kind(message)
    return _GROUP_OF.get(code, TaskServiceError)(message, code)
