"""The only module that speaks SQL: tasks, history, executions, workers, and the queue."""

from taskservice.store.retention import RetentionPolicy
from taskservice.store.store import (
    OPERATOR_TARGETS,
    Claim,
    HistoryEvent,
    IdAboveLimit,
    Pool,
    Store,
    TaskDefaults,
    TaskNotFound,
    WorkerInfo,
)
from taskservice.store.waker import NOTIFY_CHANNEL

__all__ = [
    "NOTIFY_CHANNEL",
    "OPERATOR_TARGETS",
    "Claim",
    "HistoryEvent",
    "IdAboveLimit",
    "Pool",
    "RetentionPolicy",
    "Store",
    "TaskDefaults",
    "TaskNotFound",
    "WorkerInfo",
]
