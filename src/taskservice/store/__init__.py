"""The only module that speaks SQL: tasks, history, executions, workers, the queue, and credentials."""

from taskservice.store.credentials import (
    CREDENTIALS_CHANNEL,
    Credentials,
    Holder,
    TokenNameTaken,
    TokenNotFound,
    TokenRecord,
)
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
    "CREDENTIALS_CHANNEL",
    "NOTIFY_CHANNEL",
    "OPERATOR_TARGETS",
    "Claim",
    "Credentials",
    "HistoryEvent",
    "Holder",
    "Pool",
    "Store",
    "TaskDefaults",
    "TaskNotFound",
    "TokenNameTaken",
    "TokenNotFound",
    "TokenRecord",
    "WorkerInfo",
]
