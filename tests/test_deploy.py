"""The compose files and the Dockerfile run real commands with real settings (no Docker engine here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from taskservice.cli import cli
from taskservice.config import Settings

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

ROOT = Path(__file__).resolve().parent.parent


def known_variables() -> set[str]:
    """The environment variables taskservice reads: its settings and task-cli's own."""
    settings = {name.upper() for name in Settings.model_fields}
    cli_variables = {str(p.envvar) for p in cli.params if p.envvar}
    return settings | cli_variables


def check_variables(names: list[str]) -> None:
    unknown = set(names) - known_variables()
    assert not unknown, f"not taskservice settings: {sorted(unknown)}"


def check_command(args: list[str]) -> None:
    """`task-cli ARGS` parses: the command and every option exist (its --help answers)."""
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"task-cli {' '.join(args)}: {result.output}"


def test_a_wrong_command_or_setting_is_caught() -> None:
    with pytest.raises(AssertionError):
        check_command(["--log-level", "info", "serve", "--no-such-flag"])
    with pytest.raises(AssertionError):
        check_command(["sever"])
    with pytest.raises(AssertionError):
        check_variables(["WORKER_CONUT"])


# -- compose ---------------------------------------------------------------------------------------

COMPOSE_FILES = ("docker-compose.yaml", "docker-compose.demo.yaml")


def compose_config(file: str) -> dict[str, Any]:
    """The file as the compose client resolves and validates it (`config`, no engine needed)."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.fail("no compose client: run `make deploy-tools` (Debian's docker-compose)")
    done = subprocess.run(
        [*command, "-f", file, "config"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_file_is_valid(file: str) -> None:
    services = compose_config(file)["services"]
    for service in services.values():
        if "build" in service:  # ours: task-cli with real commands and settings
            check_command(service.get("command", ["--log-level", "info", "server"]))
            check_variables(list(service.get("environment", {})))


def test_compose_client_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text("services:\n  server:\n    build: .\n    ports: 8080\n    restrt: always\n")
    with pytest.raises(AssertionError, match="restrt"):
        compose_config(str(broken))


def test_demo_is_the_seed_quick_start() -> None:
    """PostgreSQL with a healthcheck, migrations once, the server on 8080, workers after them."""
    services = compose_config("docker-compose.demo.yaml")["services"]
    assert set(services) == {"postgres", "migrate", "server", "worker"}
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "ports" not in services["postgres"]
    assert services["migrate"]["command"][-2:] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    server, worker = services["server"], services["worker"]
    assert _published(server["ports"]) == [("127.0.0.1", 8080, 8080)]
    assert server["environment"]["ALLOW_INSECURE"] == "true"  # published on loopback only
    assert "/readyz" in " ".join(server["healthcheck"]["test"])
    assert worker["command"][-1] == "serve"
    assert worker["deploy"]["replicas"] == 2
    for service in (server, worker):
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        grace = float(service["environment"]["SHUTDOWN_GRACE"])
        assert _seconds(service["stop_grace_period"]) > grace
    # SIMULATED_PLUGINS and the sleep it takes reach the server and the workers alike (real by default).
    for name, default in (("SIMULATED_PLUGINS", "false"), ("TASK_TIME_OUT", "60")):
        assert server["environment"][name] == worker["environment"][name] == default


def test_development_database_is_the_demo_postgres_published_on_loopback() -> None:
    demo = compose_config("docker-compose.demo.yaml")["services"]["postgres"]
    development = compose_config("docker-compose.yaml")["services"]
    assert set(development) == {"postgres"}
    assert _published(development["postgres"].pop("ports")) == [("127.0.0.1", 5432, 5432)]
    for service in (demo, development["postgres"]):
        service["volumes"] = sorted(map(str, service["volumes"]))
    assert development["postgres"] == demo
    assert any("init.sql" in str(volume) for volume in demo["volumes"])
    assert (ROOT / "deploy/compose/init.sql").exists()


def _published(ports: list[Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port, in either client's form."""
    found = []
    for port in ports:
        if isinstance(port, str):  # docker-compose 1: "127.0.0.1:8080:8080/tcp"
            host_ip, published, target = port.split("/")[0].split(":")
            found.append((host_ip, int(published), int(target)))
        else:  # docker compose 2: the long syntax
            found.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
    return found


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration.removesuffix("s"))


def test_dockerfile_runs_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["task-cli"]' in text
    assert 'CMD ["--log-level", "info", "server", "--concurrency", "0"]' in text
    assert (
        "WORKER_COUNT" not in text.split("# The server runs no task itself")[0]
    )  # no preset to collide with
    assert "USER taskservice" in text
    assert 'pip install --no-cache-dir --prefix=/install ".[kubernetes,otel]"' in text
    assert "--uid 10001" in text  # the chart's runAsUser
