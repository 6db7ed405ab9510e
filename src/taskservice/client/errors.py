"""The client's exceptions: one per Connect code it meets, plus how a waited-for task ended."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskservice.client.messages import Task


class TaskServiceError(Exception):
    """A call failed; `code` is the Connect code's name (not_found, invalid_argument, ...)."""

    code = "unknown"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(f"{code or self.code}: {message}")
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(TaskServiceError):
    """The request broke a rule; the message names the field and the rule."""

    code = "invalid_argument"


class NotFound(TaskServiceError):
    code = "not_found"


class FailedPrecondition(TaskServiceError):
    """The task is not in a status that allows this (retrying a running task, say)."""

    code = "failed_precondition"


class Unauthenticated(TaskServiceError):
    """No token, or one the server does not know (expired, revoked)."""

    code = "unauthenticated"


class PermissionDenied(TaskServiceError):
    """The token's role may not call this method."""

    code = "permission_denied"


class ResourceExhausted(TaskServiceError):
    """A limit was hit: a request too large, or an event stream that fell too far behind."""

    code = "resource_exhausted"


class OutOfRange(TaskServiceError):
    code = "out_of_range"


class Unavailable(TaskServiceError):
    """The server (or its database) could not be reached; calls safe to repeat were retried first."""

    code = "unavailable"

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent  # False: the request never left (no connection), so any call may be repeated


class Timeout(TaskServiceError):
    """No answer in time: a call past its timeout, or `wait()` before the task finished."""

    code = "deadline_exceeded"


class TaskFailed(TaskServiceError):
    """`wait()`/`result()` on a task that ended FAILED.

    `error` is its last attempt's error in one line (`NoSuchCustomer: nobody`); `traceback` that
    attempt's traceback, from the worker that ran it ("" when there is none: a timeout, say).
    """

    code = "task_failed"

    def __init__(self, task: Task, error: str, traceback: str = "") -> None:
        super().__init__(f"task {task.id} failed: {error}")
        self.task, self.error, self.traceback = task, error, traceback


class TaskCancelled(TaskServiceError):
    """`wait()`/`result()` on a task that was cancelled."""

    code = "task_cancelled"

    def __init__(self, task: Task) -> None:
        super().__init__(f"task {task.id} was cancelled")
        self.task = task


_BY_CODE: dict[str, type[TaskServiceError]] = {
    kind.code: kind
    for kind in (
        InvalidArgument, NotFound, FailedPrecondition, Unauthenticated, PermissionDenied,
        ResourceExhausted, OutOfRange, Unavailable, Timeout,
    )
}  # fmt: skip


def error_for(code: str, message: str) -> TaskServiceError:
    """The exception of a Connect error; codes without a class of their own are TaskServiceError."""
    kind = _BY_CODE.get(code)
    return kind(message) if kind is not None else TaskServiceError(message, code)
