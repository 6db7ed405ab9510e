"""The Kubernetes data plane end to end (issue 25): a real server process on PostgreSQL, real `task-cli
serve --kubernetes` and `task-cli controller` processes given a kubeconfig of the in-process Kubernetes
API server (tests/kube_api.py), and the test playing the kubelet and the Job controller through its hooks.

Where these tests stop: the Kubernetes API server is a stand-in speaking its wire protocol (no real
kubelet, scheduler, garbage collector or admission), so what a real cluster adds is not tested here.
"""

from __future__ import annotations

import asyncio
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

    def controller(self, name: str = "controller") -> AgentProcess:
        args = [sys.executable, "-m", "taskservice.cli", "--log-level", "info", "--address", self.server.url]
        process = AgentProcess([*args, "controller"], self.env, self.folder / f"{name}.log")
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


@pytest.fixture
def plane(
    settings: Settings, workerless_server: ServerProcess, kube_api: KubeApi, kubeconfig: Path, tmp_path: Path
) -> Iterator[Plane]:
    types = tmp_path / "container-types.yaml"
    types.write_text(TYPES)
    env = agent_env(
        settings, KUBECONFIG=str(kubeconfig), TASK_CONTAINER_TYPES=str(types),
        TASK_CONTROLLER_LEASE_SECONDS="3", TASK_CONTROLLER_RETENTION_SECONDS="3600",
    )  # fmt: skip
    env.pop("KUBERNETES_SERVICE_HOST", None)
    plane = Plane(workerless_server, kube_api, env, tmp_path)
    try:
        yield plane
    finally:
        plane.stop()
    assert "Traceback" not in plane.logs(), plane.logs()


@pytest.fixture
async def api(workerless_server: ServerProcess) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=workerless_server.url, timeout=30) as http:
        yield Api(http)


async def create(api: Api, width: str = "640", **fields: Any) -> int:
    async def created() -> int | None:  # once the agent's stream has declared the type
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
