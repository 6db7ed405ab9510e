"""The controller: runs each Task resource's attempt as a Job and reports how it ended, through the API,
fenced by the attempt.

`reconcile(name)` looks at one resource, its Jobs and its attempt's Pod, and takes the next step; it
is idempotent, so a restarted controller (or a repeated event) does nothing twice: Job names are
deterministic (409 AlreadyExists means the attempt runs), and an outcome is reported only while the
resource's status says it was not (`reported`). The order of each step is what makes that hold: the
Job is created before the status names it, and the status records the end before the report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from taskservice.kubernetes import outcomes, resources
from taskservice.kubernetes.kube import Kube
from taskservice.kubernetes.outcomes import AttemptEnd
from taskservice.kubernetes.reports import ServerLink
from taskservice.model import RetryPolicy

log = structlog.get_logger(__name__)

NOT_CURRENT = "the attempt is no longer current (the task was cancelled, or its lease ran out)"


def _now() -> datetime:
    return datetime.now(UTC)


def _current_status(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    """The resource's status if it is of its current attempt; {} before that attempt has one (the
    status is still an older attempt's)."""
    status: Mapping[str, Any] = resource.get("status") or {}
    return status if int(status.get("attempt") or 0) == int(resource["spec"]["attempt"]) else {}


class Controller:
    """Reconciles Task resources of one namespace. `reconcile` returns seconds after which to look at
    the resource again (its retention, say), or None."""

    def __init__(
        self,
        kube: Kube,
        link: ServerLink,
        policy: RetryPolicy,
        retention_seconds: float,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.kube, self.link, self.policy = kube, link, policy
        self.retention_seconds, self.clock = retention_seconds, clock

    def reconcile(self, name: str) -> float | None:
        task_id = resources.task_id_of(name)
        if task_id is None:
            return None
        resource = self.kube.get_task(name)
        jobs = self.kube.jobs_of(task_id)
        if resource is None or resource["metadata"].get("deletionTimestamp"):
            # Gone (the agent deleted it: cancelled, or replaced by a newer attempt): so is its Job.
            for orphan in jobs:
                self._delete_job(orphan["metadata"]["name"], "its Task resource is gone")
            return None
        current = self._job_name(resource)
        job: dict[str, Any] | None = None
        for found in jobs:  # an older attempt's Job (the resource was updated, or replaced without GC)
            if found["metadata"]["name"] == current:
                job = found
            else:
                self._delete_job(found["metadata"]["name"], "a newer attempt replaced it")
        return self._step(resource, _current_status(resource), job)

    def _step(
        self, resource: dict[str, Any], status: Mapping[str, Any], job: dict[str, Any] | None
    ) -> float | None:
        """The next step of the resource's current attempt (`status`: its, or {} before it has one)."""
        task_id, attempt = int(resource["spec"]["taskId"]), int(resource["spec"]["attempt"])
        phase = status.get("phase") or ""
        if phase in resources.FINISHED_PHASES:
            if status.get("reported"):
                return self._retain(resource, status, job)
            end = self._end(job, attempt, task_id) if job is not None else None
            return self._finish(resource, end or outcomes.end_of_status(status), job)
        if job is None and status.get("jobName"):  # it ran, and someone deleted it under us
            return self._finish(resource, AttemptEnd(False, "JobDeleted", None, "its Job was deleted"), None)
        if job is None or not status.get("jobName"):
            # To start, or started before a restart that came before the status said so: the status
            # names the attempt's Job before anything else is recorded of it.
            self._start(resource)
            return None
        pod = self.kube.pod_of(task_id, attempt)
        if outcomes.job_end(job, pod) is not None:
            end = self._end(job, attempt, task_id, pod)
        else:
            end = outcomes.start_failure(pod)
        if end is not None:
            return self._finish(resource, end, job)
        if outcomes.started(pod) and phase != "Running":
            self._running(resource, job, pod)
        return None

    # -- steps ---------------------------------------------------------------------------------

    @staticmethod
    def _job_name(resource: Mapping[str, Any]) -> str:
        spec = resource["spec"]
        return resources.job_name(int(spec["taskId"]), int(spec["attempt"]))

    def _start(self, resource: dict[str, Any]) -> None:
        """Create the attempt's Job (it may exist: created before a restart), then say so in the status."""
        manifest = resources.job_manifest(resource)
        created = self.kube.create_job(manifest)
        name = manifest["metadata"]["name"]
        log.info(
            "job created" if created else "job exists already", job=name, attempt=resource["spec"]["attempt"]
        )
        self.kube.patch_task_status(
            resource["metadata"]["name"],
            {
                "phase": "Pending", "attempt": int(resource["spec"]["attempt"]), "jobName": name,
                "podName": None, "exitCode": None, "reason": None, "message": None, "startedAt": None,
                "finishedAt": None, "reported": False,
            },
        )  # fmt: skip

    def _running(
        self, resource: dict[str, Any], job: Mapping[str, Any], pod: Mapping[str, Any] | None
    ) -> None:
        """The Pod started: confirm the attempt is current (its agent's heartbeat), then say Running."""
        spec, name = resource["spec"], resource["metadata"]["name"]
        if not self.link.still_current(str(spec["agentId"]), int(spec["attempt"])):
            self._not_current(resource)
            return
        pod_name = str((pod or {}).get("metadata", {}).get("name") or "")
        started = {"phase": "Running", "attempt": int(spec["attempt"]), "podName": pod_name}
        self.kube.patch_task_status(name, {**started, "startedAt": outcomes.rfc3339(self.clock())})
        log.info("attempt running", task_id=spec["taskId"], attempt=spec["attempt"], pod=pod_name)

    def _end(
        self, job: Mapping[str, Any], attempt: int, task_id: int, pod: Mapping[str, Any] | None = None
    ) -> AttemptEnd | None:
        """The Job's end with the tail of its container's log."""
        pod = pod if pod is not None else self.kube.pod_of(task_id, attempt)
        pod_name = str((pod or {}).get("metadata", {}).get("name") or "")
        log_text = self.kube.log_tail(pod_name, outcomes.LOG_TAIL_CHARS) if pod_name else ""
        return outcomes.job_end(job, pod, log_text)

    def _finish(
        self, resource: dict[str, Any], end: AttemptEnd, job: Mapping[str, Any] | None
    ) -> float | None:
        """Record the end in the status, report it, then record that it was reported."""
        spec, name = resource["spec"], resource["metadata"]["name"]
        policy = outcomes.policy_of(resource, self.policy)
        transition = outcomes.transition(resource, end, policy)
        status = {**outcomes.end_status(end, transition, self.clock()), "attempt": int(spec["attempt"])}
        if job is not None and not end.succeeded and outcomes.job_end(job, None) is None:
            self._delete_job(job["metadata"]["name"], end.describe())  # it would only wait out its deadline
        if not self.kube.patch_task_status(name, status):
            return None
        counted = self.link.report(str(spec["agentId"]), transition)
        log.info(
            "attempt reported" if counted else "outcome refused: the attempt is no longer current",
            task_id=spec["taskId"], attempt=spec["attempt"], status=transition.status.name, reason=end.reason,
        )  # fmt: skip
        if counted:
            self.kube.patch_task_status(name, {"reported": True})
        else:
            if job is not None:
                self._delete_job(job["metadata"]["name"], NOT_CURRENT)
            self.kube.patch_task_status(
                name, {"phase": "Cancelled", "message": NOT_CURRENT, "reported": True}
            )
        return self.retention_seconds

    def _retain(
        self, resource: dict[str, Any], status: Mapping[str, Any], job: Mapping[str, Any] | None
    ) -> float | None:
        """A finished, reported resource and its Job go once the retention time has passed."""
        finished = outcomes.parse_time(status.get("finishedAt")) or self.clock()
        left = (finished + timedelta(seconds=self.retention_seconds) - self.clock()).total_seconds()
        if left > 0:
            return left
        if job is not None:
            self._delete_job(job["metadata"]["name"], "retention")
        self.kube.delete_task(resource["metadata"]["name"], resource["metadata"].get("uid"))
        log.info("finished task resource deleted", name=resource["metadata"]["name"])
        return None

    def _not_current(self, resource: Mapping[str, Any]) -> None:
        """The attempt is no longer current (cancelled, reaped, settled by hand): its Job goes, and
        the status says so (reported: there is nothing to report)."""
        self._delete_job(self._job_name(resource), NOT_CURRENT)
        self.kube.patch_task_status(
            resource["metadata"]["name"], {"phase": "Cancelled", "message": NOT_CURRENT, "reported": True}
        )

    # -- leases ----------------------------------------------------------------------------------

    def keep_leases(self) -> None:
        """Heartbeat the attempts whose Jobs run (created, not finished), in the names of the agents
        that created them: their leases hold while their Jobs run, whatever becomes of those agents
        (stopped for an upgrade, say). An attempt no longer current has its Job deleted."""
        running: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for resource in self.kube.list_tasks().get("items", []):
            status = _current_status(resource)
            if (
                status.get("jobName")
                and status.get("phase") not in resources.FINISHED_PHASES
                and not resource["metadata"].get("deletionTimestamp")
            ):
                running[str(resource["spec"]["agentId"])][int(resource["spec"]["attempt"])] = resource
        for agent_id, attempts in running.items():
            for lost in self.link.keep(agent_id, sorted(attempts)):
                log.info("attempt no longer current", name=attempts[lost]["metadata"]["name"], attempt=lost)
                self._not_current(attempts[lost])

    def _delete_job(self, name: str, why: str) -> None:
        if self.kube.delete_job(name):
            log.info("job deleted", job=name, why=why)
