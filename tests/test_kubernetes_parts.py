"""The Kubernetes data plane's pure parts (resources, outcomes, the work queue) and its commands' refusals:
no database, no process of ours beyond `task-cli` itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from taskservice.cli.main import cli
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.kubernetes import election, outcomes, resources
from taskservice.kubernetes.outcomes import AttemptEnd
from taskservice.kubernetes.workqueue import WorkQueue
from taskservice.model import RetryPolicy, Status

POLICY = RetryPolicy(1.0, 10.0, 3)


def assignment(**task: Any) -> pb.WorkAssignment:
    fields = {
        "id64": 7, "name": "thumb", "type": "resize", "base_image": "busybox:1.36", "timeout_seconds": 2.5,
        "max_retries": 2, "retries": 1, "attempts": 2, **task,
    }  # fmt: skip
    return pb.WorkAssignment(assignment_id=41, task=pb.Task(**fields), lost_leases=1)


def test_a_resource_carries_the_assignment_and_its_job_runs_it_once() -> None:
    work = assignment(entrypoint="", args=["a b"], env={"B": "2", "A": "1"}, service_account="runner")
    resource = resources.task_resource(work, "host.example-12-ab_c!", "jobs", backoff_seconds=0.5)
    assert resource["metadata"]["name"] == "task-7"
    assert resource["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "taskservice",
        "task.io/task-id": "7",
        "task.io/agent": "host.example-12-ab_c",
    }
    assert resource["metadata"]["annotations"] == {"task.io/attempt-number": "2", "task.io/lost-leases": "1"}
    spec = resource["spec"]
    assert (spec["attempt"], spec["retries"], spec["maxRetries"], spec["backoffSeconds"]) == (41, 1, 2, 0.5)
    assert spec["resources"] == {"requests": {}, "limits": {}}
    job = resources.job_manifest({**resource, "metadata": {**resource["metadata"], "uid": "u-1"}})
    assert job["metadata"]["name"] == "task-7-41"
    assert job["spec"]["activeDeadlineSeconds"] == 3  # whole seconds, rounded up
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runner"
    [container] = pod["containers"]
    assert "command" not in container  # the image's own
    assert "resources" not in container
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert job["spec"]["template"]["metadata"]["labels"]["task.io/attempt"] == "41"


@pytest.mark.parametrize(
    ("entrypoint", "command"),
    [("python -m app 'two words'", ["python", "-m", "app", "two words"]), ("/bin/x 'open", ["/bin/x 'open"]),
     ("  ", [])],
)  # fmt: skip
def test_the_entrypoint_is_split_as_a_shell_would(entrypoint: str, command: list[str]) -> None:
    assert resources.command_of(entrypoint) == command


def test_names_and_labels() -> None:
    assert resources.task_id_of("task-12") == 12
    assert resources.task_id_of("task-x") is None
    assert resources.task_id_of("other-1") is None
    assert resources.label_safe("-" * 3) == "unknown"
    assert len(resources.label_safe("h" * 100)) == 63


def pod(state: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {"status": {"containerStatuses": [{"name": "task", "state": state}], **status}}


def job(kind: str | None, reason: str = "") -> dict[str, Any]:
    if kind is None:
        return {"status": {}}
    return {"status": {"conditions": [{"type": kind, "status": "True", "reason": reason, "message": "m"}]}}


def test_how_a_job_ended() -> None:
    running = pod({"running": {}}, phase="Running")
    assert outcomes.job_end(job(None), running) is None
    assert outcomes.started(running)
    assert not outcomes.started(pod({"waiting": {"reason": "ContainerCreating"}}, phase="Pending"))
    assert outcomes.job_end(job("Complete"), pod({"terminated": {"exitCode": 0}}), "x" * 3000) == AttemptEnd(
        True, "Completed", 0, "", "x" * 2000
    )
    oom = outcomes.job_end(
        job("Failed", "BackoffLimitExceeded"), pod({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    )
    assert oom is not None
    assert oom.describe() == "OOMKilled (exit code 137)"
    evicted = outcomes.job_end(job("Failed"), {"status": {"reason": "Evicted", "message": "low on memory"}})
    assert evicted == AttemptEnd(False, "Evicted", None, "low on memory")
    assert outcomes.job_end(job("Failed", "DeadlineExceeded"), running) == AttemptEnd(
        False, "DeadlineExceeded", None, "m"
    )
    pull = outcomes.start_failure(pod({"waiting": {"reason": "ErrImagePull", "message": "not found"}}))
    assert pull is not None
    assert pull.describe() == "ErrImagePull: not found"
    assert outcomes.start_failure(pod({"waiting": {"reason": "ContainerCreating"}})) is None


def test_the_retry_policy_decides_as_for_a_plugin() -> None:
    resource = resources.task_resource(assignment(), "agent-1", "default")
    end = AttemptEnd(False, "Error", 3, "", "line one\nthe last line\n")
    retrying = outcomes.transition(resource, end, POLICY)
    assert retrying.status == Status.RETRYING
    assert (retrying.retries, retrying.lost_leases, retrying.execution_id) == (2, 1, 41)
    assert retrying.error == "exit code 3 (Error); log: the last line"
    assert retrying.traceback == "line one\nthe last line\n"
    assert retrying.details.startswith("Task failed (Attempt 2): exit code 3 (Error)")
    assert 0.5 <= retrying.delay_seconds <= 2.0  # our backoff for retry 2 of base 1 s
    last = resources.task_resource(assignment(retries=2), "agent-1", "default")
    assert outcomes.transition(last, end, POLICY).status == Status.FAILED
    succeeded = outcomes.transition(resource, AttemptEnd(True, "Completed", 0, "", "out\n"), POLICY)
    assert (succeeded.status, succeeded.result) == (Status.SUCCEEDED, "out\n")
    typed = resources.task_resource(assignment(), "agent-1", "default", backoff_seconds=0.01)
    own = outcomes.policy_of(typed, POLICY)  # the type's own first delay
    assert outcomes.transition(typed, end, own).delay_seconds <= 0.02
    assert outcomes.policy_of(resource, POLICY) == POLICY  # 0: the default


def test_an_unreported_end_survives_in_the_status() -> None:
    end = AttemptEnd(False, "OOMKilled", 137, "killed")
    resource = resources.task_resource(assignment(), "agent-1", "default")
    moment = outcomes.parse_time("2026-01-01T00:00:00Z")
    assert moment is not None
    status = outcomes.end_status(end, outcomes.transition(resource, end, POLICY), moment)
    assert status["finishedAt"] == "2026-01-01T00:00:00Z"
    assert status["phase"] == "Failed"
    assert status["reported"] is False
    assert outcomes.end_of_status(status) == end


def test_the_work_queue_holds_each_name_once_and_later_ones_when_due() -> None:
    now = [0.0]
    queue = WorkQueue(clock=lambda: now[0])
    queue.add("task-1")
    queue.add("task-2")
    queue.add("task-1")
    queue.add_after("task-3", 5.0)
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["task-1", "task-2", None]
    now[0] = 5.0
    assert queue.get(0) == "task-3"


def test_election_timings_keep_the_clients_rules() -> None:
    for seconds in (3, 4, 15, 60):
        lease, renew, retry = election.timings(seconds)
        assert retry >= 1
        assert renew > 1.2 * retry
        assert lease > renew


def test_the_commands_say_what_they_need(tmp_path: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["serve", "--kubernetes"], env={"TASK_SERVICE_ADDRESS": ""})
    assert refused.exit_code == 2
    assert "--kubernetes needs --address" in refused.output
    # In a process of its own: this one's registry holds the container types other tests declared.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
    none = _task_cli(env, "--address", "http://127.0.0.1:9", "serve", "--kubernetes")
    assert none.returncode == 1, none.stderr
    assert "no container task types to serve" in none.stderr
    types = tmp_path / "types.yaml"
    types.write_text("resize:\n  image: registry.example/resize:1\n")
    for command in (["serve", "--kubernetes"], ["controller"]):
        lost = _task_cli(
            {**env, "TASK_CONTAINER_TYPES": str(types)}, "--address", "http://127.0.0.1:9", *command
        )
        assert lost.returncode == 1, lost.stderr
        assert "no Kubernetes cluster to talk to: not in a Pod" in lost.stderr, command
        assert "Traceback" not in lost.stderr


def _task_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskservice.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_without_the_extra_the_commands_say_what_to_install(tmp_path: Path) -> None:
    stub = tmp_path / "kubernetes"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ImportError('not installed')\n")
    done = subprocess.run(
        [sys.executable, "-m", "taskservice.cli", "--address", "http://127.0.0.1:9", "controller"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "pip install 'taskservice[kubernetes]'" in done.stderr
    assert "Traceback" not in done.stderr
