"""The Task custom resource of an assignment and the Job manifest of a Task resource: pure, no I/O.

The names, labels and fields are the contract of docs/kubernetes.md (and the chart's CRD): the
resource `task-<task id>` (group task.io, version v1), the Job `task-<task id>-<attempt>`, the
attempt being the assignment id, the fencing token every report names.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from taskservice.gen.cloud.v1 import task_pb2 as pb

GROUP = "task.io"
VERSION = "v1"
PLURAL = "tasks"
KIND = "Task"
API_VERSION = f"{GROUP}/{VERSION}"

MANAGED_BY = "app.kubernetes.io/managed-by"
TASK_ID = "task.io/task-id"
AGENT = "task.io/agent"
ATTEMPT = "task.io/attempt"
# Annotations, not spec: what the report's history line and lease count need, kept by any CRD schema.
ATTEMPT_NUMBER = "task.io/attempt-number"
LOST_LEASES = "task.io/lost-leases"
SELECTOR = f"{MANAGED_BY}=taskservice"

CONTAINER = "task"  # the name of the Job's one container
FINISHED_PHASES = frozenset({"Succeeded", "Failed", "Cancelled"})

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def resource_name(task_id: int) -> str:
    return f"task-{task_id}"


def task_id_of(name: str) -> int | None:
    """The task id of a resource name `task-<id>` (None: not one of ours)."""
    head, _, tail = name.partition("-")
    return int(tail) if head == "task" and tail.isdigit() else None


def job_name(task_id: int, attempt: int) -> str:
    return f"task-{task_id}-{attempt}"


def label_safe(text: str) -> str:
    """`text` as a label value: at most 63 characters of [A-Za-z0-9._-], starting and ending with an
    alphanumeric (an agent id holds a host name, a pid and a random suffix)."""
    value = _LABEL_UNSAFE.sub("-", text)[-63:].strip("._-")
    return value or "unknown"


def labels(task_id: int, agent_id: str) -> dict[str, str]:
    return {MANAGED_BY: "taskservice", TASK_ID: str(task_id), AGENT: label_safe(agent_id)}


def task_resource(
    work: pb.WorkAssignment, agent_id: str, namespace: str, backoff_seconds: float = 0.0
) -> dict[str, Any]:
    """The Task resource of an assignment of a container task type (its fields 11-14, 125-127)."""
    t = work.task
    task_id = t.id64 or t.id
    spec: dict[str, Any] = {
        "taskId": task_id,
        "attempt": work.assignment_id,
        "agentId": agent_id,
        "name": t.name,
        "type": t.type,
        "baseImage": t.base_image,
        "entrypoint": t.entrypoint,
        "args": list(t.args),
        "env": dict(t.env),
        "resources": {"requests": dict(t.resource_requests), "limits": dict(t.resource_limits)},
        "serviceAccountName": t.service_account,
        "timeoutSeconds": t.timeout_seconds,
        "retries": t.retries,
        "maxRetries": t.max_retries,
        "backoffSeconds": backoff_seconds,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": resource_name(task_id),
            "namespace": namespace,
            "labels": labels(task_id, agent_id),
            "annotations": {ATTEMPT_NUMBER: str(t.attempts), LOST_LEASES: str(work.lost_leases)},
        },
        "spec": spec,
    }


def command_of(entrypoint: str) -> list[str]:
    """The container's command: the entrypoint split into words as a POSIX shell would (no expansion);
    empty: the image's own."""
    if not entrypoint.strip():
        return []
    try:
        return shlex.split(entrypoint)
    except ValueError:  # an unbalanced quote: taken as one word, as written
        return [entrypoint]


def job_manifest(resource: dict[str, Any]) -> dict[str, Any]:
    """The Job that runs the resource's attempt: one Pod, no retries inside Kubernetes (our retry
    policy decides), the attempt's timeout as its deadline, owned by the resource."""
    meta, spec = resource["metadata"], resource["spec"]
    task_id, attempt = int(spec["taskId"]), int(spec["attempt"])
    job_labels = {**labels(task_id, str(spec.get("agentId", ""))), ATTEMPT: str(attempt)}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec["baseImage"],
        "env": [{"name": k, "value": v} for k, v in sorted((spec.get("env") or {}).items())],
    }
    command = command_of(str(spec.get("entrypoint") or ""))
    if command:
        container["command"] = command
    if spec.get("args"):
        container["args"] = list(spec["args"])
    wanted = spec.get("resources") or {}
    resources = {k: dict(wanted[k]) for k in ("requests", "limits") if wanted.get(k)}
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if spec.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = spec["serviceAccountName"]
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
    }
    timeout = float(spec.get("timeoutSeconds") or 0)
    if timeout > 0:
        job_spec["activeDeadlineSeconds"] = max(1, math.ceil(timeout))
    owner = {
        "apiVersion": API_VERSION, "kind": KIND, "name": meta["name"], "uid": meta.get("uid", ""),
        "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(task_id, attempt),
            "namespace": meta.get("namespace", ""),
            "labels": job_labels,
            "ownerReferences": [owner],
        },
        "spec": job_spec,
    }
