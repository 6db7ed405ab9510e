"""taskservice: task orchestration on PostgreSQL; this module is its Python surface (loaded lazily)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "AsyncClient",
    "AsyncTaskHandle",
    "AuthError",
    "CallRetry",
    "Client",
    "Cron",
    "DeclaredTask",
    "Every",
    "Execution",
    "FailedPrecondition",
    "HistoryEntry",
    "InvalidArgument",
    "LimitInfo",
    "NewTask",
    "NotFound",
    "OutOfRange",
    "PermanentFailure",
    "PermissionDenied",
    "QueueInfo",
    "RequestError",
    "ResourceExhausted",
    "RetryableError",
    "ScheduleInfo",
    "StepRef",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskEvent",
    "TaskFailed",
    "TaskHandle",
    "TaskList",
    "TaskOptions",
    "TaskServiceError",
    "TaskStatus",
    "TaskType",
    "Timeout",
    "Unauthenticated",
    "Unavailable",
    "WorkerInfo",
    "Workflow",
    "WorkflowInfo",
    "WorkflowStepInfo",
    "container_task",
    "enqueue",
    "enqueue_async",
    "task",
]

# Where each public name lives. Nothing is imported until a name is asked for: `task-cli` imports this
# package on every start and must not pay for the client, the drivers or the plugins.
_HOMES = {
    name: home
    for home, names in {
        "taskservice.client.sync": "Client TaskHandle",
        "taskservice.client.asynchronous": "AsyncClient AsyncTaskHandle",
        "taskservice.client.wire": "CallRetry",
        "taskservice.client.enqueue": "enqueue enqueue_async",
        "taskservice.model": "TaskOptions",
        "taskservice.client.messages": "Execution HistoryEntry LimitInfo NewTask QueueInfo ScheduleInfo Task "
        "TaskEvent TaskList TaskStatus TaskType WorkerInfo WorkflowInfo WorkflowStepInfo",
        "taskservice.client.workflows": "StepRef Workflow",
        "taskservice.protocol.errors": "AuthError FailedPrecondition InvalidArgument NotFound OutOfRange "
        "PermissionDenied RequestError ResourceExhausted RetryableError TaskServiceError Timeout "
        "Unauthenticated Unavailable",
        "taskservice.client.errors": "TaskCancelled TaskFailed",
        "taskservice.plugins": "PermanentFailure",
        "taskservice.client.typed": "DeclaredTask task",
        "taskservice.plugins.context": "TaskContext",
        "taskservice.plugins.declare": "Cron Every",
        "taskservice.plugins.container_types": "container_task",
    }.items()
    for name in names.split()
}

if TYPE_CHECKING:
    from taskservice.client.asynchronous import AsyncClient, AsyncTaskHandle
    from taskservice.client.enqueue import enqueue, enqueue_async
    from taskservice.client.errors import TaskCancelled, TaskFailed
    from taskservice.client.messages import (
        Execution,
        HistoryEntry,
        LimitInfo,
        NewTask,
        QueueInfo,
        ScheduleInfo,
        Task,
        TaskEvent,
        TaskList,
        TaskStatus,
        TaskType,
        WorkerInfo,
        WorkflowInfo,
        WorkflowStepInfo,
    )
    from taskservice.client.sync import Client, TaskHandle
    from taskservice.client.typed import DeclaredTask, task
    from taskservice.client.wire import CallRetry
    from taskservice.client.workflows import StepRef, Workflow
    from taskservice.model import TaskOptions
    from taskservice.plugins import PermanentFailure
    from taskservice.plugins.container_types import container_task
    from taskservice.plugins.context import TaskContext
    from taskservice.plugins.declare import Cron, Every
    from taskservice.protocol.errors import (
        AuthError,
        FailedPrecondition,
        InvalidArgument,
        NotFound,
        OutOfRange,
        PermissionDenied,
        RequestError,
        ResourceExhausted,
        RetryableError,
        TaskServiceError,
        Timeout,
        Unauthenticated,
        Unavailable,
    )


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:  # a renamed one (deprecated, and not cached: every use warns), else AttributeError
        from taskservice.client.renamed import old_name

        return old_name(__name__, name)
    value = getattr(import_module(home), name)
    globals()[name] = value  # once found, an ordinary attribute
    return value


def __dir__() -> list[str]:
    # The public names and the module's dunders; not what this file imports for itself.
    return sorted({*(name for name in globals() if name.startswith("__")), *__all__})
