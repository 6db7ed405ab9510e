"""How an attempt run as a Job ended, read from the Job's and its Pod's status, and the transition our
retry policy makes of it: pure, no I/O.

SUCCEEDED when the Job completes (its result: the tail of the container's log). Otherwise the attempt
failed, and `model.attempt_failed` decides RETRYING (after our backoff) or FAILED, as it does for a
plugin that raised: a non-zero exit code, OOMKilled, an image that cannot be pulled, the deadline
(the task's timeout, the Job's activeDeadlineSeconds), a Pod evicted or a Job deleted under us.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskservice import model
from taskservice.kubernetes import resources
from taskservice.model import Outcome, RetryPolicy, Status, Transition

LOG_TAIL_CHARS = 2000
# Waiting reasons that mean the container will not start by itself: the attempt fails now rather than
# wait out its deadline (ImagePullBackOff: the kubelet has failed to pull at least once already).
START_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
DEADLINE = "DeadlineExceeded"


@dataclass(frozen=True)
class AttemptEnd:
    """How an attempt's container ended: `reason` as Kubernetes says it (Completed, Error, OOMKilled,
    DeadlineExceeded, ErrImagePull...), its exit code when it ran, a message, the tail of its log."""

    succeeded: bool
    reason: str = ""
    exit_code: int | None = None
    message: str = ""
    log: str = ""

    def describe(self) -> str:
        """One line: what ended the attempt ("exit code 3 (Error)", "OOMKilled (exit code 137)")."""
        if self.exit_code is not None and self.reason in ("", "Error", "Completed"):
            what = f"exit code {self.exit_code}" + (f" ({self.reason})" if self.reason else "")
        elif self.exit_code is not None:
            what = f"{self.reason} (exit code {self.exit_code})"
        else:
            what = self.reason or "failed"
        return f"{what}: {self.message}" if self.message else what


def _get(data: Mapping[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in _get(job, "status", "conditions") or ():
        if condition.get("type") == kind and str(condition.get("status")) == "True":
            return condition  # type: ignore[no-any-return]
    return None


def container_state(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The state of the Pod's task container ({} before it has one)."""
    for status in _get(pod, "status", "containerStatuses") or ():
        if status.get("name") == resources.CONTAINER:
            return status.get("state") or {}
    return {}


def started(pod: Mapping[str, Any] | None) -> bool:
    """Whether the Pod's container has started (the attempt is RUNNING in the cluster)."""
    state = container_state(pod)
    return _get(pod, "status", "phase") == "Running" or "running" in state or "terminated" in state


def start_failure(pod: Mapping[str, Any] | None) -> AttemptEnd | None:
    """The end of an attempt whose container cannot start (its image cannot be pulled, say)."""
    waiting = container_state(pod).get("waiting") or {}
    if waiting.get("reason") in START_FAILURES:
        return AttemptEnd(False, waiting["reason"], None, str(waiting.get("message") or ""))
    return None


def job_end(job: Mapping[str, Any], pod: Mapping[str, Any] | None, log: str = "") -> AttemptEnd | None:
    """How the Job's attempt ended (None: it has not yet), from its conditions and its Pod's container."""
    terminated = container_state(pod).get("terminated") or {}
    exit_code = terminated.get("exitCode")
    code = int(exit_code) if exit_code is not None else None
    tail = log[-LOG_TAIL_CHARS:]
    if _condition(job, "Complete") is not None:
        return AttemptEnd(True, "Completed", code if code is not None else 0, "", tail)
    failed = _condition(job, "Failed")
    if failed is None:
        return None
    if failed.get("reason") == DEADLINE:
        return AttemptEnd(False, DEADLINE, None, str(failed.get("message") or ""), tail)
    if terminated:
        reason = str(terminated.get("reason") or "Error")
        return AttemptEnd(False, reason, code, str(terminated.get("message") or ""), tail)
    pod_reason = _get(pod, "status", "reason")  # Evicted, say: the container never ended by itself
    if pod_reason:
        return AttemptEnd(False, str(pod_reason), None, str(_get(pod, "status", "message") or ""), tail)
    return AttemptEnd(
        False, str(failed.get("reason") or "Failed"), None, str(failed.get("message") or ""), tail
    )


def attempt_task(resource: Mapping[str, Any]) -> model.Task:
    """What the retry policy needs of the task, as the resource says it (spec and annotations)."""
    spec, notes = resource["spec"], _get(resource, "metadata", "annotations") or {}
    epoch = datetime.fromtimestamp(0, UTC)
    return model.Task(
        id=int(spec["taskId"]), name=str(spec.get("name", "")), type=str(spec.get("type", "")),
        status=Status.RUNNING, payload={}, retries=int(spec.get("retries") or 0),
        max_retries=int(spec.get("maxRetries") or 0), priority=0, description="",
        timeout_seconds=float(spec.get("timeoutSeconds") or 0),
        attempts=int(notes.get(resources.ATTEMPT_NUMBER) or 0),
        created_at=epoch, updated_at=epoch, run_at=epoch, lease_owner=str(spec.get("agentId", "")),
        execution_id=int(spec["attempt"]), lost_leases=int(notes.get(resources.LOST_LEASES) or 0),
    )  # fmt: skip


def _last_line(log: str) -> str:
    lines = [line for line in log.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def transition(resource: Mapping[str, Any], end: AttemptEnd, policy: RetryPolicy) -> Transition:
    """What the attempt's end does to the task: SUCCEEDED with the log's tail as its result, else
    `model.attempt_failed` (RETRYING after our backoff while retries are left, else FAILED) with what
    ended it and the log's last line as the error, and the log's tail as the traceback."""
    task = attempt_task(resource)
    attempt = int(resource["spec"]["attempt"])
    if end.succeeded:
        return model.succeeded(task, attempt, end.log)
    last = _last_line(end.log)
    traceback = end.log or None
    if end.reason == DEADLINE:
        error = f"no result after {task.timeout_seconds:g}s" + (f"; log: {last}" if last else "")
        return model.attempt_failed(
            task, attempt, "Task timed out", model.cut_error(error), policy,
            outcome=Outcome.TIMED_OUT, traceback=traceback,
        )  # fmt: skip
    error = end.describe() + (f"; log: {last}" if last else "")
    return model.attempt_failed(
        task, attempt, "Task failed", model.cut_error(error), policy, traceback=traceback
    )


def policy_of(resource: Mapping[str, Any], default: RetryPolicy) -> RetryPolicy:
    """The type's retry policy: its first delay (spec.backoffSeconds; 0: the default's)."""
    base = float(_get(resource, "spec", "backoffSeconds") or 0)
    return RetryPolicy(base, default.cap, default.max_lost_leases) if base > 0 else default


def phase_of(t: Transition) -> str:
    """The resource's phase for a reported transition: it mirrors the task's status."""
    return {Status.SUCCEEDED: "Succeeded", Status.CANCELLED: "Cancelled"}.get(t.status, "Failed")


def end_status(end: AttemptEnd, t: Transition, now: datetime) -> dict[str, Any]:
    """The resource status of a finished attempt (not yet reported)."""
    status: dict[str, Any] = {
        "phase": phase_of(t), "reason": end.reason, "message": end.message,
        "finishedAt": rfc3339(now), "reported": False,
    }  # fmt: skip
    if end.exit_code is not None:
        status["exitCode"] = end.exit_code
    return status


def end_of_status(status: Mapping[str, Any]) -> AttemptEnd:
    """The end a finished but unreported status records (its Job gone: no log to read again)."""
    code = status.get("exitCode")
    return AttemptEnd(
        status.get("phase") == "Succeeded", str(status.get("reason") or ""),
        int(code) if code is not None else None, str(status.get("message") or ""),
    )  # fmt: skip


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
