"""The Kubernetes API as the agent and the controller use it, through the official client (sync; call
it from threads): Task resources, Jobs, Pods and their logs, as plain JSON dicts.

Every call here is one the chart's Roles must allow (docs/kubernetes.md lists them).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskservice.kubernetes import NoCluster, resources

# Where a Pod finds its own namespace (the service account's mount).
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Seconds before a call (not a watch) is given up.
CALL_TIMEOUT = 30.0


def load_config() -> None:
    """Configure the client process-wide: in a Pod, its service account; else the kubeconfig
    (KUBECONFIG, or ~/.kube/config) and its current context."""
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException as in_pod:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as error:
            raise NoCluster(
                f"no Kubernetes cluster to talk to: not in a Pod ({in_pod}), and no usable kubeconfig "
                f"(KUBECONFIG, else ~/.kube/config: {error})"
            ) from None


def namespace(configured: str) -> str:
    """TASK_KUBERNETES_NAMESPACE, else the service account's namespace in a Pod, else "default"."""
    if configured:
        return configured
    try:
        return NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def _done_unless(call: Callable[[], Any], *refusals: int) -> bool:
    """Make the call; False when the API server answers with one of `refusals` (404: gone, 409: it
    exists or changed meanwhile), which the caller expects; any other error is raised."""
    try:
        call()
    except Exception as error:
        if status_of(error) in refusals:
            return False
        raise
    return True


def status_of(error: BaseException) -> int | None:
    """The HTTP status of an API error (None: not an answer of the API server)."""
    from kubernetes.client.exceptions import ApiException

    return error.status if isinstance(error, ApiException) else None


def describe(error: BaseException) -> str:
    """One line of an API error: "403 Forbidden: <the API server's message>"."""
    status = status_of(error)
    if status is None:
        return str(error) or type(error).__name__
    message = ""
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(getattr(error, "body", "") or "{}").get("message") or "")
    reason = str(getattr(error, "reason", "") or "")
    return f"{status} {reason}".strip() + (f": {message}" if message else "")


def _json(response: Any) -> Any:
    return json.loads(response.data)


class Kube:
    """One namespace's Task resources, Jobs and Pods."""

    def __init__(self, namespace: str) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.api = client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)

    def _task_args(self) -> tuple[str, str, str, str]:
        return resources.GROUP, resources.VERSION, self.namespace, resources.PLURAL

    # -- Task resources: get, list, watch, create, delete, patch status ------------------------

    def get_task(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.custom.get_namespaced_custom_object(
                *self._task_args(), name, _preload_content=False, _request_timeout=CALL_TIMEOUT
            )
        except Exception as error:
            if status_of(error) == 404:
                return None
            raise
        return _json(found)  # type: ignore[no-any-return]

    def list_tasks(self) -> dict[str, Any]:
        """The Task resources we manage, with the list's resourceVersion (a watch starts from it)."""
        found = self.custom.list_namespaced_custom_object(
            *self._task_args(), label_selector=resources.SELECTOR,
            _preload_content=False, _request_timeout=CALL_TIMEOUT,
        )  # fmt: skip
        return _json(found)  # type: ignore[no-any-return]

    def create_task(self, body: dict[str, Any]) -> bool:
        """Create the resource; False when one of that name exists (409 AlreadyExists)."""
        return _done_unless(
            lambda: self.custom.create_namespaced_custom_object(
                *self._task_args(), body, _preload_content=False, _request_timeout=CALL_TIMEOUT
            ),
            409,
        )

    def delete_task(self, name: str, uid: str | None = None) -> bool:
        """Delete the resource (only that incarnation of it, given its uid); False: it was gone."""
        from kubernetes import client

        body = client.V1DeleteOptions(
            propagation_policy="Background", preconditions=client.V1Preconditions(uid=uid) if uid else None
        )
        return _done_unless(
            lambda: self.custom.delete_namespaced_custom_object(
                *self._task_args(), name, body=body, _preload_content=False, _request_timeout=CALL_TIMEOUT
            ),
            404, 409,  # gone, or replaced by a newer one meanwhile
        )  # fmt: skip

    def patch_task_status(self, name: str, status: dict[str, Any]) -> bool:
        """Merge `status` into the resource's status (its subresource); False: the resource is gone."""
        return _done_unless(
            lambda: self.custom.patch_namespaced_custom_object_status(
                *self._task_args(), name, {"status": status},
                _content_type="application/merge-patch+json", _preload_content=False,
                _request_timeout=CALL_TIMEOUT,
            ),
            404,
        )  # fmt: skip

    # -- Jobs: list, watch, create, delete -------------------------------------------------------

    def list_jobs(self, selector: str = resources.SELECTOR) -> dict[str, Any]:
        found = self.batch.list_namespaced_job(
            self.namespace, label_selector=selector, _preload_content=False, _request_timeout=CALL_TIMEOUT
        )
        return _json(found)  # type: ignore[no-any-return]

    def jobs_of(self, task_id: int) -> list[dict[str, Any]]:
        selector = f"{resources.SELECTOR},{resources.TASK_ID}={task_id}"
        return list(self.list_jobs(selector).get("items") or [])

    def create_job(self, body: dict[str, Any]) -> bool:
        """Create the Job; False when it exists (409 AlreadyExists: its attempt runs already)."""
        return _done_unless(
            lambda: self.batch.create_namespaced_job(
                self.namespace, body, _preload_content=False, _request_timeout=CALL_TIMEOUT
            ),
            409,
        )

    def delete_job(self, name: str) -> bool:
        """Delete the Job and its Pods; False: it was gone."""
        return _done_unless(
            lambda: self.batch.delete_namespaced_job(
                name, self.namespace, propagation_policy="Background",
                _preload_content=False, _request_timeout=CALL_TIMEOUT,
            ),
            404,
        )  # fmt: skip

    # -- Pods: list, watch, log ------------------------------------------------------------------

    def list_pods(self, selector: str = resources.SELECTOR) -> dict[str, Any]:
        found = self.core.list_namespaced_pod(
            self.namespace, label_selector=selector, _preload_content=False, _request_timeout=CALL_TIMEOUT
        )
        return _json(found)  # type: ignore[no-any-return]

    def pod_of(self, task_id: int, attempt: int) -> dict[str, Any] | None:
        """The attempt's Pod (the newest, should there be several), or None before it has one."""
        selector = f"{resources.SELECTOR},{resources.TASK_ID}={task_id},{resources.ATTEMPT}={attempt}"
        pods = list(self.list_pods(selector).get("items") or [])
        pods.sort(key=lambda pod: str(pod.get("metadata", {}).get("creationTimestamp") or ""))
        return pods[-1] if pods else None

    def log_tail(self, pod_name: str, chars: int) -> str:
        """The last `chars` characters of the task container's log ("" when it cannot be read)."""
        try:
            text = self.core.read_namespaced_pod_log(
                pod_name,
                self.namespace,
                container=resources.CONTAINER,
                tail_lines=200,
                _preload_content=False,
                _request_timeout=CALL_TIMEOUT,
            ).data.decode("utf-8", errors="replace")
        except Exception as error:
            if status_of(error) is not None:  # the Pod or its log is gone: the outcome goes without
                return ""
            raise
        return str(text)[-chars:]

    def close(self) -> None:
        self.api.close()
