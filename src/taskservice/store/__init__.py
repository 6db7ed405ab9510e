"""The only module that speaks SQL: tasks, history, executions, workers, the queue, and credentials."""

from taskservice.store.credentials import (
    CREDENTIALS_CHANNEL,
    Credentials,
    Holder,
    TokenNameTaken,
    TokenNotFound,
    TokenRecord,
)
from taskservice.store.limits import Limit, LimitWait
from taskservice.store.maintenance import HOT_TABLES, TableVacuum, Vacuumed, VacuumLimits, VacuumState
from taskservice.store.retention import RetentionPolicy
from taskservice.store.schedules import ScheduleNameTaken, ScheduleNotFound
from taskservice.store.stats import Throughput, TypeStats, WorkerAttempt, WorkerNotFound
from taskservice.store.store import (
    AttemptFigures,
    Claim,
    HistoryEvent,
    IdAboveLimit,
    NotHeld,
    Pause,
    Pool,
    ReportNotHeld,
    Store,
    TaskDefaults,
    TaskNotFound,
    WorkerIdTaken,
    WorkerInfo,
)
from taskservice.store.waker import NOTIFY_CHANNEL
from taskservice.store.workflows import StepOfWorkflow, WorkflowNotFound, WorkflowUnfinished

__all__ = [
    "CREDENTIALS_CHANNEL",
    "HOT_TABLES",
    "NOTIFY_CHANNEL",
    "AttemptFigures",
    "Claim",
    "Credentials",
    "HistoryEvent",
    "Holder",
    "IdAboveLimit",
    "Limit",
    "LimitWait",
    "NotHeld",
    "Pause",
    "Pool",
    "ReportNotHeld",
    "RetentionPolicy",
    "ScheduleNameTaken",
    "ScheduleNotFound",
    "StepOfWorkflow",
    "Store",
    "TableVacuum",
    "TaskDefaults",
    "TaskNotFound",
    "Throughput",
    "TokenNameTaken",
    "TokenNotFound",
    "TokenRecord",
    "TypeStats",
    "VacuumLimits",
    "VacuumState",
    "Vacuumed",
    "WorkerAttempt",
    "WorkerIdTaken",
    "WorkerInfo",
    "WorkerNotFound",
    "WorkflowNotFound",
    "WorkflowUnfinished",
]
