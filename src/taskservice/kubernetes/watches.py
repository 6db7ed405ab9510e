"""List-then-watch loops (the official client's Watch helper) that tell the controller which Task
resources to look at: on a Task resource's event, or one of its Jobs' or Pods'.

Each lists first, then watches from the list's resourceVersion; the helper resumes after a watch's
connection ends (from the last version it saw). When the version is too old (410 Gone: compacted),
or the watch fails otherwise, it lists again: a list is always a correct start, since reconciling a
resource twice does nothing twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

from taskservice.kubernetes import resources
from taskservice.kubernetes.kube import Kube, status_of

log = structlog.get_logger(__name__)

# Seconds before listing again after a failed list or watch (the API server unreachable, say).
RELIST_DELAY = 1.0
# A watch silent for this long is given up and started again (a dead connection would hang it).
WATCH_READ_TIMEOUT = 300.0


def _name_of_resource(obj: dict[str, Any]) -> str | None:
    return str(obj.get("metadata", {}).get("name") or "") or None


def _name_of_owned(obj: dict[str, Any]) -> str | None:
    task_id = (obj.get("metadata", {}).get("labels") or {}).get(resources.TASK_ID, "")
    return resources.resource_name(int(task_id)) if str(task_id).isdigit() else None


class Watcher:
    """One kind's list-and-watch loop in a thread of its own; `notify(name)` for each object seen."""

    def __init__(
        self,
        kind: str,
        list_call: Callable[[], dict[str, Any]],
        watch_call: Callable[..., Any],
        watch_args: tuple[Any, ...],
        name_of: Callable[[dict[str, Any]], str | None],
        notify: Callable[[str], None],
    ) -> None:
        self.kind, self.list_call, self.watch_call, self.watch_args = kind, list_call, watch_call, watch_args
        self.name_of, self.notify = name_of, notify
        self._stopped = threading.Event()
        self._watch: Any = None
        self.lists = 0  # how many times it listed (a 410 makes it list again)
        self.thread = threading.Thread(target=self._loop, name=f"watch-{kind}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self._list_and_watch()
            except Exception as error:
                if self._stopped.is_set():
                    return
                if status_of(error) == 410:
                    log.info("watch expired (410 Gone); listing again", kind=self.kind)
                    continue
                log.warning("watch failed; listing again", kind=self.kind, error=str(error))
                self._stopped.wait(RELIST_DELAY)

    def _list_and_watch(self) -> None:
        from kubernetes import watch

        listed = self.list_call()
        self.lists += 1
        for item in listed.get("items") or ():
            self._seen(item)
        version = listed.get("metadata", {}).get("resourceVersion")
        self._watch = watch.Watch(return_type="object")
        events = self._watch.stream(
            self.watch_call, *self.watch_args, label_selector=resources.SELECTOR, resource_version=version,
            allow_watch_bookmarks=True, _request_timeout=(30, WATCH_READ_TIMEOUT),
        )  # fmt: skip
        for event in events:
            if self._stopped.is_set():
                return
            if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                self._seen(event["raw_object"])

    def _seen(self, obj: dict[str, Any]) -> None:
        name = self.name_of(obj)
        if name is not None:
            self.notify(name)


def watchers(kube: Kube, notify: Callable[[str], None]) -> list[Watcher]:
    """The watches of the controller: Task resources, and the Jobs and Pods it made for them."""
    ns = kube.namespace
    task_args = (resources.GROUP, resources.VERSION, ns, resources.PLURAL)
    return [
        Watcher("tasks", kube.list_tasks, kube.custom.list_namespaced_custom_object, task_args,
                _name_of_resource, notify),
        Watcher("jobs", kube.list_jobs, kube.batch.list_namespaced_job, (ns,), _name_of_owned, notify),
        Watcher("pods", kube.list_pods, kube.core.list_namespaced_pod, (ns,), _name_of_owned, notify),
    ]  # fmt: skip
