"""Running the Kubernetes agent (`task-cli serve --kubernetes`) and the controller (`task-cli
controller`) until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import threading
import time
import uuid
from typing import Any

import structlog

from taskservice.config import Settings
from taskservice.kubernetes import kube as kube_api
from taskservice.kubernetes import require_client
from taskservice.kubernetes.agent import KubernetesAgent, KubernetesLink
from taskservice.kubernetes.controller import Controller
from taskservice.kubernetes.election import Election
from taskservice.kubernetes.reports import ServerLink
from taskservice.kubernetes.watches import watchers
from taskservice.kubernetes.workqueue import WorkQueue
from taskservice.model import RetryPolicy
from taskservice.plugins import Registry
from taskservice.protocol.errors import AuthError
from taskservice.rules.transient import is_transient
from taskservice.worker.runtime import new_worker_id

log = structlog.get_logger(__name__)

# Seconds before a resource whose reconcile failed (the API server or ours unreachable) is looked at again.
RETRY_SECONDS = 2.0


class NoContainerTypes(Exception):
    """The Kubernetes agent has no container task type to serve; the message says how to declare one."""


class ControllerStopped(Exception):
    """The controller stopped for a reason other than a signal (it lost its leadership)."""


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(settings.retry_backoff_base, settings.retry_backoff_max, settings.max_lost_leases)


def served_declarations(settings: Settings, registry: Registry) -> dict[str, dict[str, Any]]:
    """The declarations (as published) of the container task types this agent serves: declared in
    code (`container_task`) or in the file TASK_CONTAINER_TYPES names. ContainerTypesFileError when
    that file is wrong."""
    from taskservice.plugins.container_types import container_types

    return {name: kind.declaration() for name, kind in container_types(registry, settings).items()}


async def serve_kubernetes_agent(
    settings: Settings,
    address: str,
    token: str,
    declarations: dict[str, dict[str, Any]],
    concurrency: int | None = None,
) -> None:
    """Run the Kubernetes agent until SIGTERM or SIGINT."""
    require_client()
    if not declarations:
        raise NoContainerTypes(
            "no container task types to serve: declare them in the file TASK_CONTAINER_TYPES names, or with "
            "taskservice.container_task in a module of TASK_MODULES (or --import)"
        )
    kube_api.load_config()
    kube = kube_api.Kube(kube_api.namespace(settings.task_kubernetes_namespace))
    link = KubernetesLink(address, token, new_worker_id())
    slots = concurrency or settings.worker_concurrency or 1
    agent = KubernetesAgent(link, kube, declarations, slots, settings.lease_seconds, retry_policy(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await agent.run(stop)
    finally:
        kube.close()


class ControllerProcess:
    """The controller with its watches, its queue and its election: `run()` until `stop` is set."""

    def __init__(self, settings: Settings, address: str, token: str) -> None:
        self.settings = settings
        self.kube = kube_api.Kube(kube_api.namespace(settings.task_kubernetes_namespace))
        self.link = ServerLink(address, token)
        self.controller = Controller(
            self.kube, self.link, retry_policy(settings), settings.task_controller_retention_seconds
        )
        self.queue = WorkQueue()
        self.stop = threading.Event()
        self.lost_leadership = False
        self.identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def run(self) -> None:
        election = Election(
            self.kube.namespace,
            self.identity,
            self.settings.task_controller_lease_seconds,
            self._lead,
            self._lost,
        )
        log.info(
            "controller started; leads once it holds the Lease taskservice-controller",
            identity=self.identity, namespace=self.kube.namespace,
        )  # fmt: skip
        election.start()
        while not self.stop.wait(1.0):
            if not election.thread.is_alive():
                break
        self.queue.wake()
        self.link.close()
        if election.failure is not None:
            raise ControllerStopped(f"its leader election failed: {election.failure}")
        if self.lost_leadership:
            raise ControllerStopped("it could not renew its leadership (Lease taskservice-controller)")

    def _lost(self) -> None:
        """The election ended (it could not renew the Lease, or failed): stop, and say why."""
        if not self.stop.is_set():
            log.error("leadership lost or election failed; the controller stops", identity=self.identity)
            self.lost_leadership = True
            self.stop.set()

    def _lead(self) -> None:
        """While leading: watch, and reconcile what the watches name, one resource at a time."""
        log.info("leading: watching task resources", identity=self.identity)
        watches = watchers(self.kube, self.queue.add)
        for watch in watches:
            watch.start()
        keep_every = self.settings.lease_seconds / 3  # as often as an agent heartbeats
        kept_at = -math.inf
        try:
            while not self.stop.is_set():
                if time.monotonic() - kept_at >= keep_every:
                    kept_at = time.monotonic()
                    self._keep_leases()
                name = self.queue.get(timeout=min(1.0, keep_every))
                if name is not None:
                    self._reconcile(name)
        finally:
            for watch in watches:
                watch.stop()

    def _keep_leases(self) -> None:
        try:
            self.controller.keep_leases()
        except Exception as error:  # the next round tries again, within the lease
            log.warning("keeping the running attempts' leases failed; trying again", error=str(error))

    def _reconcile(self, name: str) -> None:
        try:
            again = self.controller.reconcile(name)
        except AuthError as error:
            log.error(
                "the API server refused the controller; give it the Kubernetes agent's token (--token, "
                "TASK_SERVICE_TOKEN): it speaks in the agent's name", name=name, error=str(error),
            )  # fmt: skip
            self.queue.add_after(name, RETRY_SECONDS)
            return
        except Exception as error:
            if not (is_transient(error) or kube_api.status_of(error) is not None):
                log.exception("reconcile failed", name=name)
            else:
                log.warning("reconcile failed; trying again", name=name, error=str(error))
            self.queue.add_after(name, RETRY_SECONDS)
            return
        if again is not None:
            self.queue.add_after(name, again)


def run_controller(settings: Settings, address: str, token: str) -> None:
    """Run the controller until SIGTERM or SIGINT; ControllerStopped when it stopped for another reason."""
    require_client()
    kube_api.load_config()
    process = ControllerProcess(settings, address, token)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: process.stop.set())
    process.run()
    log.info("controller stopped", identity=process.identity)
