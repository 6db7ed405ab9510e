"""The only module that speaks SQL: tasks, history, executions, workers, and the queue."""

from taskservice.store.store import (
    NOTIFY_CHANNEL,
    OPERATOR_TARGETS,
    Claim,
    HistoryEvent,
    Pool,
    Store,
    TaskDefaults,
    TaskNotFound,
    WorkerInfo,
)

__all__ = [
    "NOTIFY_CHANNEL",
    "OPERATOR_TARGETS",
    "Claim",
    "HistoryEvent",
    "Pool",
    "Store",
    "TaskDefaults",
    "TaskNotFound",
    "WorkerInfo",
]
