"""The public surface: `taskservice.__all__` is pinned, and every name in it resolves (as httpx tests)."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module

import pytest

import taskservice
from taskservice.client import messages
from taskservice.model import TASK_STATUSES, Status

PUBLIC = [
    "AsyncClient", "AsyncTaskHandle", "AuthError", "CallRetry", "Client", "Cron", "DeclaredTask", "Every",
    "Execution", "FailedPrecondition", "HistoryEntry", "InvalidArgument", "LimitInfo", "NewTask", "NotFound",
    "OutOfRange", "PermanentFailure", "PermissionDenied", "QueueInfo", "RequestError", "ResourceExhausted",
    "RetryableError", "ScheduleInfo", "StepRef", "Task", "TaskCancelled", "TaskContext", "TaskEvent",
    "TaskFailed", "TaskHandle", "TaskList", "TaskOptions", "TaskServiceError", "TaskStatus", "TaskType",
    "Timeout", "Unauthenticated", "Unavailable", "WorkerInfo", "Workflow", "WorkflowInfo",
    "WorkflowStepInfo", "container_task", "enqueue", "enqueue_async", "task",
]  # fmt: skip

# Renamed public names: the old ones work one release more, warning with the new name.
RENAMED = [
    ("taskservice", "Worker", "WorkerInfo"),
    ("taskservice", "Retry", "CallRetry"),
    ("taskservice.client.messages", "Worker", "WorkerInfo"),
    ("taskservice.client.wire", "Retry", "CallRetry"),
]


def test_all_is_pinned() -> None:
    assert taskservice.__all__ == PUBLIC
    assert sorted(taskservice.__all__) == taskservice.__all__


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(taskservice, name)
    assert value is not None
    assert name in dir(taskservice)
    assert callable(value)  # every public name is a class or a function


def test_dir_lists_the_public_names_and_dunders_only() -> None:
    listed = dir(taskservice)
    assert [name for name in listed if not name.startswith("__")] == PUBLIC
    assert "__doc__" in listed
    for private in ("Any", "TYPE_CHECKING", "annotations", "import_module", "_HOMES"):
        assert private not in listed


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        taskservice.no_such_thing  # noqa: B018


def test_importing_the_package_loads_nothing_else() -> None:
    """`task-cli` imports the package on every start: the client, drivers and plugins must stay unloaded."""
    code = "import sys, taskservice; print(sorted(m for m in sys.modules if m.startswith('taskservice')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['taskservice']"


GROUPS = {
    "invalid_argument": (taskservice.InvalidArgument, taskservice.RequestError),
    "not_found": (taskservice.NotFound, taskservice.RequestError),
    "failed_precondition": (taskservice.FailedPrecondition, taskservice.RequestError),
    "out_of_range": (taskservice.OutOfRange, taskservice.RequestError),
    "already_exists": (taskservice.RequestError, taskservice.RequestError),
    "unauthenticated": (taskservice.Unauthenticated, taskservice.AuthError),
    "permission_denied": (taskservice.PermissionDenied, taskservice.AuthError),
    "unavailable": (taskservice.Unavailable, taskservice.RetryableError),
    "deadline_exceeded": (taskservice.Timeout, taskservice.RetryableError),
    "resource_exhausted": (taskservice.ResourceExhausted, taskservice.RetryableError),
    "aborted": (taskservice.RetryableError, taskservice.RetryableError),
    "internal": (taskservice.TaskServiceError, taskservice.TaskServiceError),
}


@pytest.mark.parametrize("code", GROUPS)
def test_each_connect_code_has_one_class_in_the_group_of_what_a_caller_does(code: str) -> None:
    from taskservice.protocol.errors import error_for
    from taskservice.rules.transient import is_transient

    error = error_for(code, "why")
    kind, group = GROUPS[code]
    assert type(error) is kind
    assert isinstance(error, group)
    assert error.code == code
    assert str(error) == f"{code}: why"
    groups = (taskservice.RequestError, taskservice.AuthError, taskservice.RetryableError)
    assert sum(isinstance(error, g) for g in groups) == (0 if code == "internal" else 1)
    # An agent's call is tried again exactly when the server, not what was sent, was the problem.
    assert is_transient(error) == (group is taskservice.RetryableError or code == "internal")


@pytest.mark.parametrize(("module", "old", "new"), RENAMED)
def test_a_renamed_name_still_works_with_a_deprecation_warning(module: str, old: str, new: str) -> None:
    home = import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"^{module}\.{old} is deprecated: use {module}\.{new} "):
        value = getattr(home, old)
    assert value is getattr(home, new)
    assert old not in dir(home)
    assert old not in getattr(home, "__all__", [])
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is deprecated"):  # every use warns
        getattr(home, old)


def test_the_old_names_import_with_a_warning_that_points_at_the_importer() -> None:
    with pytest.warns(DeprecationWarning, match="use taskservice.client.messages.WorkerInfo") as caught:
        from taskservice.client.messages import Worker  # type: ignore[attr-defined]
    assert Worker is messages.WorkerInfo
    assert caught[0].filename == __file__
    with pytest.warns(DeprecationWarning, match="use taskservice.CallRetry") as caught:
        assert taskservice.Retry is taskservice.CallRetry


def test_an_unknown_name_in_a_module_with_renamed_ones_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"'taskservice\.client\.messages' has no attribute 'Nothing'"):
        messages.Nothing  # type: ignore[attr-defined]  # noqa: B018


def test_task_status_holds_the_statuses_of_tasks_only() -> None:
    """The public TaskStatus has no filter values (UNKNOWN, ALL), and its members are model.Status's
    numbers: each compares equal to (and hashes as) its model.Status twin."""
    assert [s.name for s in taskservice.TaskStatus] == [
        "QUEUED", "RUNNING", "FAILED", "SUCCEEDED", "RETRYING", "CANCELLED", "WAITING"
    ]  # fmt: skip
    assert not hasattr(taskservice.TaskStatus, "UNKNOWN")
    assert not hasattr(taskservice.TaskStatus, "ALL")
    for status in taskservice.TaskStatus:
        twin: object = Status[status.name]  # (mypy holds two enums apart; Python compares their ints)
        assert status == twin
        assert twin in {status}  # and hashes alike: a dict keyed by one is read by the other
    assert [int(s) for s in taskservice.TaskStatus] == [int(s) for s in TASK_STATUSES]
    assert {s for s in taskservice.TaskStatus if s.finished} == {
        taskservice.TaskStatus.SUCCEEDED, taskservice.TaskStatus.FAILED, taskservice.TaskStatus.CANCELLED
    }  # fmt: skip
