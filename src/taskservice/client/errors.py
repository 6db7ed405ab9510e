"""How a waited-for task ended, when not with a result: TaskFailed, TaskCancelled. The errors of the
calls themselves are taskservice.protocol.errors'."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskservice.protocol.errors import TaskServiceError

if TYPE_CHECKING:
    from taskservice.client.messages import Task


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
