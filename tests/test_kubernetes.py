"""The Kubernetes data plane end to end (issue 25): a real server process on PostgreSQL, real `task-cli
serve --kubernetes` and `task-cli controller` processes given a kubeconfig of the in-process Kubernetes
API server (tests/kube_api.py), and the test playing the kubelet and the Job controller through its hooks.

Where these tests stop: the Kubernetes API server is a stand-in speaking its wire protocol (no real
kubelet, scheduler, garbage collector or admission), so what a real cluster adds is not tested here.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents import AgentProcess, agent_env
from api_helpers import Api
from conftest import ServerProcess, eventually
from kube_api import KubeApi
from taskservice.config import Settings
from taskservice.store import Pool

pytestmark = pytest.mark.e2e

TYPES = """\
resize:
  image: registry.example/acme/resize:1.2
  entrypoint: /bin/resize --verbose
  args: [--width, '${width}']
  env: {MODE: fast}
  resources:
    requests: {cpu: 250m}
    limits: {memory: 64Mi}
  timeout_seconds: 30
  max_retries: 2
  backoff_seconds: 0.05
  parameters:
    width: {type: integer, required: true}
"""
TASK_IO = "app.kubernetes.io/managed-by=taskservice"


class Plane:
    """One test's data plane: the server, the fake Kubernetes API, and the agents and controllers."""

    def __init__(self, server: ServerProcess, kube: KubeApi, env: dict[str, str], folder: Path) -> None:
        self.server, self.kube, self.env, self.folder = server, kube, env, folder
        self.processes: list[AgentProcess] = []

    def agent(self, name: str = "agent") -> AgentProcess:
        process = AgentProcess.cli(self.server, self.env, self.folder / f"{name}.log", "--kubernetes")
        self.processes.append(process)
        return process

    def controller(self, name: str = "controller", **env: str) -> AgentProcess:
        args = [sys.executable, "-m", "taskservice.cli", "--log-level", "info", "--address", self.server.url]
        process = AgentProcess([*args, "controller"], {**self.env, **env}, self.folder / f"{name}.log")
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-4000:]}" for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    # -- playing the Job controller and the kubelet ---------------------------------------------

    async def job(self, attempt_of: int | None = None, task_id: int | None = None) -> dict[str, Any]:
        """The Job the controller creates (of this task, for an attempt other than `attempt_of`)."""

        def wanted(job: dict[str, Any]) -> bool:
            labels = job["metadata"]["labels"]
            return (task_id is None or labels["task.io/task-id"] == str(task_id)) and (
                attempt_of is None or labels["task.io/attempt"] != str(attempt_of)
            )

        return await self.kube.await_object("jobs", wanted, timeout=30)

    async def run_pod(self, job: dict[str, Any], log: str = "") -> dict[str, Any]:
        """The job's Pod, started, with its log; then wait for the controller to say Running."""
        pod = await asyncio.to_thread(self.kube.create_pod_for, job)
        await asyncio.to_thread(self.kube.set_pod_phase, pod, "Running")
        if log:
            await asyncio.to_thread(self.kube.set_pod_log, pod, log)
        name = f"task-{job['metadata']['labels']['task.io/task-id']}"
        await self.kube.await_object(
            "tasks",
            lambda t: t["metadata"]["name"] == name and t.get("status", {}).get("phase") == "Running",
            timeout=30,
        )
        return pod

    async def end_pod(
        self, job: dict[str, Any], pod: dict[str, Any], exit_code: int, reason: str | None = None
    ) -> None:
        phase = "Succeeded" if exit_code == 0 else "Failed"
        await asyncio.to_thread(self.kube.set_pod_phase, pod, phase, exit_code, reason)
        await asyncio.to_thread(self.kube.set_job_condition, job, "Complete" if exit_code == 0 else "Failed")


def plane_env(settings: Settings, kubeconfig: Path, folder: Path, **extra: str) -> dict[str, str]:
    types = folder / "container-types.yaml"
    types.write_text(TYPES)
    env = agent_env(
        settings, KUBECONFIG=str(kubeconfig), TASK_CONTAINER_TYPES=str(types),
        TASK_CONTROLLER_LEASE_SECONDS="3", TASK_CONTROLLER_RETENTION_SECONDS="3600",
    )  # fmt: skip
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return {**env, **extra}


@contextlib.contextmanager
def running(plane: Plane) -> Iterator[Plane]:
    try:
        yield plane
    finally:
        plane.stop()
    assert "Traceback" not in plane.logs(), plane.logs()


@pytest.fixture
def plane(
    settings: Settings, workerless_server: ServerProcess, kube_api: KubeApi, kubeconfig: Path, tmp_path: Path
) -> Iterator[Plane]:
    env = plane_env(settings, kubeconfig, tmp_path)
    with running(Plane(workerless_server, kube_api, env, tmp_path)) as plane:
        yield plane


@pytest.fixture
async def api(workerless_server: ServerProcess) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:
        yield Api(http)


async def declared(api: Api) -> None:
    """Once the agent's stream has declared its container type (CreateTask then applies it)."""

    async def known() -> bool:
        types = await api.ok("ListTaskTypes")
        return any(d.get("container") for d in types.get("declarations", []))

    await eventually(known)


async def create(api: Api, width: str = "640", **fields: Any) -> int:
    await declared(api)

    async def created() -> int | None:
        answer = await api.post(
            "CreateTask",
            {"name": "thumb", "type": "resize", "payload": {"parameters": {"width": width}}, **fields},
        )
        return answer.json()["id"] if answer.status_code == 200 else None

    task_id: int = await eventually(created)
    return task_id


async def test_a_container_task_runs_as_a_job_and_succeeds(plane: Plane, api: Api) -> None:
    plane.agent()
    plane.controller()
    task_id = await create(api)
    job = await plane.job(task_id=task_id)
    resource = plane.kube.get("tasks", f"task-{task_id}")
    assert resource is not None
    spec = resource["spec"]
    assert spec["taskId"] == task_id
    assert spec["type"] == "resize"
    assert spec["baseImage"] == "registry.example/acme/resize:1.2"
    assert spec["args"] == ["--width", "640"]
    assert spec["env"] == {"MODE": "fast"}
    assert job["metadata"]["name"] == f"task-{task_id}-{spec['attempt']}"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/resize", "--verbose"]
    assert container["args"] == ["--width", "640"]
    assert container["resources"] == {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}}
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 30
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["ownerReferences"][0]["uid"] == resource["metadata"]["uid"]
    assert (await api.get(task_id))["status"] == "RUNNING"
    pod = await plane.run_pod(job, log="resized 3 images\nwrote out.png\n")
    await plane.end_pod(job, pod, 0)
    await api.wait_status(task_id, "SUCCEEDED")
    [execution] = await api.executions(task_id)
    assert execution["result"] == "resized 3 images\nwrote out.png\n", execution
    finished = await plane.kube.await_object("tasks", lambda t: t.get("status", {}).get("reported") is True)
    assert finished["status"]["phase"] == "Succeeded"
    assert finished["status"]["exitCode"] == 0
    history = [h["details"] for h in await api.history(task_id)]
    assert any("completed successfully" in line for line in history), history


def _attempt(job: dict[str, Any]) -> str:
    return str(job["metadata"]["labels"]["task.io/attempt"])


async def test_a_failing_container_retries_as_new_jobs_with_our_backoff_then_fails(
    plane: Plane, api: Api
) -> None:
    plane.agent()
    plane.controller()
    task_id = await create(api)
    seen: list[str] = []
    endings = [
        (3, None, "cannot open input.png"),
        (137, "OOMKilled", "out of memory"),
        (3, None, "still broken"),
    ]
    for exit_code, reason, last_line in endings:
        job = await plane.job(task_id=task_id, attempt_of=int(seen[-1]) if seen else None)
        assert _attempt(job) not in seen  # a new Job per attempt
        seen.append(_attempt(job))
        pod = await plane.run_pod(job, log=f"starting\n{last_line}\n")
        await plane.end_pod(job, pod, exit_code, reason)
        await plane.kube.await_object(
            "tasks",
            lambda t: t.get("status", {}).get("attempt") == int(seen[-1]) and t["status"].get("reported"),
        )
    task = await api.wait_status(task_id, "FAILED")
    assert task["retries"] == 2
    history = [h["details"] for h in await api.history(task_id)]
    failed = [line for line in history if line.startswith("Task failed")]
    assert len(failed) == 3, history
    assert "exit code 3 (Error); log: cannot open input.png" in failed[0]
    assert "retry 1 of 2" in failed[0]
    assert "OOMKilled (exit code 137); log: out of memory" in failed[1]
    assert "retry 2 of 2" in failed[1]
    assert "no retries left" in failed[2]
    executions = await api.executions(task_id)
    assert [e["error"] for e in executions][-1] == "exit code 3 (Error); log: still broken"
    assert plane.kube.count("create", "jobs") == 3
    resource = plane.kube.get("tasks", f"task-{task_id}")
    assert resource is not None
    assert resource["status"]["phase"] == "Failed"
    assert resource["status"]["exitCode"] == 3


async def test_an_image_that_cannot_be_pulled_fails_the_attempt_and_its_job_goes(
    plane: Plane, api: Api
) -> None:
    plane.agent()
    plane.controller()
    task_id = await create(api, max_retries=0)
    job = await plane.job(task_id=task_id)
    pod = await asyncio.to_thread(plane.kube.create_pod_for, job)
    await asyncio.to_thread(
        plane.kube.set_pod_phase, pod, "Pending", None, "ImagePullBackOff", "Back-off pulling image"
    )
    task = await api.wait_status(task_id, "FAILED")
    assert "ImagePullBackOff: Back-off pulling image" in task["lastError"], task
    await plane.kube.await_gone("jobs", job["metadata"]["name"])


async def test_cancel_deletes_the_running_job_and_the_resource(plane: Plane, api: Api) -> None:
    plane.agent()
    plane.controller()
    task_id = await create(api)
    job = await plane.job(task_id=task_id)
    await plane.run_pod(job)
    await api.ok("CancelTask", {"id": task_id})
    await plane.kube.await_gone("tasks", f"task-{task_id}", timeout=30)
    await plane.kube.await_gone("jobs", job["metadata"]["name"], timeout=30)
    assert (await api.get(task_id))["status"] == "CANCELLED"


async def test_a_restarted_controller_resumes_without_creating_or_reporting_twice(
    plane: Plane, api: Api
) -> None:
    plane.agent()
    first = plane.controller("first")
    task_id = await create(api)
    job = await plane.job(task_id=task_id)
    pod = await plane.run_pod(job, log="done\n")
    # Its watches end and their history is compacted: resuming from the Pods' last version (older than
    # the Task resource's status since) answers 410 Gone, and it lists the Pods again.
    lists = plane.kube.count("list", "pods")
    await asyncio.to_thread(plane.kube.compact)
    await asyncio.to_thread(plane.kube.end_watches)
    await plane.kube.await_until(lambda: plane.kube.count("list", "pods") > lists)
    await plane.kube.await_until(lambda: plane.kube.open_watches() == 3)
    assert "watch expired (410 Gone); listing again" in first.log()
    first.stop(signal.SIGKILL)
    # The attempt ends while no controller runs.
    await plane.end_pod(job, pod, 0)
    second = plane.controller("second")
    await api.wait_status(task_id, "SUCCEEDED")
    await plane.kube.await_object("tasks", lambda t: t.get("status", {}).get("reported") is True)
    assert plane.kube.count("create", "jobs") == 1
    history = [h["details"] for h in await api.history(task_id)]
    assert sum("completed successfully" in line for line in history) == 1, history
    # Restarted again, with everything reported: nothing is created or reported.
    patches = plane.kube.count("patch", "tasks/status")
    second.stop(signal.SIGKILL)
    gets, job_lists = plane.kube.count("get", "tasks"), plane.kube.count("list", "jobs")
    third = plane.controller("third")
    # Leading, it lists the Jobs (its watch), reads the resource and lists its Jobs (a reconcile).
    await plane.kube.await_until(
        lambda: plane.kube.count("get", "tasks") > gets and plane.kube.count("list", "jobs") >= job_lists + 2,
        timeout=30,
    )
    assert plane.kube.count("create", "jobs") == 1
    assert plane.kube.count("patch", "tasks/status") == patches
    assert "attempt reported" not in third.log()


async def test_two_controllers_elect_one_leader_which_alone_acts_until_it_is_lost(
    plane: Plane, api: Api
) -> None:
    plane.agent()
    controllers = [plane.controller("one"), plane.controller("two")]
    first = await create(api)
    second = await create(api, width="320")
    for task_id in (first, second):
        job = await plane.job(task_id=task_id)
        pod = await plane.run_pod(job)
        await plane.end_pod(job, pod, 0)
        await api.wait_status(task_id, "SUCCEEDED")
    assert plane.kube.count("create", "jobs") == 2
    leading = [c for c in controllers if "leading: watching task resources" in c.log()]
    assert len(leading) == 1, plane.logs()
    [lease] = plane.kube.leases()
    assert lease["metadata"]["name"] == "taskservice-controller"
    follower = next(c for c in controllers if c is not leading[0])
    assert "job created" not in follower.log()
    # The leader lost: the other takes over once the Lease runs out, and no task is lost.
    leading[0].stop(signal.SIGKILL)
    third = await create(api, width="160")
    job = await plane.job(task_id=third)
    pod = await plane.run_pod(job)
    await plane.end_pod(job, pod, 0)
    await api.wait_status(third, "SUCCEEDED")
    assert "leading: watching task resources" in follower.log()
    assert plane.kube.count("create", "jobs") == 3


async def test_the_jobs_of_a_killed_agent_run_on_under_the_controllers_heartbeat(
    plane: Plane, api: Api, pool: Pool, settings: Settings
) -> None:
    """An agent stopped (for an upgrade, say) or killed leaves the Jobs it started running: the
    controller keeps their attempts' leases in its name, without making it alive again."""
    doomed = plane.agent("doomed")
    plane.controller()
    task_id = await create(api)
    job = await plane.job(task_id=task_id)
    attempt = int(_attempt(job))
    pod = await plane.run_pod(job)
    doomed.stop(signal.SIGKILL)
    given = await pool.fetchval("SELECT lease_expires_at FROM task_executions WHERE id = $1", attempt)

    async def past_what_the_agent_gave() -> bool:  # any heartbeat of the agent's would have run out
        later = "SELECT now() > $1::timestamptz + make_interval(secs => $2)"
        return bool(await pool.fetchval(later, given, settings.lease_seconds))

    await eventually(past_what_the_agent_gave)
    still = await pool.fetchrow(
        "SELECT finished_at, lease_expires_at > now() AS leased FROM task_executions WHERE id = $1", attempt
    )
    assert still is not None
    assert (still["finished_at"], still["leased"]) == (None, True)
    workers = (await api.ok("ListWorkers"))["workers"]
    assert [w.get("alive", False) for w in workers if w["kind"] == "agent"] == [False]
    await plane.end_pod(job, pod, 0)
    task = await api.wait_status(task_id, "SUCCEEDED")
    assert (task["attempts"], task["retries"]) == (1, 0)
    history = [h["details"] for h in await api.history(task_id)]
    assert not any(line.startswith("Lease expired") for line in history), history


async def test_with_neither_agent_nor_controller_the_lease_runs_out_and_another_agent_runs_it(
    plane: Plane, api: Api
) -> None:
    doomed, controller = plane.agent("doomed"), plane.controller()
    task_id = await create(api)
    old_job = await plane.job(task_id=task_id)
    doomed.stop(signal.SIGKILL)
    controller.stop(signal.SIGKILL)

    async def reaped() -> bool:
        return any(h["details"].startswith("Lease expired") for h in await api.history(task_id))

    await eventually(reaped)
    plane.agent("survivor")
    plane.controller("controller-2")
    # The task's next attempt goes to the other agent, whose resource replaces the old; the old Job goes.
    new_job = await plane.job(task_id=task_id, attempt_of=int(_attempt(old_job)))
    await plane.kube.await_gone("jobs", old_job["metadata"]["name"])
    resource = plane.kube.get("tasks", f"task-{task_id}")
    assert resource is not None
    assert str(resource["spec"]["attempt"]) == _attempt(new_job)
    pod = await plane.run_pod(new_job)
    await plane.end_pod(new_job, pod, 0)
    task = await api.wait_status(task_id, "SUCCEEDED")
    assert task["retries"] == 0  # a lost lease spends no retry


async def test_the_deadline_fails_the_attempt_as_timed_out(plane: Plane, api: Api) -> None:
    plane.agent()
    plane.controller()
    task_id = await create(api, max_retries=0)
    job = await plane.job(task_id=task_id)
    await plane.run_pod(job, log="working\n")
    ended = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
    await asyncio.to_thread(plane.kube.set_job_condition, job, *ended)
    task = await api.wait_status(task_id, "FAILED")
    assert task["lastError"] == "no result after 30s; log: working", task
    [execution] = await api.executions(task_id)
    assert execution["outcome"] == "timed_out", execution


async def test_finished_resources_and_their_jobs_go_after_the_retention_time(plane: Plane, api: Api) -> None:
    plane.env["TASK_CONTROLLER_RETENTION_SECONDS"] = "1"
    plane.agent()
    plane.controller()
    task_id = await create(api)
    job = await plane.job(task_id=task_id)
    pod = await plane.run_pod(job)
    await plane.end_pod(job, pod, 0)
    await api.wait_status(task_id, "SUCCEEDED")
    await plane.kube.await_gone("tasks", f"task-{task_id}")
    await plane.kube.await_gone("jobs", job["metadata"]["name"])
    await plane.kube.await_gone("pods", pod["metadata"]["name"])


async def test_a_job_created_just_before_a_crash_is_adopted_not_created_again(plane: Plane, api: Api) -> None:
    from taskservice.kubernetes.resources import job_manifest

    plane.agent()
    task_id = await create(api)
    resource = await plane.kube.await_object("tasks", lambda t: t["metadata"]["name"] == f"task-{task_id}")
    # What a controller that died between creating the Job and recording it in the status left.
    left = await asyncio.to_thread(plane.kube.create, "jobs", job_manifest(resource))
    pod = await asyncio.to_thread(plane.kube.create_pod_for, left)
    await asyncio.to_thread(plane.kube.set_pod_phase, pod, "Running")
    controller = plane.controller()
    await plane.kube.await_object(
        "tasks",
        lambda t: (
            t["metadata"]["name"] == f"task-{task_id}" and t.get("status", {}).get("phase") == "Running"
        ),
    )
    await plane.end_pod(left, pod, 0)
    await api.wait_status(task_id, "SUCCEEDED")
    done = await plane.kube.await_object("tasks", lambda t: t.get("status", {}).get("reported") is True)
    assert done["status"]["jobName"] == left["metadata"]["name"]
    assert done["status"]["attempt"] == resource["spec"]["attempt"]
    assert "job exists already" in controller.log()
    assert [j["metadata"]["name"] for j in plane.kube.jobs()] == [left["metadata"]["name"]]
    history = [h["details"] for h in await api.history(task_id)]
    assert sum("completed successfully" in line for line in history) == 1, history


async def test_with_auth_the_controller_needs_the_agents_token(
    settings: Settings,
    token_server: tuple[ServerProcess, dict[str, str]],
    kube_api: KubeApi,
    kubeconfig: Path,
    tmp_path: Path,
) -> None:
    server, tokens = token_server
    env = plane_env(settings, kubeconfig, tmp_path, TASK_SERVICE_TOKEN=tokens["agent"])
    headers = {"Authorization": f"Bearer {tokens['operator']}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers) as http:
        api = Api(http)
        with running(Plane(server, kube_api, env, tmp_path)) as plane:
            plane.agent()
            wrong = plane.controller("wrong", TASK_SERVICE_TOKEN=tokens["operator"])
            task_id = await create(api)
            job = await plane.job(task_id=task_id)
            pod = await asyncio.to_thread(plane.kube.create_pod_for, job)
            await asyncio.to_thread(plane.kube.set_pod_phase, pod, "Running")
            await eventually(lambda: _said(wrong, "give it the Kubernetes agent's token"))
            assert plane.kube.get("jobs", job["metadata"]["name"]) is not None  # refused is not cancelled
            assert (await api.get(task_id))["status"] == "RUNNING"
            wrong.stop()
            plane.controller("right")
            await plane.kube.await_object(
                "tasks", lambda t: t.get("status", {}).get("phase") == "Running", timeout=30
            )
            await plane.end_pod(job, pod, 0)
            await api.wait_status(task_id, "SUCCEEDED")


async def _said(process: AgentProcess, words: str) -> bool:
    return words in process.log()


async def test_a_resource_the_api_refuses_to_create_fails_the_attempt_and_it_is_retried(
    plane: Plane, api: Api
) -> None:
    plane.kube.fail_next("create", "tasks", 403, "Forbidden")
    plane.agent()
    plane.controller()
    task_id = await create(api)
    job = await plane.job(task_id=task_id)
    pod = await plane.run_pod(job)
    await plane.end_pod(job, pod, 0)
    task = await api.wait_status(task_id, "SUCCEEDED")
    assert task["retries"] == 1
    history = [h["details"] for h in await api.history(task_id)]
    refused = "Task failed (Attempt 1): its Task resource could not be created: 403 Forbidden: "
    assert any(line.startswith(refused) and "; retry 1 of 2" in line for line in history), history


async def test_a_pod_starting_for_an_attempt_no_longer_current_has_its_job_deleted(
    plane: Plane, api: Api
) -> None:
    agent = plane.agent()
    plane.controller()
    task_id = await create(api)
    job = await plane.job(task_id=task_id)
    agent.stop(signal.SIGKILL)  # no agent to hear of the cancel: the controller's heartbeat does
    await api.ok("CancelTask", {"id": task_id})
    pod = await asyncio.to_thread(plane.kube.create_pod_for, job)
    await asyncio.to_thread(plane.kube.set_pod_phase, pod, "Running")
    await plane.kube.await_gone("jobs", job["metadata"]["name"])
    resource = await plane.kube.await_object(
        "tasks", lambda t: t.get("status", {}).get("phase") == "Cancelled"
    )
    assert resource["status"]["reported"] is True
    assert (await api.get(task_id))["status"] == "CANCELLED"


async def test_a_job_deleted_under_the_controller_fails_its_attempt(plane: Plane, api: Api) -> None:
    plane.agent()
    plane.controller()
    task_id = await create(api, max_retries=0)
    job = await plane.job(task_id=task_id)
    await plane.run_pod(job)
    await asyncio.to_thread(plane.kube.delete, "jobs", job["metadata"]["name"], None, "Background")
    task = await api.wait_status(task_id, "FAILED")
    assert task["lastError"] == "JobDeleted: its Job was deleted", task
    assert plane.kube.count("create", "jobs") == 1  # never run again behind our retry policy's back
