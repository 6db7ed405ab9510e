"""The Makefile as a newcomer meets it: every `make X` the docs name, the seed's set-up lines, quiet
installs, `make run`'s screen, and the pre-commit hooks that run `make lint`'s commands."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import eventually
from taskservice.api.probe import free_port, wait_until_ready

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

ROOT = Path(__file__).resolve().parent.parent
SEED_README = Path(__file__).with_name("data") / "seed-README.txt"
DOCS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
VENV = Path(sys.prefix)  # the environment running the tests: the one `make` installed
# Code spans and code blocks only: prose may say "make the" or "make up" in English.
INLINE_MAKE = re.compile(r"`make ([a-z0-9-]+)[^`]*`")
BLOCK_MAKE = re.compile(r"^\s*(?:\$ )?make ([a-z0-9-]+)", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


Completed = subprocess.CompletedProcess[str]


def make_env(**extra: str) -> dict[str, str]:
    # A `make` run by `make test` must not inherit the outer one's flags or variables.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return env | extra


def make(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Completed:
    return subprocess.run(
        ["make", "--no-print-directory", *args, f"VENV={VENV}"],
        cwd=ROOT, env=env or make_env(), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def listed_targets() -> set[str]:
    result = make("help")
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"^  make (\S+)", result.stdout, re.MULTILINE))


def targets_named_in(text: str) -> set[str]:
    blocks = FENCE.findall(text)
    prose = FENCE.sub("", text)
    return set(INLINE_MAKE.findall(prose)) | {t for block in blocks for t in BLOCK_MAKE.findall(block)}


def test_every_make_target_the_docs_name_exists_and_make_help_lists_it() -> None:
    named = {target: path.name for path in DOCS for target in targets_named_in(path.read_text())}
    assert {"run", "test", "help", "unit", "integration", "e2e", "bootstrap", "build-cli"} <= named.keys()
    listed = listed_targets()
    assert not named.keys() - listed, f"named in the docs, missing from `make help`: {named}"
    for target in sorted(named):
        dry = make("-n", target)
        assert dry.returncode == 0, f"`make {target}` ({named[target]}): {dry.stderr}"


def test_the_seed_readmes_make_lines_are_targets() -> None:
    """The original's set-up lines, as its users type them, never say "No rule to make target"."""
    seed = set(BLOCK_MAKE.findall(SEED_README.read_text()))
    assert seed == {"bootstrap", "run-server", "build-cli", "helm"}
    assert seed <= listed_targets()
    for target in sorted(seed):
        dry = make("-n", target)
        assert dry.returncode == 0, dry.stderr
        assert "No rule to make target" not in dry.stderr


def test_unit_and_integration_tiers_install_no_browser_but_e2e_does() -> None:
    for tier in ("unit", "integration"):
        plan = make("-n", tier).stdout
        assert "pytest -m " + tier in plan
        for installer in ("chromium", "apt-get", "npm"):
            assert installer not in plan, plan
    assert "chromium" in make("-n", "e2e").stdout  # the check above can see a browser install


def test_build_cli_makes_a_bin_task_cli_that_runs() -> None:
    result = make("build-cli")
    assert result.returncode == 0, result.stdout + result.stderr
    cli = ROOT / "bin" / "task-cli"
    assert os.access(cli, os.X_OK)
    assert "bin/" in (ROOT / ".gitignore").read_text().splitlines()
    # As the seed's README runs it, from the repository's root.
    for line in ("./bin/task-cli --help", "./bin/task-cli serve --help"):
        ran = subprocess.run(line.split(), cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
        assert ran.returncode == 0, ran.stderr
        assert "Usage:" in ran.stdout
        assert "--log-level" in ran.stdout  # the seed's `./bin/task-cli serve --log-level debug`


@pytest.mark.slow
def test_install_prints_one_line_per_step_and_the_whole_log_when_pip_fails(tmp_path: Path) -> None:
    """A new .venv with no package index: pip's own update passes quietly, the install fails loudly."""
    links = tmp_path / "no-packages"
    links.mkdir()
    env = make_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(links), PIP_CONFIG_FILE=os.devnull)
    result = subprocess.run(
        ["make", "--no-print-directory", "install", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"Creating the virtual environment {tmp_path / 'venv'}..."
    assert lines[1] == "Updating pip... done."  # pip's "Requirement already satisfied" stays in the log
    assert lines[2].startswith("Installing taskservice and its dependencies")
    assert lines[2].endswith(" failed:")
    # Then pip's own words, all of them: the reason is never lost.
    assert "No matching distribution found for setuptools" in result.stdout
    assert "Requirement already satisfied" not in result.stdout


def test_importing_the_oidc_login_warns_nothing() -> None:
    """authlib warns at import unless httpx2 is installed; every server start imported it."""
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import taskservice.auth.oidc"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    # Outside pytest's private temp folders: as root, the server runs as another system user.
    path = Path(tempfile.mkdtemp(prefix="ts-run-"))
    yield path / "pg"
    shutil.rmtree(path, ignore_errors=True)


def test_make_helm_checks_the_chart() -> None:
    result = make("helm", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "helm install task-service ./charts/task" in result.stdout


@pytest.mark.slow
def test_make_run_server_serves_the_api_and_dashboard(embedded_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in make_env().items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "DB_HOST")}
    env |= {"EMBEDDED_DATA_DIR": str(embedded_dir), "SERVER_PORT": str(port), "WORKER_COUNT": "0"}
    server = subprocess.Popen(
        ["make", "--no-print-directory", "run-server", f"VENV={VENV}"],
        cwd=ROOT, env=env, stdout=(tmp_path / "log").open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(address, server, 120)
        assert "<title>" in httpx.get(f"{address}/", timeout=10).text  # the dashboard, on the API's port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


@pytest.mark.slow
def test_make_run_shows_a_short_screen_that_mentions_agents(embedded_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in make_env().items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "DB_HOST")}
    env |= {"EMBEDDED_DATA_DIR": str(embedded_dir), "SERVER_PORT": str(port)}
    env |= {"EMAIL_OUTBOX_DIR": str(tmp_path / "outbox"), "NO_COLOR": "1"}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        # Its own session, as a terminal's Ctrl-C reaches make and `task-cli up` together.
        run = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"VENV={VENV}"],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True,
        )  # fmt: skip
        try:

            async def banner() -> bool:
                return "Press Ctrl-C to stop." in out.read_text() or run.poll() is not None

            asyncio.run(eventually(banner, timeout=120))
        finally:
            os.killpg(run.pid, signal.SIGINT)
            run.wait(60)
    screen, errors = out.read_text(), err.read_text()
    assert "Press Ctrl-C to stop." in screen, screen + errors
    assert screen.rstrip().endswith("Stopped."), screen + errors
    before_banner = screen.split("taskservice is up.")[0]
    assert len(before_banner.strip().splitlines()) <= 3, before_banner  # no pip output, no make echo
    assert "Agents on other machines" in screen
    assert f"--address http://<this machine>:{port} --token <agent token> serve" in screen
    assert "token create --name agent --role agent" in screen
    assert "Warning" not in errors, errors
    assert "Traceback" not in errors, errors


# -- pre-commit --------------------------------------------------------------------------------------


def lint_commands() -> list[str]:
    """The commands of `make lint`, with .venv for the environment (as a contributor's checkout has)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "lint", "VENV=.venv"],
        cwd=ROOT, env=make_env(), capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def test_pre_commit_hooks_run_the_lint_targets_commands() -> None:
    config: dict[str, Any] = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    [repo] = config["repos"]
    assert repo["repo"] == "local"  # nothing to download
    hooks = repo["hooks"]
    for hook in hooks:
        assert hook["language"] == "system", hook
        assert hook["pass_filenames"] is False, hook  # the whole tree, as CI checks it
        assert hook["always_run"] is True, hook
    assert [hook["entry"] for hook in hooks] == lint_commands()
    assert any("actionlint" in command for command in lint_commands())


def test_pre_commit_accepts_the_config() -> None:
    result = subprocess.run(
        [str(VENV / "bin" / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# -- the repository's papers and workflows -----------------------------------------------------------


def test_license_is_the_apache_license_the_package_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    sections = re.findall(r"^\s+(\d+)\. [A-Z][a-z]+", text, re.MULTILINE)
    assert sections == [str(n) for n in range(1, 10)]  # the nine sections, whole
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply" in text


def workflow(name: str) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    return loaded


def run_lines(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_ci_workflow_runs_ci_run_on_every_push_and_pull_request() -> None:
    ci = workflow("ci.yml")
    triggers = ci[True]  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request", "workflow_call"} <= triggers.keys()
    [job] = ci["jobs"].values()
    assert "bash .ci/run" in run_lines(job)
    postgres = job["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert postgres["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert job["env"]["TEST_DATABASE_URL"] == "postgresql://postgres@postgres:5432/postgres"


def test_release_workflow_builds_the_wheel_the_image_and_the_chart_on_tags() -> None:
    release = workflow("release.yml")
    assert release[True] == {"push": {"tags": ["v*"]}}
    jobs = release["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["release"]["needs"] == "ci"
    commands = run_lines(jobs["release"])
    for expected in ("python -m build", "docker build", "helm package charts/task", "gh release create"):
        assert expected in commands


def run_step(script: str, cwd: Path, **env: str) -> Completed:
    """A workflow's `run:` script, in the shell GitHub runs it with."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env=os.environ | env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def release_step(name_start: str) -> str:
    [step] = [
        s
        for s in workflow("release.yml")["jobs"]["release"]["steps"]
        if s.get("name", "").startswith(name_start)
    ]
    script: str = step["run"]
    return script


def test_release_checks_the_tag_against_the_package_and_chart_versions(tmp_path: Path) -> None:
    script = release_step("The tag is the version")
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert version
    outputs = tmp_path / "github_env"

    def run(tag: str) -> Completed:
        return run_step(script, ROOT, GITHUB_REF_NAME=tag, GITHUB_ENV=str(outputs))

    assert run(f"v{version[1]}").returncode == 0
    assert outputs.read_text() == f"VERSION={version[1]}\n"
    refused = run("v99.0.0")
    assert refused.returncode != 0
    assert "pyproject.toml's version is not 99.0.0" in refused.stdout


def test_release_notes_are_the_tags_section_of_the_changelog(tmp_path: Path) -> None:
    script = release_step("The release notes")
    (tmp_path / "CHANGELOG.md").write_text(
        "# Changelog\n\n## [Unreleased]\n\n- next\n\n## [1.2.0] - 2026-12-06\n\n### Added\n\n- this\n\n"
        "## [1.1.0] - 2026-11-01\n\n- older\n"
    )

    def notes(version: str) -> Completed:
        return run_step(script, tmp_path, VERSION=version)

    assert notes("1.2.0").returncode == 0
    assert (tmp_path / "notes.md").read_text().strip() == "### Added\n\n- this"
    missing = notes("1.3.0")
    assert missing.returncode != 0
    assert "CHANGELOG.md has no section [1.3.0]" in missing.stdout
