"""An in-process Kubernetes API server for the Kubernetes data plane's tests (issue 25).

No Kubernetes API server can run here, so the tests drive the real official `kubernetes` client (and
our agent and controller, as real processes given a kubeconfig) over real HTTP against this one. It
speaks the API's JSON wire protocol for what the data plane uses, as the real server answers it:

- Discovery: /version, /api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}, /healthz.
- Resources: v1 pods (status subresource, `pods/{name}/log` with tailLines and limitBytes), v1
  configmaps, v1 events, batch/v1 jobs (status subresource), coordination.k8s.io/v1 leases (the
  official client's `kubernetes.leaderelection` LeaseLock; ConfigMapLock uses configmaps) and the
  custom resource tasks.task.io/v1 Task (namespaced, status subresource).
- Verbs: create (409 AlreadyExists, generateName), get (404 NotFound), list (labelSelector,
  fieldSelector on metadata.name / metadata.namespace / a pod's status.phase, limit and continue,
  resourceVersion in the list's metadata; also across namespaces), update (PUT; 409 Conflict on a stale
  metadata.resourceVersion), patch (merge-patch, json-patch, and strategic-merge-patch for built-in
  kinds only: 415 for the custom resource, as the real server), delete (preconditions,
  propagationPolicy: dependents found through ownerReferences are deleted at once, Background and
  Foreground alike; Orphan strips the reference; a Job's default is Orphan, as batch/v1's is;
  finalizers hold an object with a deletionTimestamp until an update empties them), deletecollection.
  The main resource ignores status and the status subresource ignores everything but status.
  resourceVersion is one counter shared by all objects; a write that changes nothing bumps nothing.
  Objects get uid, creationTimestamp and (pods, jobs, tasks) a generation bumped by spec changes.
- Watch (`?watch=true`): newline-delimited JSON events in a chunked response, ADDED / MODIFIED /
  DELETED (an object leaving or entering a selector shows as DELETED / ADDED), BOOKMARK when asked
  (allowWatchBookmarks; on `bookmark()` and at the watch's timeout), synthetic ADDED events for a watch
  without resourceVersion (or "0"), replay of the kept history from a resourceVersion, and an ERROR
  event carrying a 410 Expired Status for a resourceVersion older than the history (`compact()` drops
  it, as etcd compaction does). `end_watches()` ends every open watch (a timeout, or an API server
  restart; with `compact()` as well, a restart whose watch cache no longer reaches back), and
  `end_watches(abrupt=True)` cuts the connections mid-stream (a crash); timeoutSeconds ends one.

A few of the real server's validations, those that catch real mistakes: object names (DNS-1123
subdomains), label keys and values, a Job's restartPolicy (Never or OnFailure), containers with a name
and an image, the immutable pod template of a Job. Where it stops: no admission, no schema
validation of the custom resource, no server-side apply, no dryRun, no auth (any token is accepted),
no kubelet, Job controller or garbage collector running by themselves (the test plays them with the
hooks below, and dependents are deleted at once), no graceful pod deletion, lists always answer the
current state (a resourceVersion on a list is ignored), `follow` on logs answers what is there.

The fixtures (tests/conftest.py): `kube_api`, a started `KubeApi` on a random port of 127.0.0.1 (its
default namespace "default"), and `kubeconfig`, the path of a kubeconfig file naming it, for KUBECONFIG
of the processes a test starts. Hooks for tests (see `KubeApi`): `api_client()`,
`write_kubeconfig(path)`, `get`, `objects` (`jobs()`, `pods()`, `tasks()`, `leases()`), `create`,
`modify`, `delete`, the Job controller and the kubelet
(`create_pod_for(job)`, `set_pod_phase(pod, phase, exit_code=, reason=)`,
`set_job_condition(job, "Complete" | "Failed", reason=)`, `set_pod_log(pod, text)`, `pods_of(job)`,
and all of a run at once: `finish_job(job, exit_code=, reason=, log=)`), `compact()`,
`end_watches()`, `bookmark()`, `fail_next(verb, resource, code)`, `count(verb, resource)` (requests
served, per verb and resource), `open_watches(resource)` and waiting without sleeping: `wait_until(check)`,
`wait_object(resource, predicate)`, `wait_gone(resource, name)` and their `await_*` forms.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import json
import re
import secrets
import socket
import string
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    import kubernetes.client

Obj = dict[str, Any]
T = TypeVar("T")

SERVER_VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0-kube-api"}


@dataclass(frozen=True)
class Resource:
    """One kind of object the server keeps: where its path is and how it behaves."""

    group: str
    version: str
    plural: str
    kind: str
    status: bool = False  # has a status subresource
    custom: bool = False  # a custom resource (CRD): no strategic merge patch, deletes answer the object
    short_names: tuple[str, ...] = ()
    default_propagation: str = "Background"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The name error messages use: `jobs.batch`, `tasks.task.io`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def generation(self) -> bool:
        return self.status


RESOURCES = (
    Resource("", "v1", "pods", "Pod", status=True, short_names=("po",)),
    Resource("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Resource("", "v1", "events", "Event", short_names=("ev",)),
    # batch/v1's default deletion policy orphans a Job's pods (kubectl asks for Background).
    Resource("batch", "v1", "jobs", "Job", status=True, default_propagation="Orphan"),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
    Resource("task.io", "v1", "tasks", "Task", status=True, custom=True),
)
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def resource_named(name: str) -> Resource:
    """The resource a test names by plural, kind, short name or `plural.group` (case-insensitive)."""
    wanted = name.lower()
    for resource in RESOURCES:
        names = {resource.plural, resource.kind.lower(), resource.qualified, *resource.short_names}
        if wanted in names:
            return resource
    raise KeyError(f"no such resource: {name!r} (known: {', '.join(r.plural for r in RESOURCES)})")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- errors: the Status objects the real server answers ------------------------------------------------


class ApiError(Exception):
    """An error answer: a Status of kind Status with its code and reason."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
        causes: list[Obj] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        if causes:
            self.details["causes"] = causes

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(resource: Resource, name: str) -> Obj:
    details: Obj = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name))


def already_exists(resource: Resource, name: str) -> ApiError:
    message = f'{resource.qualified} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _details(resource, name))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def conflict(resource: Resource, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {resource.qualified} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(resource, name))


def invalid(resource: Resource, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid: causes are (field, reason such as FieldValueInvalid, message)."""
    text = ", ".join(f"{path}: {message}" for path, _, message in causes)
    group = f".{resource.group}" if resource.group else ""
    return ApiError(
        422,
        "Invalid",
        f'{resource.kind}{group} "{name}" is invalid: {text}',
        {**_details(resource, name), "kind": resource.kind},
        [{"reason": reason, "message": message, "field": path} for path, reason, message in causes],
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


# -- validation: the few checks of the real server worth having --------------------------------------

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _name_problems(name: str) -> list[str]:
    if len(name) > 253:
        return ["must be no more than 253 characters"]
    if not _DNS_SUBDOMAIN.match(name):
        return [
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
            "'.', and must start and end with an alphanumeric character"
        ]
    return []


def _label_problems(labels: Obj, path: str) -> list[tuple[str, str, str]]:
    problems: list[tuple[str, str, str]] = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and _name_problems(prefix)) or len(name) > 63 or not _LABEL_NAME.match(name):
            problems.append((path, "FieldValueInvalid", f'Invalid value: "{key}": name part must be valid'))
        if not isinstance(value, str) or (value and (len(value) > 63 or not _LABEL_NAME.match(value))):
            problems.append(
                (
                    path,
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character, at most 63 characters",
                )
            )
    return problems


def _pod_spec_problems(spec: Any, path: str) -> list[tuple[str, str, str]]:
    if not isinstance(spec, dict):
        return [(path, "FieldValueRequired", "Required value")]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [(f"{path}.containers", "FieldValueRequired", "Required value")]
    problems: list[tuple[str, str, str]] = []
    for index, container in enumerate(containers):
        for key in ("name", "image"):
            if not isinstance(container, dict) or not container.get(key):
                problems.append((f"{path}.containers[{index}].{key}", "FieldValueRequired", "Required value"))
    return problems


def validate(resource: Resource, obj: Obj, old: Obj | None) -> None:
    """Raise 422 Invalid for what the real server refuses and the data plane could get wrong."""
    meta = obj["metadata"]
    name = meta["name"]
    problems = [
        ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {p}') for p in _name_problems(name)
    ]
    problems += _label_problems(meta.get("labels") or {}, "metadata.labels")
    if resource.plural == "pods":
        problems += _pod_spec_problems(obj.get("spec"), "spec")
    if resource.plural == "jobs":
        template = (obj.get("spec") or {}).get("template") or {}
        problems += _label_problems(
            (template.get("metadata") or {}).get("labels") or {}, "spec.template.labels"
        )
        problems += _pod_spec_problems(template.get("spec"), "spec.template.spec")
        policy = (template.get("spec") or {}).get("restartPolicy")
        if policy not in ("Never", "OnFailure"):
            problems.append(
                (
                    "spec.template.spec.restartPolicy",
                    "FieldValueRequired" if policy is None else "FieldValueNotSupported",
                    'Required value: valid values: "OnFailure", "Never"',
                )
            )
        if old is not None and template != (old.get("spec") or {}).get("template"):
            problems.append(("spec.template", "FieldValueInvalid", "field is immutable"))
    if problems:
        raise invalid(resource, name, problems)


# -- selectors -------------------------------------------------------------------------------------------

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


Requirement = tuple[str, str, frozenset[str]]  # (key, "in" | "notin" | "exists" | "!exists", values)


def _requirement(part: str) -> Requirement:
    if match := _SET_REQUIREMENT.match(part):
        values = frozenset(v.strip() for v in match.group(3).split(","))
        requirement: Requirement = (match.group(1), match.group(2), values)
    elif "!=" in part:
        key, value = (s.strip() for s in part.split("!=", 1))
        requirement = (key, "notin", frozenset({value}))
    elif "=" in part:
        key, value = (s.strip() for s in part.replace("==", "=").split("=", 1))
        requirement = (key, "in", frozenset({value}))
    elif part.startswith("!"):
        requirement = (part[1:].strip(), "!exists", frozenset())
    else:
        requirement = (part, "exists", frozenset())
    name = requirement[0].rpartition("/")[2]
    if not name or not _LABEL_NAME.match(name):
        raise bad_request(f'unable to parse requirement: invalid label key "{requirement[0]}"')
    return requirement


def _satisfied(requirement: Requirement, labels: dict[str, str]) -> bool:
    key, op, values = requirement
    if op == "in":
        return labels.get(key) in values
    if op == "notin":  # as the real server: an object without the label matches `k!=v`
        return labels.get(key) not in values
    return (key in labels) == (op == "exists")


def label_matcher(selector: str | None) -> Callable[[Obj], bool]:
    """A labelSelector: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`, joined by commas."""
    requirements = [_requirement(part) for part in _split_selector(selector or "")]

    def matches(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(_satisfied(requirement, labels) for requirement in requirements)

    return matches


def _name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _namespace_of(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", ""))


def _phase_of(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase", ""))


def _node_of(obj: Obj) -> str:
    return str((obj.get("spec") or {}).get("nodeName", ""))


_FIELDS: dict[str, Callable[[Obj], str]] = {"metadata.name": _name_of, "metadata.namespace": _namespace_of}
_POD_FIELDS: dict[str, Callable[[Obj], str]] = {"status.phase": _phase_of, "spec.nodeName": _node_of}


def field_matcher(resource: Resource, selector: str | None) -> Callable[[Obj], bool]:
    """A fieldSelector on metadata.name and metadata.namespace (and a pod's status.phase, spec.nodeName)."""
    fields = {**_FIELDS, **(_POD_FIELDS if resource.plural == "pods" else {})}
    tests: list[tuple[Callable[[Obj], str], str, bool]] = []
    for part in _split_selector(selector or ""):
        key, value = (s.strip() for s in re.split(r"!=|==|=", part, maxsplit=1))
        if key not in fields:
            raise bad_request(f'"{key}" is not a known field selector: only "{", ".join(sorted(fields))}"')
        tests.append((fields[key], value, "!=" in part))

    def matches(obj: Obj) -> bool:
        return all((getter(obj) == value) != negate for getter, value, negate in tests)

    return matches


# -- patches -------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# The patchMergeKey of the lists a strategic merge patch merges by key (the rest are replaced).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
}


def _merge_list(target: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    result = copy.deepcopy(target)
    for item in patch:
        key = item.get(merge_key) if isinstance(item, dict) else None
        at = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(merge_key) == key), None
        )
        if isinstance(item, dict) and item.get("$patch") == "delete":
            if at is not None:
                del result[at]
        elif at is None:
            result.append(copy.deepcopy(item))
        else:
            result[at] = strategic_merge_patch(result[at], item)
    return result


def strategic_merge_patch(target: Any, patch: Any, key: str = "") -> Any:
    """A strategic merge patch for its common cases: a merge patch whose lists with a patchMergeKey
    (containers by name, conditions by type, ...) are merged item by item; finalizers are a set."""
    if isinstance(patch, list) and isinstance(target, list) and key in _MERGE_KEYS:
        return _merge_list(target, patch, _MERGE_KEYS[key])
    if isinstance(patch, list) and isinstance(target, list) and key == "finalizers":
        return [*target, *(item for item in patch if item not in target)]
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = strategic_merge_patch(result.get(name), value, name)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    parts = _pointer(path)
    if not parts:
        raise ValueError("the whole document cannot be patched")
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def _get(doc: Any, path: str) -> Any:
    node = doc
    for part in _pointer(path):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise ValueError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for operation in operations:
        op, path, value = operation.get("op"), operation.get("path", ""), operation.get("value")
        if op in ("move", "copy"):
            value = copy.deepcopy(_get(doc, operation["from"]))
            if op == "move":
                doc = json_patch(doc, [{"op": "remove", "path": operation["from"]}])
            op = "add"
        if op == "test":
            if _get(doc, path) != value:
                raise ValueError(f"testing value {path} failed")
            continue
        parent, last = _parent(doc, path)
        if op == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(value))
            else:
                parent[last] = copy.deepcopy(value)
        elif op == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif op == "replace":
            _get(doc, path)  # must exist
            parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(value)
        else:
            raise ValueError(f"unknown JSON patch operation {op!r}")
    return doc


PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}


# -- the store -------------------------------------------------------------------------------------------


@dataclass
class WatchEvent:
    """One change, kept in the history watches replay: the object after it (and before, for selectors)."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: Resource
    obj: Obj
    old: Obj | None = None


@dataclass(eq=False)
class _Watch:
    """An open watch: what it watches, and the end_watches() and bookmark() calls it has seen."""

    resource: Resource
    epoch: int
    bookmarks: int = 0


@dataclass
class _Failure:
    code: int
    reason: str
    times: int


Key = tuple[str, str, str]  # (plural, namespace, name)


@dataclass
class KubeApi:
    """The server: start() it (or use it as a context manager), then point clients at `url`."""

    host: str = "127.0.0.1"
    namespace: str = "default"
    watch_timeout: float = (
        1800.0  # a watch without timeoutSeconds ends after this (the real server: 30-60 min)
    )
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    _objects: dict[Key, Obj] = field(default_factory=dict)
    _logs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    _history: list[WatchEvent] = field(default_factory=list)
    _history_rvs: list[int] = field(default_factory=list)
    _rv: int = 1  # as after a first write (no real server answers "0", which a watch reads as "any")
    _floor: int = 0  # watches from an older resourceVersion get 410 Expired
    _epoch: int = 0  # end_watches() bumps it
    _abrupt: bool = False
    _bookmarks: int = 0  # bookmark() bumps it
    _watches: list[_Watch] = field(default_factory=list)
    _failures: dict[tuple[str, str], _Failure] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KubeApi:
        server = _Server((self.host, 0), _Handler)
        server.kube = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="kube-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.end_watches()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> KubeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- clients ---------------------------------------------------------------------------------

    def configuration(self) -> kubernetes.client.Configuration:
        import kubernetes.client

        config = kubernetes.client.Configuration(host=self.url)
        config.api_key = {"BearerToken": "kube-api-test-token"}
        config.api_key_prefix = {"BearerToken": "Bearer"}
        return config

    def api_client(self) -> kubernetes.client.ApiClient:
        """A client of the official library configured for this server (close it after use)."""
        import kubernetes.client

        return kubernetes.client.ApiClient(self.configuration())

    def kubeconfig(self, namespace: str | None = None) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kube-api", "cluster": {"server": self.url}}],
            "users": [{"name": "kube-api", "user": {"token": "kube-api-test-token"}}],
            "contexts": [
                {
                    "name": "kube-api",
                    "context": {
                        "cluster": "kube-api",
                        "user": "kube-api",
                        "namespace": namespace or self.namespace,
                    },
                }
            ],
            "current-context": "kube-api",
        }

    def write_kubeconfig(self, path: Path, namespace: str | None = None) -> Path:
        """A kubeconfig file for processes we start (KUBECONFIG=path); JSON is valid YAML."""
        path.write_text(json.dumps(self.kubeconfig(namespace), indent=2))
        return path

    # -- reading, for tests ----------------------------------------------------------------------

    def get(self, resource: str, name: str, namespace: str | None = None) -> Obj | None:
        """A copy of the object, or None."""
        res = resource_named(resource)
        with self._cond:
            obj = self._objects.get((res.plural, namespace or self.namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def objects(
        self, resource: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        """Copies of the objects of a resource in a namespace (None: this server's default one)."""
        res = resource_named(resource)
        match = label_matcher(label_selector)
        with self._cond:
            return [
                copy.deepcopy(obj)
                for (plural, ns, _), obj in sorted(self._objects.items())
                if plural == res.plural and ns == (namespace or self.namespace) and match(obj)
            ]

    def jobs(self, namespace: str | None = None) -> list[Obj]:
        return self.objects("jobs", namespace)

    def pods(self, namespace: str | None = None) -> list[Obj]:
        return self.objects("pods", namespace)

    def tasks(self, namespace: str | None = None) -> list[Obj]:
        return self.objects("tasks", namespace)

    def leases(self, namespace: str | None = None) -> list[Obj]:
        return self.objects("leases", namespace)

    def count(self, verb: str, resource: str) -> int:
        """Requests served for a verb (create, get, list, watch, update, patch, delete,
        deletecollection) on a resource (`jobs`, `tasks`, `tasks/status`, `pods/log`)."""
        with self._cond:
            return self.requests[(verb, resource)]

    def open_watches(self, resource: str | None = None) -> int:
        with self._cond:
            return sum(1 for w in self._watches if resource is None or w.resource == resource_named(resource))

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    # -- waiting, on the store's condition variable (never by polling) -------------------------------

    def wait_until(self, check: Callable[[], T | None], timeout: float = 15.0) -> T:
        """Return check()'s first truthy value, rechecked at each change of the server's state."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = check()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
                self._cond.wait(remaining)

    def wait_object(
        self,
        resource: str,
        predicate: Callable[[Obj], bool] = lambda obj: True,
        namespace: str | None = None,
        timeout: float = 15.0,
    ) -> Obj:
        """The first object of the resource for which predicate holds, once there is one."""

        def find() -> Obj | None:
            return next((obj for obj in self.objects(resource, namespace) if predicate(obj)), None)

        return self.wait_until(find, timeout)

    def wait_gone(
        self, resource: str, name: str, namespace: str | None = None, timeout: float = 15.0
    ) -> None:
        self.wait_until(lambda: self.get(resource, name, namespace) is None, timeout)

    async def await_until(self, check: Callable[[], T | None], timeout: float = 15.0) -> T:
        return await asyncio.to_thread(self.wait_until, check, timeout)

    async def await_object(
        self,
        resource: str,
        predicate: Callable[[Obj], bool] = lambda obj: True,
        namespace: str | None = None,
        timeout: float = 15.0,
    ) -> Obj:
        return await asyncio.to_thread(self.wait_object, resource, predicate, namespace, timeout)

    async def await_gone(
        self, resource: str, name: str, namespace: str | None = None, timeout: float = 15.0
    ) -> None:
        await asyncio.to_thread(self.wait_gone, resource, name, namespace, timeout)

    # -- test hooks: the API server's own life ------------------------------------------------------------

    def compact(self) -> int:
        """Drop the event history (etcd compaction): a watch from an older resourceVersion gets 410."""
        with self._cond:
            self._floor = self._rv
            return self._floor

    def end_watches(self, abrupt: bool = False) -> None:
        """End every open watch: cleanly (a timeout, or a server going away politely), or with
        `abrupt` by closing the connection mid-stream (a crash)."""
        with self._cond:
            self._epoch += 1
            self._abrupt = abrupt
            self._cond.notify_all()

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to every watch that allows them."""
        with self._cond:
            self._bookmarks += 1
            self._cond.notify_all()

    def fail_next(
        self, verb: str, resource: str, code: int = 500, reason: str = "InternalError", times: int = 1
    ) -> None:
        """Answer the next `times` requests for (verb, resource) with an error Status."""
        with self._cond:
            self._failures[(verb, resource)] = _Failure(code, reason, times)

    # -- test hooks: writing objects as a controller or kubelet would --------------------------------------

    def create(self, resource: str, obj: Obj, namespace: str | None = None) -> Obj:
        return self._create(resource_named(resource), namespace or self.namespace, obj)

    def modify(
        self, resource: str, name: str, change: Callable[[Obj], None], namespace: str | None = None
    ) -> Obj:
        """Change an object in place (status included), as a controller of it would: one MODIFIED event."""
        res = resource_named(resource)
        with self._cond:
            old = self._require(res, namespace or self.namespace, name)
            new = copy.deepcopy(old)
            change(new)
            return self._store(res, new, old)

    def delete(
        self, resource: str, name: str, namespace: str | None = None, propagation: str | None = None
    ) -> None:
        self._delete(
            resource_named(resource), namespace or self.namespace, name, {"propagationPolicy": propagation}
        )

    def set_pod_log(self, pod: Obj | str, text: str, container: str | None = None) -> None:
        """The log `pods/{name}/log` answers (of the pod's first container unless named)."""
        with self._cond:
            obj = self._require(resource_named("pods"), *self._where(pod))
            name = container or obj["spec"]["containers"][0]["name"]
            self._logs[(obj["metadata"]["namespace"], obj["metadata"]["name"], name)] = text
            self._cond.notify_all()

    def create_pod_for(self, job: Obj | str) -> Obj:
        """What the Job controller does: a Pod `<job>-<5 chars>` from the job's template, labelled
        job-name and controller-uid, owned by the job; the job's status.active and startTime."""
        jobs = resource_named("jobs")
        with self._cond:
            owner = self._require(jobs, *self._where(job))
            meta = owner["metadata"]
            template = copy.deepcopy(owner["spec"]["template"])
            suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            labels = {
                **(template.get("metadata") or {}).get("labels", {}),
                "job-name": meta["name"],
                "controller-uid": meta["uid"],
                "batch.kubernetes.io/job-name": meta["name"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
            }
            pod = {
                "metadata": {
                    "name": f"{meta['name']}-{suffix}",
                    "labels": labels,
                    "annotations": (template.get("metadata") or {}).get("annotations", {}),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": template["spec"],
            }
            created = self._create(resource_named("pods"), meta["namespace"], pod)

            def start(obj: Obj) -> None:
                status = obj.setdefault("status", {})
                status["active"] = status.get("active", 0) + 1
                status.setdefault("startTime", now_rfc3339())
                status.setdefault("ready", 0)

            self.modify("jobs", meta["name"], start, meta["namespace"])
            return created

    def set_pod_phase(
        self,
        pod: Obj | str,
        phase: str,
        exit_code: int | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> Obj:
        """What the kubelet reports: Pending (containers waiting, `reason` such as ErrImagePull or
        ImagePullBackOff), Running, Succeeded or Failed (containers terminated with `exit_code`
        and `reason`, e.g. OOMKilled)."""
        now = now_rfc3339()
        if phase == "Pending":
            state: Obj = {"waiting": {"reason": reason or "ContainerCreating"}}
            if message:
                state["waiting"]["message"] = message
        elif phase == "Running":
            state = {"running": {"startedAt": now}}
        elif phase in ("Succeeded", "Failed"):
            code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
            state = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason or ("Completed" if code == 0 else "Error"),
                    "startedAt": now,
                    "finishedAt": now,
                }
            }
            if message:
                state["terminated"]["message"] = message
        else:
            raise ValueError(f"phase must be Pending, Running, Succeeded or Failed, not {phase!r}")

        def change(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            status["phase"] = phase
            if phase != "Pending":
                status.setdefault("startTime", now)
            ready = "True" if phase == "Running" else "False"
            status["conditions"] = [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
            ]
            status["containerStatuses"] = [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": phase == "Running",
                    "started": phase == "Running",
                    "restartCount": 0,
                    "state": copy.deepcopy(state),
                    "lastState": {},
                }
                for container in obj["spec"]["containers"]
            ]

        with self._cond:
            namespace, name = self._where(pod)
            return self.modify("pods", name, change, namespace)

    def set_job_condition(
        self, job: Obj | str, condition: str, reason: str | None = None, message: str | None = None
    ) -> Obj:
        """What the Job controller reports at the end: Complete (with SuccessCriteriaMet,
        status.succeeded, completionTime) or Failed (with FailureTarget, status.failed; `reason`
        BackoffLimitExceeded unless given, e.g. DeadlineExceeded)."""
        if condition not in ("Complete", "Failed"):
            raise ValueError(f"condition must be Complete or Failed, not {condition!r}")
        now = now_rfc3339()
        if condition == "Complete":
            reason = reason or "CompletionsReached"
            message = message or "Reached expected number of succeeded pods"
        else:
            reason = reason or "BackoffLimitExceeded"
            message = message or "Job has reached the specified backoff limit"
        first = "SuccessCriteriaMet" if condition == "Complete" else "FailureTarget"

        def change(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            status.setdefault("startTime", now)
            status["active"] = 0
            status["ready"] = 0
            status["succeeded" if condition == "Complete" else "failed"] = 1
            if condition == "Complete":
                status["completionTime"] = now
            status["conditions"] = [
                *status.get("conditions", []),
                *(
                    {
                        "type": kind,
                        "status": "True",
                        "reason": reason,
                        "message": message,
                        "lastProbeTime": now,
                        "lastTransitionTime": now,
                    }
                    for kind in (first, condition)
                ),
            ]

        with self._cond:
            namespace, name = self._where(job)
            return self.modify("jobs", name, change, namespace)

    def pods_of(self, job: Obj | str) -> list[Obj]:
        """The pods the Job controller made for a job (label job-name)."""
        namespace, name = self._where(job)
        return self.objects("pods", namespace, f"job-name={name}")

    def finish_job(
        self,
        job: Obj | str,
        exit_code: int = 0,
        reason: str | None = None,
        log: str | None = None,
        job_reason: str | None = None,
    ) -> Obj:
        """A job's whole run in one step, as its controller and the kubelet would report it: its pod
        (made if it has none) Running, its log, then Succeeded (exit code 0) or Failed with the exit
        code and `reason` (e.g. OOMKilled), and the job Complete or Failed (`job_reason`). The pod."""
        with self._cond:
            pods = self.pods_of(job)
            pod = pods[-1] if pods else self.create_pod_for(job)
            self.set_pod_phase(pod, "Running")
            if log is not None:
                self.set_pod_log(pod, log)
            self.set_pod_phase(pod, "Succeeded" if exit_code == 0 else "Failed", exit_code, reason)
            self.set_job_condition(job, "Complete" if exit_code == 0 else "Failed", job_reason)
            return copy.deepcopy(self._require(resource_named("pods"), *self._where(pod)))

    def _where(self, obj: Obj | str) -> tuple[str, str]:
        if isinstance(obj, str):
            return self.namespace, obj
        return obj["metadata"].get("namespace") or self.namespace, obj["metadata"]["name"]

    # -- the store's operations (under the lock) --------------------------------------------------------

    def _require(self, resource: Resource, namespace: str, name: str) -> Obj:
        obj = self._objects.get((resource.plural, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return obj

    def _record(self, kind: str, resource: Resource, obj: Obj, old: Obj | None) -> None:
        self._history.append(WatchEvent(self._rv, kind, resource, copy.deepcopy(obj), old))
        self._history_rvs.append(self._rv)
        self._cond.notify_all()

    def _create(self, resource: Resource, namespace: str, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        obj = copy.deepcopy(body)
        self._check_kind(resource, obj)
        meta = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        with self._cond:
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise invalid(
                        resource,
                        "",
                        [
                            (
                                "metadata.name",
                                "FieldValueRequired",
                                "Required value: name or generateName is required",
                            )
                        ],
                    )
                suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
                meta["name"] = meta["generateName"] + suffix
            name = meta["name"]
            if (resource.plural, namespace, name) in self._objects:
                raise already_exists(resource, name)
            for key in (
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
            ):
                meta.pop(key, None)
            meta["namespace"] = namespace
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if resource.generation:
                meta["generation"] = 1
            if resource.status:
                obj["status"] = {"phase": "Pending"} if resource.plural == "pods" else {}
            if resource.plural == "jobs":
                self._default_job(obj)
            validate(resource, obj, None)
            return self._store(resource, obj, None)

    def _default_job(self, job: Obj) -> None:
        meta, spec = job["metadata"], job.setdefault("spec", {})
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}})
        template = spec.setdefault("template", {})
        template_meta = template.setdefault("metadata", {}) or {}
        template["metadata"] = template_meta
        template_meta["labels"] = {
            **(template_meta.get("labels") or {}),
            "controller-uid": meta["uid"],
            "job-name": meta["name"],
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "batch.kubernetes.io/job-name": meta["name"],
        }

    def _check_kind(self, resource: Resource, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind not in (None, "", resource.kind) or api_version not in (None, "", resource.api_version):
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.api_version}) or the kind ({kind}) is not {resource.kind}"
            )
        obj["kind"] = resource.kind
        obj["apiVersion"] = resource.api_version

    def _store(self, resource: Resource, new: Obj, old: Obj | None) -> Obj:
        """Write an object: a new resourceVersion and an event, unless nothing changed."""
        meta = new["metadata"]
        if old is not None:
            if _comparable(new) == _comparable(old):
                return copy.deepcopy(old)
            if resource.generation and _spec_of(new) != _spec_of(old):
                meta["generation"] = old["metadata"].get("generation", 1) + 1
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        key = (resource.plural, meta["namespace"], meta["name"])
        if old is not None and meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # The last finalizer is gone: the deletion completes.
            self._objects[key] = new
            self._remove(resource, key, resource.default_propagation)
            return copy.deepcopy(new)
        self._objects[key] = new
        self._record("ADDED" if old is None else "MODIFIED", resource, new, old)
        return copy.deepcopy(new)

    def _replace(self, resource: Resource, namespace: str, name: str, body: Any, subresource: str) -> Obj:
        """PUT, and the end of PATCH: optimistic concurrency, then the subresource's rules."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        new = copy.deepcopy(body)
        self._check_kind(resource, new)
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            raise bad_request("metadata is required")
        if meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        with self._cond:
            old = self._require(resource, namespace, name)
            old_meta = old["metadata"]
            wanted = meta.get("resourceVersion")
            if wanted not in (None, "") and wanted != old_meta["resourceVersion"]:
                raise conflict(
                    resource,
                    name,
                    STALE,
                )
            if meta.get("uid") not in (None, "", old_meta["uid"]):
                raise conflict(
                    resource,
                    name,
                    f"Precondition failed: UID in precondition: {meta['uid']}, "
                    f"UID in object meta: {old_meta['uid']}",
                )
            if subresource == "status":
                result = copy.deepcopy(old)
                result["status"] = new.get("status") or {}
            else:
                result = new
                for key in (
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ):
                    if key in old_meta:
                        meta[key] = old_meta[key]
                    else:
                        meta.pop(key, None)
                meta["name"], meta["namespace"] = name, namespace
                if resource.status:
                    result["status"] = copy.deepcopy(old.get("status", {}))
                validate(resource, result, old)
            return self._store(resource, result, old)

    def _patch(
        self, resource: Resource, namespace: str, name: str, content_type: str, patch: Any, subresource: str
    ) -> Obj:
        kind = PATCH_TYPES.get(content_type.split(";", maxsplit=1)[0].strip())
        accepted = ["application/json-patch+json", "application/merge-patch+json"]  # no server-side apply
        if not resource.custom:
            accepted.insert(2, "application/strategic-merge-patch+json")
        if kind is None or (kind == "strategic" and resource.custom):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(accepted),
            )
        with self._cond:
            old = self._require(resource, namespace, name)
            try:
                if kind == "json":
                    new = json_patch(old, patch)
                elif kind == "merge":
                    if not isinstance(patch, dict):
                        raise ValueError("a merge patch is a JSON object")
                    new = merge_patch(old, patch)
                else:
                    if not isinstance(patch, dict):
                        raise ValueError("a strategic merge patch is a JSON object")
                    new = strategic_merge_patch(old, patch)
            except (ValueError, KeyError, IndexError, TypeError) as error:
                raise ApiError(
                    422, "Invalid", f"the server rejected our request due to an error in our request: {error}"
                ) from None
            new_meta = new.setdefault("metadata", {})
            if new_meta.get("resourceVersion") == old["metadata"]["resourceVersion"] and not (
                isinstance(patch, dict) and "resourceVersion" in (patch.get("metadata") or {})
            ):
                new_meta.pop("resourceVersion")  # a patch without a precondition is unconditional
            return self._replace(resource, namespace, name, new, subresource)

    def _delete(self, resource: Resource, namespace: str, name: str, options: Obj) -> Obj:
        with self._cond:
            obj = self._require(resource, namespace, name)
            meta = obj["metadata"]
            preconditions = options.get("preconditions") or {}
            if preconditions.get("uid") not in (None, meta["uid"]):
                raise conflict(
                    resource,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {meta['uid']}",
                )
            if preconditions.get("resourceVersion") not in (None, meta["resourceVersion"]):
                raise conflict(
                    resource,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{preconditions['resourceVersion']}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}",
                )
            policy = options.get("propagationPolicy")
            if options.get("orphanDependents") is not None and policy is None:
                policy = "Orphan" if options["orphanDependents"] else "Background"
            policy = policy or resource.default_propagation
            if policy not in ("Orphan", "Background", "Foreground"):
                raise invalid(
                    resource,
                    name,
                    [("propagationPolicy", "FieldValueNotSupported", f'Unsupported value: "{policy}"')],
                )
            if meta.get("finalizers"):
                if not meta.get("deletionTimestamp"):
                    marked = copy.deepcopy(obj)
                    marked["metadata"]["deletionTimestamp"] = now_rfc3339()
                    marked["metadata"]["deletionGracePeriodSeconds"] = 0
                    self._store(resource, marked, obj)
                return copy.deepcopy(self._objects[(resource.plural, namespace, name)])
            return self._remove(resource, (resource.plural, namespace, name), policy)

    def _remove(self, resource: Resource, key: Key, policy: str) -> Obj:
        """Remove an object now, then its dependents (Background, Foreground) or their references to it."""
        obj = self._objects.pop(key)
        self._logs = {k: v for k, v in self._logs.items() if resource.plural != "pods" or k[:2] != key[1:]}
        self._rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._record("DELETED", resource, gone, obj)
        uid = obj["metadata"]["uid"]
        for dep_key, dependent in list(self._objects.items()):
            references = dependent["metadata"].get("ownerReferences") or []
            if dep_key not in self._objects or not any(ref.get("uid") == uid for ref in references):
                continue
            dep_resource = resource_named(dep_key[0])
            remaining = [ref for ref in references if ref.get("uid") != uid]
            alive = any(self._owner_exists(dep_key[1], ref) for ref in remaining)
            if policy == "Orphan" or alive:
                changed = copy.deepcopy(dependent)
                changed["metadata"]["ownerReferences"] = remaining
                self._store(dep_resource, changed, dependent)
            else:
                self._delete(dep_resource, dep_key[1], dep_key[2], {"propagationPolicy": "Background"})
        return gone

    def _owner_exists(self, namespace: str, reference: Obj) -> bool:
        return any(
            obj["metadata"]["uid"] == reference.get("uid")
            for (_, ns, _), obj in self._objects.items()
            if ns == namespace
        )


def _comparable(obj: Obj) -> Obj:
    trimmed = copy.deepcopy(obj)
    trimmed["metadata"].pop("resourceVersion", None)
    trimmed["metadata"].pop("generation", None)
    return trimmed


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


# -- HTTP ----------------------------------------------------------------------------------------------


@dataclass
class _Route:
    resource: Resource
    namespace: str | None  # None: across namespaces (lists and watches only)
    name: str | None
    subresource: str


def _discovery_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for res in RESOURCES:
        if (res.group, res.version) != (group, version):
            continue
        entry = {
            "name": res.plural,
            "singularName": res.kind.lower(),
            "namespaced": True,
            "kind": res.kind,
            "verbs": VERBS,
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        resources.append(entry)
        if res.status:
            resources.append(
                {
                    "name": f"{res.plural}/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": res.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if res.plural == "pods":
            resources.append(
                {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]}
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _api_group(group: str) -> Obj:
    version = {"groupVersion": f"{group}/v1", "version": "v1"}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [version],
        "preferredVersion": version,
    }


GROUPS = sorted({res.group for res in RESOURCES if res.group})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the agent, the controller and the test connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is no error of the server's; anything else is printed."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server_version = "kube-api"
    _raw_body = b""

    @property
    def kube(self) -> KubeApi:
        return self.server.kube  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- answers -----------------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode())

    def _body(self) -> Any:
        raw = self._raw_body
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise bad_request("the body of the request is not valid JSON") from None

    # -- routing -------------------------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        # Read the whole request first: an error answered before its body was read would leave the
        # body in the connection, to be taken for the next request.
        length = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if self._discovery(method, url.path):
                return
            route = self._route(url.path)
            if route is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            verb = self._verb(method, route, query)
            counted = route.resource.plural + (f"/{route.subresource}" if route.subresource else "")
            with self.kube._cond:
                self.kube.requests[(verb, counted)] += 1
                failure = self.kube._failures.get((verb, counted))
                if failure is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self.kube._failures[(verb, counted)]
                self.kube._cond.notify_all()
            if failure is not None:
                raise ApiError(failure.code, failure.reason, f"injected failure of {verb} {counted}")
            self._dispatch(verb, route, query)
        except ApiError as error:
            self._json(error.code, error.status())

    def _discovery(self, method: str, path: str) -> bool:
        path = path.rstrip("/") or "/"
        answer: Any = None
        if path == "/version":
            answer = {
                **SERVER_VERSION,
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        elif path == "/api":
            answer = {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.kube.host}:{self.kube.port}"}
                ],
            }
        elif path == "/api/v1":
            answer = _discovery_list("", "v1")
        elif path == "/apis":
            answer = {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [_api_group(group) for group in GROUPS],
            }
        elif path.startswith("/apis/") and path.count("/") == 2 and path.split("/")[2] in GROUPS:
            answer = _api_group(path.split("/")[2])
        elif path.startswith("/apis/") and path.count("/") == 3 and path.split("/")[2] in GROUPS:
            _, _, group, version = path.split("/")
            if version == "v1":
                answer = _discovery_list(group, version)
        elif path in ("/healthz", "/readyz", "/livez") and method == "GET":
            self._send(200, b"ok", "text/plain")
            return True
        if answer is None:
            return False
        if method != "GET":
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        self._json(200, answer)
        return True

    def _route(self, path: str) -> _Route | None:
        parts = [part for part in path.split("/") if part]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not 1 <= len(rest) <= 3 or (namespace is None and len(rest) != 1):
            return None
        resource = next(
            (r for r in RESOURCES if (r.group, r.version, r.plural) == (group, version, rest[0])), None
        )
        if resource is None:
            return None
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) == 3 else ""
        if subresource and not (
            (subresource == "status" and resource.status)
            or (subresource == "log" and resource.plural == "pods")
        ):
            return None
        return _Route(resource, namespace, name, subresource)

    def _verb(self, method: str, route: _Route, query: dict[str, str]) -> str:
        if route.name is None:
            verbs = {
                "GET": "watch" if query.get("watch") in ("true", "1") else "list",
                "POST": "create",
                "DELETE": "deletecollection",
            }
        elif route.subresource == "log":
            verbs = {"GET": "get"}
        elif route.subresource == "status":
            verbs = {"GET": "get", "PUT": "update", "PATCH": "patch"}
        else:
            verbs = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        if method not in verbs or ((route.namespace is None) and verbs[method] not in ("list", "watch")):
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        return verbs[method]

    def _dispatch(self, verb: str, route: _Route, query: dict[str, str]) -> None:
        if route.name is None:
            self._collection(verb, route, query)
        else:
            assert route.namespace is not None  # _verb() allows no item across namespaces
            self._item(verb, route.resource, route.namespace, route.name, route.subresource, query)

    def _options(self, query: dict[str, str]) -> Obj:
        """DeleteOptions: the body's, with the query's propagationPolicy."""
        options = self._body() or {}
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        return dict(options)

    def _collection(self, verb: str, route: _Route, query: dict[str, str]) -> None:
        kube, resource, namespace = self.kube, route.resource, route.namespace
        if verb == "watch":
            self._watch(route, query)
        elif verb == "list":
            self._json(200, self._list(route, query))
        elif verb == "create":
            assert namespace is not None
            self._json(201, kube._create(resource, namespace, self._body()))
        else:  # deletecollection
            assert namespace is not None
            options = self._options(query)
            for item in self._list(route, query)["items"]:
                try:
                    kube._delete(resource, namespace, item["metadata"]["name"], options)
                except ApiError as error:  # already gone, e.g. with its owner earlier in the collection
                    if error.code != 404:
                        raise
            self._json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    def _item(
        self,
        verb: str,
        resource: Resource,
        namespace: str,
        name: str,
        subresource: str,
        query: dict[str, str],
    ) -> None:
        kube = self.kube
        if subresource == "log":
            self._send(200, self._log(namespace, name, query).encode(), "text/plain")
        elif verb == "get":
            with kube._cond:
                obj = copy.deepcopy(kube._require(resource, namespace, name))
            self._json(200, obj)
        elif verb == "update":
            self._json(200, kube._replace(resource, namespace, name, self._body(), subresource))
        elif verb == "patch":
            content_type = self.headers.get("Content-Type") or ""
            self._json(200, kube._patch(resource, namespace, name, content_type, self._body(), subresource))
        else:
            gone = kube._delete(resource, namespace, name, self._options(query))
            if resource.custom or resource.plural == "pods" or gone["metadata"].get("deletionTimestamp"):
                self._json(200, gone)  # the object, as the real server answers for these
            else:
                details = {**_details(resource, name), "uid": gone["metadata"]["uid"]}
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
                self._json(200, {**status, "details": details})

    # -- lists, watches and logs ---------------------------------------------------------------------------

    def _matcher(self, route: _Route, query: dict[str, str]) -> Callable[[Obj], bool]:
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(route.resource, query.get("fieldSelector"))
        namespace = route.namespace
        return lambda obj: (
            (namespace is None or obj["metadata"]["namespace"] == namespace) and labels(obj) and fields(obj)
        )

    def _list(self, route: _Route, query: dict[str, str]) -> Obj:
        kube, resource = self.kube, route.resource
        match = self._matcher(route, query)
        start = ""
        if query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(query["continue"]))
                start = token["start"]
            except (ValueError, KeyError):
                raise bad_request("continue key is not valid") from None
        limit = int(query.get("limit") or 0)
        with kube._cond:
            rv = kube._rv
            items = [
                copy.deepcopy(obj)
                for (plural, ns, name), obj in sorted(kube._objects.items())
                if plural == resource.plural and f"{ns}/{name}" > start and match(obj)
            ]
        metadata: Obj = {"resourceVersion": str(rv)}
        if limit and len(items) > limit:
            items, rest = items[:limit], items[limit:]
            last = items[-1]["metadata"]
            metadata["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "start": f"{last['namespace']}/{last['name']}"}).encode()
            ).decode()
            metadata["remainingItemCount"] = len(rest)
        if not resource.custom:
            for item in items:  # built-in lists leave out their items' kind and apiVersion
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": items,
        }

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, kind: str, obj: Obj) -> None:
        self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

    def _watch(self, route: _Route, query: dict[str, str]) -> None:
        """A watch: the initial or replayed events, then each change until it ends."""
        kube, resource = self.kube, route.resource
        match = self._matcher(route, query)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else kube.watch_timeout
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        watch = _Watch(resource, kube._epoch)
        try:
            position = self._watch_start(watch, match, query)
            if position is None:
                return
            while True:
                with kube._cond:
                    while True:
                        pending = kube._history[position:]
                        ended = kube._epoch != watch.epoch
                        timed_out = time.monotonic() >= deadline
                        wants_bookmark = bookmarks and kube._bookmarks != watch.bookmarks
                        if pending or ended or timed_out or wants_bookmark:
                            break
                        kube._cond.wait(deadline - time.monotonic())
                    position += len(pending)
                    watch.bookmarks = kube._bookmarks
                    abrupt = kube._abrupt
                    current_rv = kube._rv  # every change up to it is in `pending` or was sent before
                if ended and abrupt:  # a crash: the connection drops mid-stream
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                for event in pending:
                    if event.resource is resource:
                        self._send_change(event, match)
                if (timed_out or wants_bookmark) and bookmarks and not ended:
                    self._bookmark(resource, current_rv)
                if ended or timed_out:
                    break
            self._chunk(b"")
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            with kube._cond:
                if watch in kube._watches:
                    kube._watches.remove(watch)
                kube._cond.notify_all()

    def _watch_start(self, watch: _Watch, match: Callable[[Obj], bool], query: dict[str, str]) -> int | None:
        """Send the initial events; the history position to go on from (None: the watch has ended)."""
        kube, resource = self.kube, watch.resource
        asked = query.get("resourceVersion") or ""
        with kube._cond:
            watch.epoch, watch.bookmarks, start_rv = kube._epoch, kube._bookmarks, kube._rv
            initial: list[Obj] = []
            if asked in ("", "0"):  # the current state as ADDED events, then the changes after it
                initial = [
                    copy.deepcopy(obj)
                    for (plural, _, _), obj in sorted(kube._objects.items())
                    if plural == resource.plural and match(obj)
                ]
                position = len(kube._history)
            else:
                since = int(asked) if asked.isdigit() else -1
                if since < kube._floor:
                    message = f"too old resource version: {asked} ({kube._floor + 1})"
                    self._event("ERROR", expired(message).status())
                    self._chunk(b"")
                    return None
                position = bisect.bisect_right(kube._history_rvs, since)
            kube._watches.append(watch)
            kube._cond.notify_all()
        for obj in initial:
            self._event("ADDED", obj)
        if query.get("sendInitialEvents") == "true":
            self._bookmark(resource, start_rv, initial_end=True)
        return position

    def _send_change(self, event: WatchEvent, match: Callable[[Obj], bool]) -> None:
        now = match(event.obj)
        before = event.old is not None and match(event.old)
        if event.type == "ADDED" and now:
            self._event("ADDED", event.obj)
        elif event.type == "DELETED" and before:
            self._event("DELETED", event.obj)
        elif event.type == "MODIFIED":
            if now and before:
                self._event("MODIFIED", event.obj)
            elif now:
                self._event("ADDED", event.obj)
            elif before:
                self._event("DELETED", event.obj)

    def _bookmark(self, resource: Resource, rv: int, initial_end: bool = False) -> None:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        self._event("BOOKMARK", {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": meta})

    def _log(self, namespace: str, name: str, query: dict[str, str]) -> str:
        kube = self.kube
        pods = resource_named("pods")
        with kube._cond:
            pod = kube._require(pods, namespace, name)
            containers = [c["name"] for c in pod["spec"]["containers"]]
            container = query.get("container")
            if container is None:
                if len(containers) > 1:
                    raise bad_request(
                        f"a container name must be specified for pod {name}, "
                        f"choose one of: [{' '.join(containers)}]"
                    )
                container = containers[0]
            if container not in containers:
                raise bad_request(f"container {container} is not valid for pod {name}")
            text = kube._logs.get((namespace, name, container))
            statuses = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses", [])}
            waiting = (statuses.get(container, {}).get("state") or {}).get("waiting")
            if text is None and (waiting or not statuses):
                reason = (waiting or {}).get("reason", "ContainerCreating")
                raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        text = text or ""
        if query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            tail = int(query["tailLines"])
            text = "".join(lines[-tail:]) if tail > 0 else ""
        if query.get("limitBytes"):
            text = text.encode()[: int(query["limitBytes"])].decode(errors="ignore")
        return text
