"""The deployment files name real commands and real settings (they cannot be run here: no Docker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from taskservice.cli import cli
from taskservice.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _command_of(args: list[str]) -> str:
    words = [a for a in args if not a.startswith("-") and a not in ("info", "debug", "error")]
    return words[0]


def _check_container(args: list[str], env_names: list[str]) -> None:
    assert cli.get_command(click.Context(cli), _command_of(args)) is not None
    fields = set(Settings.model_fields)
    for name in env_names:
        assert name.lower() in fields, f"{name} is not a setting"


def test_kubernetes_manifests() -> None:
    documents: list[dict[str, Any]] = list(
        yaml.safe_load_all((ROOT / "deploy/kubernetes/taskservice.yaml").read_text())
    )
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"taskservice-server", "taskservice-worker"}
    for deployment in deployments:
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        _check_container(container["args"], [e["name"] for e in container["env"]])
        probes = [
            container.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")
        ]
        assert probes in ([None, None], ["/healthz", "/readyz"])


def test_compose_file() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    worker = compose["services"]["worker"]
    _check_container(worker["command"], list(worker["environment"]))
    _check_container(["server"], list(compose["services"]["server"]["environment"]))
    assert (ROOT / "deploy/compose/init.sql").exists()


def test_dockerfile_runs_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["task-cli"]' in text
    assert 'CMD ["--log-level", "info", "server"]' in text
