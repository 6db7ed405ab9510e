"""Roles, rights, and the one table of which right each RPC and route needs. Pure: no I/O.

Every request is checked against this table in one place (api/access.py); an RPC missing from it is
refused to everyone, and a test walks the served services so a new RPC cannot ship without a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Right(StrEnum):
    """What a call needs."""

    READ = "read"  # tasks, payloads, history, attempts and results, workers, counts, events, metrics
    TASK_TYPES = "task_types"  # the names of the task types (what an agent needs to start)
    WRITE = "write"  # create, cancel and retry tasks (one or many)
    # Delete tasks with their history and attempts (DeleteTasks): the one change that cannot be
    # undone, and that erases the record of what happened, so apart from WRITE.
    DELETE = "delete"
    SET_STATUS = "set_status"  # force any task into any operator status (UpdateTaskStatus)
    MANAGE_TOKENS = "manage_tokens"  # create, list and revoke API tokens
    IDENTIFY = "identify"  # ask who you are
    # Take work from the dispatch stream, heartbeat it and report its outcomes (agents); also
    # UpdateTaskStatus, but without SET_STATUS only for a task running an attempt of one's own agent
    # (the original's agent reports through it; checked by the handler, which knows the attempt).
    RUN = "run"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    AGENT = "agent"


PUBLIC = None  # needs no credentials at all

ROLE_RIGHTS: dict[Role, frozenset[Right]] = {
    Role.VIEWER: frozenset({Right.READ, Right.TASK_TYPES, Right.IDENTIFY}),
    Role.OPERATOR: frozenset({Right.READ, Right.TASK_TYPES, Right.IDENTIFY, Right.WRITE}),
    Role.ADMIN: frozenset(Right),
    # A worker or remote agent: nothing that reads or changes other people's tasks.
    Role.AGENT: frozenset({Right.TASK_TYPES, Right.IDENTIFY, Right.RUN}),
}

TASKS = "/cloud.v1.TaskManagementService/"
AUTH = "/cloud.v1.AuthService/"
HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection.v1.ServerReflection/"
REFLECTION_ALPHA = "/grpc.reflection.v1alpha.ServerReflection/"

# Every RPC, by path.
RPC_RIGHTS: dict[str, Right | None] = {
    f"{TASKS}CreateTask": Right.WRITE,
    f"{TASKS}GetTask": Right.READ,
    f"{TASKS}ListTasks": Right.READ,
    f"{TASKS}GetTaskHistory": Right.READ,
    f"{TASKS}UpdateTaskStatus": Right.RUN,
    f"{TASKS}GetStatus": Right.READ,
    f"{TASKS}CreateTasks": Right.WRITE,
    f"{TASKS}CancelTask": Right.WRITE,
    f"{TASKS}RetryTask": Right.WRITE,
    f"{TASKS}CancelTasks": Right.WRITE,
    f"{TASKS}RetryTasks": Right.WRITE,
    f"{TASKS}DeleteTasks": Right.DELETE,
    f"{TASKS}ListTaskExecutions": Right.READ,
    f"{TASKS}ListWorkers": Right.READ,
    f"{TASKS}ListTaskTypes": Right.TASK_TYPES,
    f"{TASKS}WatchEvents": Right.READ,
    f"{TASKS}PauseQueue": Right.WRITE,
    f"{TASKS}ResumeQueue": Right.WRITE,
    f"{TASKS}ListQueues": Right.READ,
    f"{TASKS}SetLimit": Right.WRITE,
    f"{TASKS}ListLimits": Right.READ,
    f"{TASKS}ResetLimit": Right.WRITE,
    f"{TASKS}CreateSchedule": Right.WRITE,
    f"{TASKS}GetSchedule": Right.READ,
    f"{TASKS}ListSchedules": Right.READ,
    f"{TASKS}UpdateSchedule": Right.WRITE,
    f"{TASKS}DeleteSchedule": Right.WRITE,
    f"{TASKS}TriggerSchedule": Right.WRITE,
    f"{TASKS}CreateWorkflow": Right.WRITE,
    f"{TASKS}GetWorkflow": Right.READ,
    f"{TASKS}ListWorkflows": Right.READ,
    f"{TASKS}CancelWorkflow": Right.WRITE,
    f"{TASKS}RetryWorkflow": Right.WRITE,
    f"{TASKS}GetTypeStats": Right.READ,
    f"{TASKS}GetWorker": Right.READ,
    f"{TASKS}Heartbeat": Right.RUN,
    f"{TASKS}PullEvents": Right.RUN,
    f"{TASKS}ReportOutcomes": Right.RUN,
    f"{AUTH}WhoAmI": Right.IDENTIFY,
    f"{AUTH}CreateToken": Right.MANAGE_TOKENS,
    f"{AUTH}ListTokens": Right.MANAGE_TOKENS,
    f"{AUTH}RevokeToken": Right.MANAGE_TOKENS,
    # Like /readyz: probes (kubelet's gRPC probe included) carry no credentials, and it tells nothing.
    f"{HEALTH}Check": PUBLIC,
    # The schema only, which is no secret; but a door that does work asks for a key when auth is on,
    # and every role has one (grpcurl -H 'authorization: Bearer tsk_...').
    f"{REFLECTION}ServerReflectionInfo": Right.IDENTIFY,
    f"{REFLECTION_ALPHA}ServerReflectionInfo": Right.IDENTIFY,
}
RPC_PREFIXES = (TASKS, AUTH, HEALTH, REFLECTION, REFLECTION_ALPHA)

# The other routes: health and the dashboard's code are public; what shows data is not.
ROUTE_RIGHTS: dict[str, Right | None] = {
    "/healthz": PUBLIC,
    "/readyz": PUBLIC,
    "/metrics": Right.READ,
    "/": Right.READ,
    "/retention": Right.READ,  # what the dashboard says is kept
}
PUBLIC_PREFIXES = ("/static/", "/auth/")  # the dashboard's files, and logging in and out


@dataclass(frozen=True)
class Rule:
    """What a path needs: nothing (public), credentials with `right`, or refusal (an unknown RPC)."""

    public: bool
    right: Right | None = None
    known: bool = True


def rule(path: str, *, metrics_public: bool = False) -> Rule:
    if path in RPC_RIGHTS or path in ROUTE_RIGHTS:
        right = RPC_RIGHTS.get(path, ROUTE_RIGHTS.get(path))
        if path == "/metrics" and metrics_public:
            right = PUBLIC
        return Rule(public=right is None, right=right)
    if path.startswith(RPC_PREFIXES):
        return Rule(public=False, known=False)  # not in the table: nobody may call it
    if path.startswith(PUBLIC_PREFIXES):
        return Rule(public=True)
    return Rule(public=False, right=Right.IDENTIFY)  # anything else (a 404 to be): credentials first


def roles_with(right: Right) -> list[Role]:
    return [role for role, rights in ROLE_RIGHTS.items() if right in rights]


def may(role: str, right: Right) -> bool:
    try:
        return right in ROLE_RIGHTS[Role(role)]
    except ValueError:
        return False
