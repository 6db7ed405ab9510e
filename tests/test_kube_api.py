"""The in-process Kubernetes API server (tests/kube_api.py), driven by the official `kubernetes` client
as the agent and the controller drive a real one: if these pass, what the data plane's tests show
against it holds for the wire protocol the real server speaks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import pytest
import urllib3
from kubernetes import watch
from kubernetes.client import ApiException

from kube_api import KubeApi, Obj

NS = "default"
GROUP, VERSION, PLURAL = "task.io", "v1", "tasks"


@pytest.fixture
def client(kube_api: KubeApi) -> Iterator[k8s.ApiClient]:
    with kube_api.api_client() as api_client:
        yield api_client


def as_obj(value: object) -> Obj:
    """A custom object as the client answers it (typed `object`): a dict."""
    assert isinstance(value, dict)
    return value


def plain(client: k8s.ApiClient, model: object) -> Obj:
    """A model the client deserialized, back as the API's JSON (camelCase keys)."""
    return as_obj(client.sanitize_for_serialization(model))


class Tasks:
    """The Task resources through the official client's CustomObjectsApi, answers as dicts."""

    def __init__(self, client: k8s.ApiClient, namespace: str = NS) -> None:
        self.api = k8s.CustomObjectsApi(client)
        self.namespace = namespace

    def create(self, body: Obj, namespace: str | None = None) -> Obj:
        return as_obj(
            self.api.create_namespaced_custom_object(
                GROUP, VERSION, namespace or self.namespace, PLURAL, body
            )
        )

    def get(self, name: str) -> Obj:
        return as_obj(self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name))

    def get_status(self, name: str) -> Obj:
        return as_obj(
            self.api.get_namespaced_custom_object_status(GROUP, VERSION, self.namespace, PLURAL, name)
        )

    def listed(self, **options: Any) -> Obj:
        return as_obj(
            self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, **options)
        )

    def replace(self, name: str, body: Obj) -> Obj:
        return as_obj(
            self.api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, body)
        )

    def replace_status(self, name: str, body: Obj) -> Obj:
        return as_obj(
            self.api.replace_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, name, body
            )
        )

    def patch(self, name: str, body: Obj | list[Obj], **options: Any) -> Obj:
        return as_obj(
            self.api.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, body, **options
            )
        )

    def patch_status(self, name: str, body: Obj) -> Obj:
        return as_obj(
            self.api.patch_namespaced_custom_object_status(GROUP, VERSION, self.namespace, PLURAL, name, body)
        )

    def delete(self, name: str, **options: Any) -> Obj:
        return as_obj(
            self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, **options)
        )

    def watch(self, stream: watch.Watch, **options: Any) -> Iterator[dict[str, Any]]:
        """The official Watch helper's events on the tasks of the namespace."""
        events: Iterator[dict[str, Any]] = stream.stream(
            self.api.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, **options
        )
        return events


def names_of(events: Iterator[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(event["type"], event["raw_object"]["metadata"]["name"]) for event in events]


def task(name: str, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "task.io/v1",
        "kind": "Task",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taskId": 1, "attempt": 1, **spec},
    }


def job(name: str, owner: object = None, restart_policy: str = "Never") -> k8s.V1Job:
    owners = None
    if owner is not None:
        meta = as_obj(owner)["metadata"]
        owners = [
            k8s.V1OwnerReference(
                api_version="task.io/v1", kind="Task", name=meta["name"], uid=meta["uid"], controller=True
            )
        ]
    container = k8s.V1Container(name="main", image="busybox", command=["sh", "-c", "echo hi"])
    labels = {"app.kubernetes.io/managed-by": "taskservice"}  # the pods get the template's labels only
    return k8s.V1Job(
        metadata=k8s.V1ObjectMeta(name=name, labels=labels, owner_references=owners),
        spec=k8s.V1JobSpec(
            backoff_limit=0,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(restart_policy=restart_policy, containers=[container]),
            ),
        ),
    )


def status_of(error: ApiException) -> Obj:
    """The Status object of an error answer."""

    body: Obj = json.loads(error.body or "")
    assert body["kind"] == "Status"
    assert body["code"] == error.status
    return body


def in_background(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


# -- discovery ---------------------------------------------------------------------------------------


def test_discovery_answers_the_official_client(client: k8s.ApiClient) -> None:
    assert k8s.VersionApi(client).get_code().major == "1"
    assert k8s.CoreApi(client).get_api_versions().versions == ["v1"]
    groups = plain(client, k8s.ApisApi(client).get_api_versions())["groups"]
    preferred = {group["name"]: group["preferredVersion"]["groupVersion"] for group in groups}
    assert preferred == {
        "batch": "batch/v1",
        "coordination.k8s.io": "coordination.k8s.io/v1",
        "task.io": "task.io/v1",
    }
    batch = {r["name"]: r for r in plain(client, k8s.BatchV1Api(client).get_api_resources())["resources"]}
    assert (batch["jobs"]["kind"], batch["jobs"]["namespaced"]) == ("Job", True)
    assert set(batch["jobs/status"]["verbs"]) == {"get", "patch", "update"}
    core = {r["name"] for r in plain(client, k8s.CoreV1Api(client).get_api_resources())["resources"]}
    assert {"pods", "pods/log", "pods/status", "configmaps", "events"} <= core
    leases = {
        r["name"] for r in plain(client, k8s.CoordinationV1Api(client).get_api_resources())["resources"]
    }
    assert "leases" in leases


def test_an_unknown_resource_is_a_not_found_status(client: k8s.ApiClient) -> None:
    custom = k8s.CustomObjectsApi(client)
    with pytest.raises(ApiException) as raised:
        custom.list_namespaced_custom_object("task.io", "v1", NS, "nothings")
    assert status_of(raised.value)["reason"] == "NotFound"


# -- the Task resource -------------------------------------------------------------------------------


def test_task_crud_and_the_status_subresource(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    tasks = Tasks(client)
    created = tasks.create({**task("task-1"), "status": {"phase": "Succeeded"}})
    meta = created["metadata"]
    assert created["status"] == {}, "create ignores status when there is a status subresource"
    assert meta["namespace"] == NS
    assert meta["generation"] == 1
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert isinstance(meta["resourceVersion"], str)
    assert int(meta["resourceVersion"]) == kube_api.resource_version

    # The main resource ignores status; a spec change bumps the generation.
    body = tasks.get("task-1")
    body["spec"]["attempt"] = 2
    body["status"] = {"phase": "Running"}
    replaced = tasks.replace("task-1", body)
    assert replaced["spec"]["attempt"] == 2
    assert replaced["status"] == {}
    assert replaced["metadata"]["generation"] == 2
    assert replaced["metadata"]["uid"] == meta["uid"]
    assert int(replaced["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    # The status subresource ignores everything but status; the generation stays.
    replaced["spec"]["attempt"] = 99
    replaced["metadata"]["labels"] = {"ignored": "yes"}
    replaced["status"] = {"phase": "Running", "attempt": 2}
    with_status = tasks.replace_status("task-1", replaced)
    assert with_status["status"] == {"phase": "Running", "attempt": 2}
    assert with_status["spec"]["attempt"] == 2
    assert with_status["metadata"].get("labels") == {}
    assert with_status["metadata"]["generation"] == 2

    patched = tasks.patch_status(
        "task-1", {"status": {"phase": "Succeeded", "reported": True}, "spec": {"attempt": 5}}
    )
    assert patched["status"] == {"phase": "Succeeded", "attempt": 2, "reported": True}
    assert patched["spec"]["attempt"] == 2
    assert tasks.get_status("task-1")["status"]["reported"] is True

    assert tasks.delete("task-1")["metadata"]["name"] == "task-1"
    with pytest.raises(ApiException) as raised:
        tasks.get("task-1")
    status = status_of(raised.value)
    assert raised.value.status == 404
    assert status["reason"] == "NotFound"
    assert status["message"] == 'tasks.task.io "task-1" not found'
    assert status["details"] == {"name": "task-1", "group": "task.io", "kind": "tasks"}
    assert kube_api.count("create", "tasks") == 1
    assert kube_api.count("patch", "tasks/status") == 1


def test_create_twice_and_a_stale_update_are_conflicts(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    tasks = Tasks(client)
    first = tasks.create(task("task-2"))
    with pytest.raises(ApiException) as raised:
        tasks.create(task("task-2"))
    assert raised.value.status == 409
    assert status_of(raised.value)["reason"] == "AlreadyExists"

    newer = tasks.patch("task-2", {"spec": {"attempt": 2}})
    first["spec"]["attempt"] = 3  # first still carries the old resourceVersion
    with pytest.raises(ApiException) as raised:
        tasks.replace("task-2", first)
    assert raised.value.status == 409
    assert status_of(raised.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(raised.value)["message"]

    stale_patch = {
        "metadata": {"resourceVersion": first["metadata"]["resourceVersion"]},
        "spec": {"attempt": 4},
    }
    with pytest.raises(ApiException) as raised:
        tasks.patch("task-2", stale_patch)
    assert raised.value.status == 409

    # A write that changes nothing keeps the resourceVersion (and makes no event).
    same = tasks.replace("task-2", newer)
    assert same["metadata"]["resourceVersion"] == newer["metadata"]["resourceVersion"]
    assert tasks.get("task-2")["spec"]["attempt"] == 2
    assert kube_api.count("update", "tasks") == 2


def test_concurrent_read_modify_writes_lose_no_update(kube_api: KubeApi) -> None:
    """Optimistic concurrency under contention: every writer retries on 409 until its write lands."""
    kube_api.create("configmaps", {"metadata": {"name": "counter"}, "data": {"n": "0"}})
    conflicts: list[int] = []

    def increment(times: int) -> None:
        with kube_api.api_client() as own:
            core = k8s.CoreV1Api(own)
            for _ in range(times):
                while True:
                    counter = core.read_namespaced_config_map("counter", NS)
                    assert counter.data is not None
                    counter.data["n"] = str(int(counter.data["n"]) + 1)
                    try:
                        core.replace_namespaced_config_map("counter", NS, counter)
                        break
                    except ApiException as error:
                        conflicts.append(error.status)

    writers = [in_background(lambda: increment(5)) for _ in range(6)]
    for writer in writers:
        writer.join()
    final = kube_api.get("configmaps", "counter")
    assert final is not None
    assert final["data"]["n"] == "30"
    assert set(conflicts) <= {409}
    assert kube_api.count("update", "configmaps") == 30 + len(conflicts)


def test_label_and_field_selectors_and_pages(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    tasks = Tasks(client)
    for name, agent in (("task-1", "a"), ("task-2", "b"), ("task-3", "a")):
        tasks.create(task(name, {"task.io/agent": agent, "app.kubernetes.io/managed-by": "taskservice"}))
    tasks.create(task("task-4"))
    tasks.create(task("task-5", {"task.io/agent": "a"}), namespace="other")

    def names(**options: Any) -> list[str]:
        listed = tasks.listed(**options)
        assert listed["metadata"]["resourceVersion"] == str(kube_api.resource_version)
        assert listed["kind"] == "TaskList"
        return [item["metadata"]["name"] for item in listed["items"]]

    assert names() == ["task-1", "task-2", "task-3", "task-4"]
    assert names(label_selector="task.io/agent=a") == ["task-1", "task-3"]
    assert names(label_selector="task.io/agent==b") == ["task-2"]
    assert names(label_selector="task.io/agent!=a") == ["task-2", "task-4"]
    assert names(label_selector="task.io/agent in (a, b),app.kubernetes.io/managed-by") == [
        "task-1",
        "task-2",
        "task-3",
    ]
    assert names(label_selector="task.io/agent notin (a)") == ["task-2", "task-4"]
    assert names(label_selector="!task.io/agent") == ["task-4"]
    assert names(field_selector="metadata.name=task-2") == ["task-2"]
    assert names(field_selector="metadata.name!=task-2", label_selector="task.io/agent") == [
        "task-1",
        "task-3",
    ]
    everywhere = as_obj(
        tasks.api.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector="task.io/agent=a")
    )
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [
        ("default", "task-1"),
        ("default", "task-3"),
        ("other", "task-5"),
    ]
    with pytest.raises(ApiException) as raised:
        names(field_selector="spec.taskId=1")
    assert raised.value.status == 400

    page = tasks.listed(limit=3)
    assert [i["metadata"]["name"] for i in page["items"]] == ["task-1", "task-2", "task-3"]
    assert page["metadata"]["remainingItemCount"] == 1
    rest = tasks.listed(limit=3, _continue=page["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in rest["items"]] == ["task-4"]
    assert "continue" not in rest["metadata"]


def test_patch_kinds_as_the_official_client_sends_them(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    core, tasks = k8s.CoreV1Api(client), Tasks(client)
    containers = [k8s.V1Container(name="main", image="one"), k8s.V1Container(name="sidecar", image="two")]
    spec = k8s.V1PodSpec(containers=containers)
    core.create_namespaced_pod(NS, k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="p"), spec=spec))

    # A dict to a built-in kind goes as a strategic merge patch: containers merge by name.
    pod = plain(
        client, core.patch_namespaced_pod("p", NS, {"spec": {"containers": [{"name": "main", "image": "3"}]}})
    )
    assert [(c["name"], c["image"]) for c in pod["spec"]["containers"]] == [("main", "3"), ("sidecar", "two")]
    # A list goes as a JSON patch.
    pod = plain(
        client,
        core.patch_namespaced_pod("p", NS, [{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]),
    )
    assert pod["metadata"]["labels"] == {"x": "y"}
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_pod("p", NS, [{"op": "test", "path": "/metadata/labels/x", "value": "z"}])
    assert raised.value.status == 422

    # A custom object's patch is a merge patch: lists are replaced, null removes a key.
    tasks.create(task("task-1", args=["a", "b"], env={"A": "1"}))
    patched = tasks.patch("task-1", {"spec": {"args": ["c"], "env": {"A": None, "B": "2"}}})
    assert patched["spec"]["args"] == ["c"]
    assert patched["spec"]["env"] == {"B": "2"}
    operations = [{"op": "replace", "path": "/spec/attempt", "value": 7}]
    patched = tasks.patch("task-1", operations, _content_type="application/json-patch+json")
    assert patched["spec"]["attempt"] == 7
    # As on a real server, a custom resource takes no strategic merge patch.
    with pytest.raises(ApiException) as raised:
        tasks.patch("task-1", {"spec": {}}, _content_type="application/strategic-merge-patch+json")
    assert raised.value.status == 415
    assert status_of(raised.value)["reason"] == "UnsupportedMediaType"
    assert kube_api.count("patch", "pods") == 3


# -- watches -------------------------------------------------------------------------------------------


def end_watch_once_open(kube_api: KubeApi, resource: str, abrupt: bool = False) -> threading.Thread:
    """End the watch on `resource` as soon as it is open (the server's side of the test)."""

    def end() -> None:
        kube_api.wait_until(lambda: kube_api.open_watches(resource) == 1)
        kube_api.end_watches(abrupt=abrupt)

    return in_background(end)


def test_list_then_watch_resumes_from_a_resource_version_after_the_server_ends_it(
    kube_api: KubeApi, client: k8s.ApiClient
) -> None:
    tasks = Tasks(client)
    tasks.create(task("task-1"))
    version = tasks.listed()["metadata"]["resourceVersion"]

    def writer() -> None:
        kube_api.wait_until(lambda: kube_api.open_watches("tasks") == 1)
        kube_api.create("tasks", task("task-2"))
        kube_api.modify("tasks", "task-1", lambda obj: obj["spec"].update(attempt=2))
        kube_api.end_watches()

    thread = in_background(writer)
    # With timeout_seconds the Watch helper does not resume by itself: it ends with the server's stream.
    stream = watch.Watch()
    seen = names_of(tasks.watch(stream, resource_version=version, timeout_seconds=3600))
    thread.join()
    assert seen == [("ADDED", "task-2"), ("MODIFIED", "task-1")]
    assert stream.resource_version == str(kube_api.resource_version)

    # Changes while no one watched are replayed from the last resourceVersion seen.
    kube_api.delete("tasks", "task-2")
    kube_api.create("tasks", task("task-3"))
    end_watch_once_open(kube_api, "tasks")
    replayed = list(
        tasks.watch(watch.Watch(), resource_version=stream.resource_version, timeout_seconds=3600)
    )
    assert names_of(iter(replayed)) == [("DELETED", "task-2"), ("ADDED", "task-3")]
    versions = [int(event["raw_object"]["metadata"]["resourceVersion"]) for event in replayed]
    assert versions == [kube_api.resource_version - 1, kube_api.resource_version]
    assert kube_api.count("watch", "tasks") == 2


def test_the_watch_helper_resumes_by_itself_when_the_server_ends_the_watch(
    kube_api: KubeApi, client: k8s.ApiClient
) -> None:
    batch = k8s.BatchV1Api(client)
    version = plain(client, batch.list_namespaced_job(NS))["metadata"]["resourceVersion"]

    def writer() -> None:
        with kube_api.api_client() as other:
            jobs = k8s.BatchV1Api(other)
            kube_api.wait_until(lambda: kube_api.open_watches("jobs") == 1)
            jobs.create_namespaced_job(NS, job("task-1-1"))
            kube_api.end_watches()
            kube_api.wait_until(
                lambda: kube_api.count("watch", "jobs") == 2 and kube_api.open_watches("jobs") == 1
            )
            jobs.create_namespaced_job(NS, job("task-2-1"))

    thread = in_background(writer)
    stream = watch.Watch()
    names = []
    for event in stream.stream(batch.list_namespaced_job, NS, resource_version=version):
        assert event["type"] == "ADDED"
        assert isinstance(event["object"], k8s.V1Job)
        names.append(event["raw_object"]["metadata"]["name"])
        if len(names) == 2:
            stream.stop()
    thread.join()
    assert names == ["task-1-1", "task-2-1"]
    assert kube_api.count("watch", "jobs") == 2


def test_a_watch_older_than_the_history_is_gone_and_a_relist_recovers(
    kube_api: KubeApi, client: k8s.ApiClient
) -> None:
    tasks = Tasks(client)
    old = tasks.listed()["metadata"]["resourceVersion"]
    tasks.create(task("task-1"))
    kube_api.compact()
    events = tasks.watch(watch.Watch(), resource_version=old)
    with pytest.raises(ApiException) as raised:  # the helper retries once, then gives up
        next(events)
    assert raised.value.status == 410
    assert "too old resource version" in str(raised.value.reason)
    assert kube_api.count("watch", "tasks") == 2

    # Re-list, then watch from the list's resourceVersion.
    listed = tasks.listed()
    assert [item["metadata"]["name"] for item in listed["items"]] == ["task-1"]
    kube_api.create("tasks", task("task-2"))
    end_watch_once_open(kube_api, "tasks")
    version = listed["metadata"]["resourceVersion"]
    assert names_of(tasks.watch(watch.Watch(), resource_version=version, timeout_seconds=3600)) == [
        ("ADDED", "task-2")
    ]


def test_a_watch_without_resource_version_starts_with_the_current_objects(
    kube_api: KubeApi, client: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(client)
    core.create_namespaced_config_map(
        NS, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="one"), data={"a": "1"})
    )
    core.create_namespaced_config_map(NS, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="two")))
    end_watch_once_open(kube_api, "configmaps")
    events = list(watch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=3600))
    assert names_of(iter(events)) == [("ADDED", "one"), ("ADDED", "two")]
    assert isinstance(events[0]["object"], k8s.V1ConfigMap)
    assert events[0]["object"].data == {"a": "1"}


def test_a_watch_with_a_selector_sees_objects_enter_and_leave_it(
    kube_api: KubeApi, client: k8s.ApiClient
) -> None:
    tasks = Tasks(client)
    version = tasks.listed()["metadata"]["resourceVersion"]
    kube_api.create("tasks", task("task-1", {"task.io/agent": "a"}))
    kube_api.create("tasks", task("task-2", {"task.io/agent": "b"}))
    kube_api.modify("tasks", "task-1", lambda obj: obj["metadata"]["labels"].update({"task.io/agent": "b"}))
    kube_api.modify("tasks", "task-2", lambda obj: obj["metadata"]["labels"].update({"task.io/agent": "a"}))
    kube_api.modify("tasks", "task-2", lambda obj: obj["spec"].update(attempt=2))
    kube_api.delete("tasks", "task-2")
    end_watch_once_open(kube_api, "tasks")
    events = tasks.watch(
        watch.Watch(), label_selector="task.io/agent=a", resource_version=version, timeout_seconds=3600
    )
    assert names_of(events) == [
        ("ADDED", "task-1"),
        ("DELETED", "task-1"),
        ("ADDED", "task-2"),
        ("MODIFIED", "task-2"),
        ("DELETED", "task-2"),
    ]


def test_bookmarks_carry_the_resource_version_when_asked(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    tasks = Tasks(client)
    version = tasks.listed()["metadata"]["resourceVersion"]
    kube_api.create("configmaps", {"metadata": {"name": "elsewhere"}})  # a change the watch does not show

    def server() -> None:
        kube_api.wait_until(lambda: kube_api.open_watches("tasks") == 1)
        kube_api.bookmark()
        kube_api.wait_until(lambda: kube_api.count("get", "tasks") == 1)
        kube_api.end_watches()

    in_background(server)
    stream = watch.Watch()
    for event in tasks.watch(
        stream, resource_version=version, allow_watch_bookmarks=True, timeout_seconds=3600
    ):
        assert event["type"] == "BOOKMARK"
        assert event["raw_object"]["kind"] == "Task"
        with pytest.raises(ApiException):  # tells the server the bookmark arrived
            tasks.get("none")
    assert stream.resource_version == str(kube_api.resource_version)
    assert int(stream.resource_version) > int(version)


def test_a_watch_cut_mid_stream_is_an_error_the_caller_sees(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(client)
    end_watch_once_open(kube_api, "jobs", abrupt=True)
    events = watch.Watch().stream(batch.list_namespaced_job, NS, resource_version="0")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        next(events)


# -- Jobs and Pods: the Job controller's and the kubelet's part, played by the test ---------------------


def test_a_job_runs_as_the_test_plays_its_controller_and_the_kubelet(
    kube_api: KubeApi, client: k8s.ApiClient
) -> None:
    batch, core = k8s.BatchV1Api(client), k8s.CoreV1Api(client)
    created = plain(client, batch.create_namespaced_job(NS, job("task-1-1")))
    uid = created["metadata"]["uid"]
    assert created["spec"]["backoffLimit"] == 0
    assert created["spec"]["template"]["metadata"]["labels"]["job-name"] == "task-1-1"
    assert kube_api.jobs()[0]["metadata"]["uid"] == uid

    pod = kube_api.create_pod_for("task-1-1")
    name = pod["metadata"]["name"]
    read = plain(client, core.read_namespaced_pod(name, NS))
    assert name.startswith("task-1-1-")
    assert read["metadata"]["labels"]["job-name"] == "task-1-1"
    assert read["metadata"]["labels"]["controller-uid"] == uid
    assert read["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "taskservice"
    assert read["metadata"]["ownerReferences"][0]["uid"] == uid
    assert read["status"]["phase"] == "Pending"
    assert plain(client, batch.read_namespaced_job_status("task-1-1", NS))["status"]["active"] == 1
    listed = plain(client, core.list_namespaced_pod(NS, label_selector="job-name=task-1-1"))
    assert [p["metadata"]["name"] for p in listed["items"]] == [name]

    def container_state() -> Obj:
        status = plain(client, core.read_namespaced_pod_status(name, NS))["status"]
        state: Obj = status["containerStatuses"][0]["state"]
        return state

    kube_api.set_pod_phase(pod, "Pending", reason="ErrImagePull", message="not found")
    assert container_state()["waiting"] == {"reason": "ErrImagePull", "message": "not found"}
    kube_api.set_pod_phase(pod, "Running")
    assert "startedAt" in container_state()["running"]
    kube_api.set_pod_phase(pod, "Failed", exit_code=137, reason="OOMKilled")
    terminated = container_state()["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")
    kube_api.set_job_condition("task-1-1", "Failed", reason="DeadlineExceeded")
    status = plain(client, batch.read_namespaced_job("task-1-1", NS))["status"]
    assert (status["failed"], status["active"]) == (1, 0)
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("FailureTarget", "DeadlineExceeded"),
        ("Failed", "DeadlineExceeded"),
    ]

    batch.create_namespaced_job(NS, job("task-2-1"))
    kube_api.create_pod_for("task-2-1")
    kube_api.set_job_condition("task-2-1", "Complete")
    finished = plain(client, batch.read_namespaced_job("task-2-1", NS))["status"]
    assert finished["succeeded"] == 1
    assert finished["completionTime"]
    assert finished["conditions"][-1]["type"] == "Complete"


def test_a_whole_run_in_one_step(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    batch, core = k8s.BatchV1Api(client), k8s.CoreV1Api(client)
    batch.create_namespaced_job(NS, job("task-1-1"))
    pod = kube_api.finish_job("task-1-1", exit_code=137, reason="OOMKilled", log="allocating\nkilled\n")
    assert [p["metadata"]["name"] for p in kube_api.pods_of("task-1-1")] == [pod["metadata"]["name"]]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")
    assert core.read_namespaced_pod_log(pod["metadata"]["name"], NS, tail_lines=1) == "killed\n"
    conditions = plain(client, batch.read_namespaced_job_status("task-1-1", NS))["status"]["conditions"]
    assert conditions[-1]["type"] == "Failed"

    batch.create_namespaced_job(NS, job("task-2-1"))
    started = kube_api.create_pod_for("task-2-1")
    assert kube_api.finish_job("task-2-1", log="done")["metadata"]["name"] == started["metadata"]["name"]
    assert plain(client, batch.read_namespaced_job("task-2-1", NS))["status"]["succeeded"] == 1


def test_the_real_servers_job_validation(client: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(client)
    with pytest.raises(ApiException) as raised:
        batch.create_namespaced_job(NS, job("task-1-1", restart_policy="Always"))
    status = status_of(raised.value)
    assert (raised.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    with pytest.raises(ApiException) as raised:
        batch.create_namespaced_job(NS, job("Task_1"))
    assert raised.value.status == 422
    created = plain(client, batch.create_namespaced_job(NS, job("task-1-1")))
    created["metadata"]["labels"]["task.io/task-id"] = "1"
    as_read = client.deserialize(json.dumps(created), "V1Job", "application/json")
    relabelled = plain(client, batch.replace_namespaced_job("task-1-1", NS, as_read))
    assert relabelled["metadata"]["labels"]["task.io/task-id"] == "1", "a read job goes back unchanged"
    created = relabelled
    created["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    with pytest.raises(ApiException) as raised:
        batch.replace_namespaced_job(
            "task-1-1", NS, client.deserialize(json.dumps(created), "V1Job", "application/json")
        )
    assert "field is immutable" in status_of(raised.value)["message"]


def test_pod_logs(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(client)
    k8s.BatchV1Api(client).create_namespaced_job(NS, job("task-1-1"))
    pod = kube_api.create_pod_for("task-1-1")
    name = pod["metadata"]["name"]
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log(name, NS)
    assert raised.value.status == 400
    assert "is waiting to start: ContainerCreating" in status_of(raised.value)["message"]
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log("task-9-1-xxxxx", NS)
    assert raised.value.status == 404

    kube_api.set_pod_phase(pod, "Succeeded")
    assert core.read_namespaced_pod_log(name, NS) == ""
    kube_api.set_pod_log(pod, "one\ntwo\nthree\nfour\n")
    assert core.read_namespaced_pod_log(name, NS) == "one\ntwo\nthree\nfour\n"
    assert core.read_namespaced_pod_log(name, NS, tail_lines=2) == "three\nfour\n"
    assert core.read_namespaced_pod_log(name, NS, tail_lines=2, limit_bytes=3) == "thr"
    assert core.read_namespaced_pod_log(name, NS, container="main", tail_lines=1) == "four\n"
    assert kube_api.count("get", "pods/log") == 7


def test_deleting_an_owner_deletes_its_dependents(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    tasks, batch, core = Tasks(client), k8s.BatchV1Api(client), k8s.CoreV1Api(client)
    owner = tasks.create(task("task-1"))
    batch.create_namespaced_job(NS, job("task-1-1", owner))
    kube_api.create_pod_for("task-1-1")
    tasks.delete("task-1", propagation_policy="Foreground")
    assert kube_api.jobs() == []
    assert kube_api.pods() == []

    # A Job deleted without a policy orphans its pods (batch/v1's default); Background deletes them.
    batch.create_namespaced_job(NS, job("task-2-1"))
    orphan = kube_api.create_pod_for("task-2-1")["metadata"]["name"]
    batch.delete_namespaced_job("task-2-1", NS)
    assert not plain(client, core.read_namespaced_pod(orphan, NS))["metadata"].get("ownerReferences")
    batch.create_namespaced_job(NS, job("task-3-1"))
    kube_api.create_pod_for("task-3-1")
    batch.delete_namespaced_job("task-3-1", NS, propagation_policy="Background")
    assert [p["metadata"]["name"] for p in kube_api.pods()] == [orphan]
    with pytest.raises(ApiException) as raised:
        batch.delete_namespaced_job("task-3-1", NS)
    assert raised.value.status == 404


def test_finalizers_hold_a_deleted_object_until_they_are_removed(
    kube_api: KubeApi, client: k8s.ApiClient
) -> None:
    tasks = Tasks(client)
    body = task("task-1")
    body["metadata"]["finalizers"] = ["task.io/report"]
    tasks.create(body)
    assert tasks.delete("task-1")["metadata"]["deletionTimestamp"]
    assert tasks.get("task-1")["metadata"]["deletionTimestamp"]
    tasks.patch("task-1", {"metadata": {"finalizers": None}})
    assert kube_api.get("tasks", "task-1") is None


def test_deletecollection_and_preconditions(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(client)
    for name, role in (("a", "x"), ("b", "x"), ("c", "y")):
        meta = k8s.V1ObjectMeta(name=name, labels={"role": role})
        core.create_namespaced_config_map(NS, k8s.V1ConfigMap(metadata=meta))
    core.delete_collection_namespaced_config_map(NS, label_selector="role=x")
    assert [cm["metadata"]["name"] for cm in kube_api.objects("configmaps")] == ["c"]
    stale = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(resource_version="1"))
    with pytest.raises(ApiException) as raised:
        core.delete_namespaced_config_map("c", NS, body=stale)
    assert raised.value.status == 409


# -- the test's instruments ------------------------------------------------------------------------------


def test_injected_failures_and_request_counts(kube_api: KubeApi, client: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(client)
    kube_api.fail_next("create", "jobs", 500)
    with pytest.raises(ApiException) as raised:
        batch.create_namespaced_job(NS, job("task-1-1"))
    assert raised.value.status == 500
    batch.create_namespaced_job(NS, job("task-1-1"))
    with pytest.raises(ApiException):
        batch.create_namespaced_job(NS, job("task-1-1"))
    assert kube_api.count("create", "jobs") == 3
    assert len(kube_api.jobs()) == 1


async def test_awaiting_an_object_waits_for_the_change(kube_api: KubeApi) -> None:
    import asyncio

    waiting = asyncio.ensure_future(
        kube_api.await_object("Task", lambda t: t["status"].get("phase") == "Running")
    )
    kube_api.create("tasks", task("task-1"))
    await asyncio.sleep(0)
    assert not waiting.done()
    kube_api.modify("tasks", "task-1", lambda obj: obj["status"].update(phase="Running"))
    found = await waiting
    assert found["metadata"]["name"] == "task-1"
    gone = asyncio.ensure_future(kube_api.await_gone("tasks", "task-1"))
    kube_api.delete("tasks", "task-1")
    await gone


# -- leader election, with the official client's module, in two processes ------------------------------

CANDIDATE = """
import sys, threading
from kubernetes import config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

config.load_kube_config()
identity = sys.argv[1]

def lead():
    print("leading", identity, flush=True)
    threading.Event().wait()

lock = LeaseLock("taskservice-controller", "default", identity)
election = electionconfig.Config(lock, lease_duration=3, renew_deadline=2, retry_period=1,
                                 onstarted_leading=lead, onstopped_leading=lambda: None)
leaderelection.LeaderElection(election).run()
"""


@pytest.mark.e2e
def test_leader_election_elects_one_of_two_candidates(
    kube_api: KubeApi, kubeconfig: Path, tmp_path: Path
) -> None:
    import os

    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    candidates = {}
    for name, log in logs.items():
        with log.open("w") as output:
            command = [sys.executable, "-c", CANDIDATE, name]
            candidates[name] = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)

    def renewal_after(lease: Obj) -> Callable[[], Obj | None]:
        """The lease once renewed after `lease`, by the same holder."""

        def check() -> Obj | None:
            current = kube_api.get("leases", "taskservice-controller")
            if current is None or current["spec"]["renewTime"] == lease["spec"]["renewTime"]:
                return None
            assert current["spec"]["holderIdentity"] == lease["spec"]["holderIdentity"]
            return current

        return check

    try:
        lease = kube_api.wait_object(
            "leases", lambda lease: bool(lease["spec"].get("holderIdentity")), timeout=30
        )
        leader = lease["spec"]["holderIdentity"]
        other = "b" if leader == "a" else "a"
        # The leader renews (its callback runs before its first renewal); the other stays a follower.
        kube_api.wait_until(renewal_after(kube_api.wait_until(renewal_after(lease), timeout=30)), timeout=30)
        assert f"leading {leader}" in logs[leader].read_text()
        assert "leading" not in logs[other].read_text()
        # Both may have tried to create the Lease at once (the loser is refused, 409): one Lease, held by one.
        assert [lease["spec"]["holderIdentity"] for lease in kube_api.leases()] == [leader]

        candidates[leader].kill()
        candidates[leader].wait()
        taken = kube_api.wait_object(
            "leases", lambda lease: lease["spec"]["holderIdentity"] == other, timeout=30
        )
        assert taken["spec"]["leaseDurationSeconds"] == 3
        kube_api.wait_until(renewal_after(taken), timeout=30)
        assert f"leading {other}" in logs[other].read_text()
    finally:
        for process in candidates.values():
            process.kill()
            process.wait()
