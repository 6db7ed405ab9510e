"""Task types as functions (`@task`), run by a real worker on PostgreSQL: parameters converted by their
declaration, pydantic models, the declared retry policy, declarations published at start, and
`task-cli serve` importing the modules that declare types (TASK_MODULES, --import)."""

from __future__ import annotations

import enum
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from conftest import eventually, subprocess_env
from taskservice import model, task
from taskservice.api.probe import free_port, wait_until_ready
from taskservice.config import ConfigError, Settings, load_settings
from taskservice.model import NewTask, RetryPolicy, Status
from taskservice.plugins import Registry
from taskservice.plugins.context import TaskContext
from taskservice.plugins.email import SendEmail
from taskservice.store import Store
from test_worker import registry_with, running_worker, status_is

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


@task("tt_resize")
def resize(
    path: str, width: int, size: Size = Size.SMALL, sharp: bool = False, ctx: TaskContext | None = None
) -> Any:
    """Resize an image (pretend).

    Args:
        path: Where it is.
    """
    assert isinstance(size, Size)  # the enum member, not its string
    attempt = ctx.attempt if ctx else None
    return {"path": path, "double": width * 2, "size": size.value, "sharp": sharp, "attempt": attempt}


@task("tt_add")
async def add(a: int, b: int = 1) -> int:
    return a + b


class Order(BaseModel):
    item: str
    count: int = Field(1, ge=1)


class Receipt(BaseModel):
    item: str
    total: int


@task("tt_order")
def order(request: Order) -> Receipt:
    return Receipt(item=request.item, total=request.count * 10)


class OutOfStock(Exception):
    pass


@task("tt_out_of_stock", permanent=(OutOfStock,))
def out_of_stock(item: str) -> None:
    raise OutOfStock(f"no {item} left")


@task("tt_flaky", backoff=100.0)
def flaky() -> None:
    raise RuntimeError("flaky")


@task("tt_report")
def report(rows: int) -> dict[str, Any]:
    return {"rows": [{"n": n, "text": "x" * 100} for n in range(rows)]}


async def _run(store: Store, kind: str, parameters: dict[str, str], **fields: Any) -> int:
    task_id, _ = await store.create_task(NewTask(f"a {kind}", kind, parameters, **fields))
    return task_id


async def _result(store: Store, task_id: int) -> Any:
    await eventually(lambda: status_is(store, task_id, Status.SUCCEEDED, Status.FAILED))
    task = await store.get_task(task_id)
    last = (await store.executions(task_id))[-1]
    assert task.status == Status.SUCCEEDED, (task.status, last.error)
    return last.result


async def test_typed_functions_get_their_parameters_converted(store: Store, settings: Settings) -> None:
    async with running_worker(store, settings, Registry()):
        resized = await _run(
            store, "tt_resize", {"path": "a.png", "width": "21", "size": "large", "sharp": "on"}
        )
        added = await _run(store, "tt_add", {"a": "40", "b": "2"})
        defaulted = await _run(store, "tt_add", {"a": "1"})
        ordered = await _run(store, "tt_order", {"item": "tea", "count": "3"})
        assert await _result(store, resized) == {
            "path": "a.png", "double": 42, "size": "large", "sharp": True, "attempt": 1,
        }  # fmt: skip
        assert await _result(store, added) == 42
        assert await _result(store, defaulted) == 2
        assert await _result(store, ordered) == {"item": "tea", "total": 30}  # the model, as JSON


async def test_bad_parameters_that_reach_a_worker_fail_at_once_naming_them(
    store: Store, settings: Settings
) -> None:
    """The API refuses them; a task written to the database some other way is still checked."""
    async with running_worker(store, settings, Registry()):
        bad = await _run(store, "tt_resize", {"path": "a.png", "width": "wide"}, max_retries=3)
        model_bad = await _run(store, "tt_order", {"item": "tea", "count": "0"}, max_retries=3)
        for task_id in (bad, model_bad):
            await eventually(lambda task_id=task_id: status_is(store, task_id, Status.FAILED))
            assert (await store.get_task(task_id)).retries == 0
        [attempt] = await store.executions(bad)
        assert attempt.error == "width: must be an integer (got 'wide')"
        [attempt] = await store.executions(model_bad)
        assert (attempt.error or "").startswith("count: must be >= 1")


async def test_declared_permanent_errors_and_backoff(store: Store, settings: Settings) -> None:
    # A cap far above the declared backoff, so the type's own first delay shows.
    policy = RetryPolicy(settings.retry_backoff_base, 1000.0, settings.max_lost_leases)
    async with running_worker(store, settings, Registry(), retry_policy=policy):
        permanent = await _run(store, "tt_out_of_stock", {"item": "tea"}, max_retries=3)
        retried = await _run(store, "tt_flaky", {}, max_retries=1)
        await eventually(lambda: status_is(store, permanent, Status.FAILED))
        assert (await store.get_task(permanent)).attempts == 1
        [attempt] = await store.executions(permanent)
        assert attempt.error == "OutOfStock: no tea left"
        await eventually(lambda: status_is(store, retried, Status.RETRYING))
        task = await store.get_task(retried)
        # backoff=100: the first retry waits at least half of it (half fixed, half jitter).
        assert (task.run_at - task.updated_at).total_seconds() >= 50


async def test_a_return_value_is_kept_whole_up_to_max_result_bytes(store: Store, settings: Settings) -> None:
    """What ListTaskExecutions (with `attempt`) and so a client's result() read back."""
    async with running_worker(store, settings, Registry(), max_result_bytes=64 * 1024):
        small = await _run(store, "tt_report", {"rows": "100"})  # about 12 KB of JSON
        large = await _run(store, "tt_report", {"rows": "1000"})  # about 120 KB
        assert await _result(store, small) == report(100)
        cut = await _result(store, large)
    assert model.is_cut_result(cut)
    assert cut["limit_bytes"] == 64 * 1024
    assert cut["preview"].startswith('{"rows": [{"n": 0, "text": "xxx')


async def test_a_worker_publishes_the_declarations_of_its_types(store: Store, settings: Settings) -> None:
    async with running_worker(store, settings, Registry()):
        published = await eventually(lambda: store.live_task_types(60))
    assert published["tt_resize"] == resize.spec.to_json()
    assert published["send_email"] == SendEmail.spec.to_json()
    assert published["tt_order"]["parameters"][1] == {
        "name": "count", "type": "integer", "required": False, "default": "1", "description": "",
        "choices": [], "minimum": 1.0, "maximum": None, "aliases": [], "format": "",
    }  # fmt: skip


async def test_a_declaration_that_fails_keeps_no_worker_down(store: Store, settings: Settings) -> None:
    class Broken:
        @property
        def spec(self) -> Any:
            raise RuntimeError("cannot build my declaration")

        def run(self, parameters: dict[str, str]) -> str:
            return "ran anyway"

    async with running_worker(store, settings, registry_with(broken=Broken, resize=resize)):
        task_id = await _run(store, "broken", {"any": "thing"})
        assert await _result(store, task_id) == "ran anyway"
        published = await store.live_task_types(60)
    assert published == {"broken": None, "resize": resize.spec.to_json()}


# -- task-cli serve imports the modules that declare task types ---------------------------------------

GREETINGS = '''
from taskservice import task


@task("greet", max_retries=0)
def greet(name: str, excited: bool = False) -> str:
    """Say hello."""
    return f"Hello, {name}{'!' if excited else '.'}"
'''
FAREWELLS = """
from taskservice import task


@task("farewell")
async def farewell(name: str) -> str:
    return f"Goodbye, {name}."
"""


def test_task_modules_is_a_list_of_module_names() -> None:
    assert load_settings(task_modules="myapp.tasks, myapp.reports other").task_module_names == [
        "myapp.tasks", "myapp.reports", "other",
    ]  # fmt: skip
    assert load_settings().task_module_names == []
    with pytest.raises(ConfigError, match="TASK_MODULES"):
        load_settings(task_modules="myapp.tasks; rm -rf /")


TASK_CLI = str(Path(sys.executable).parent / "task-cli")  # the installed script, as a user runs it


def _serve(settings: Settings, folder: Path, *arguments: str, **env: str) -> subprocess.Popen[bytes]:
    """`task-cli serve` run from `folder`, the application's directory (nothing on PYTHONPATH)."""
    environment = subprocess_env(settings, **env)
    environment.pop("PYTHONPATH", None)
    return subprocess.Popen(
        [TASK_CLI, "serve", "-c", "2", *arguments],
        env=environment,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def test_serve_imports_task_modules_and_runs_their_types(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """From the application's directory, as `python -m` would: a package there and a plain module."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text(textwrap.dedent(GREETINGS))
    (tmp_path / "farewells.py").write_text(textwrap.dedent(FAREWELLS))
    worker = _serve(settings, tmp_path, "--import", "farewells", TASK_MODULES="myapp.tasks")
    try:
        hello = await _run(store, "greet", {"name": "Ada", "excited": "true"})
        bye = await _run(store, "farewell", {"name": "Ada"})
        assert await _result(store, hello) == "Hello, Ada!"
        assert await _result(store, bye) == "Goodbye, Ada."
        published = await store.live_task_types(60)
        assert published["greet"] is not None
        assert (published["greet"]["description"], published["greet"]["max_retries"]) == ("Say hello.", 0)
        assert [p["name"] for p in published["farewell"]["parameters"]] == ["name"]  # type: ignore[index]
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=60)[0].decode()
    assert worker.returncode == 0, output


async def test_the_server_imports_task_modules_from_its_directory_too(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """TASK_MODULES of `task-cli server` go through the same import: its own workers run the type."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text(textwrap.dedent(GREETINGS))
    port = free_port()
    environment = subprocess_env(settings, TASK_MODULES="myapp.tasks", WORKER_COUNT="1")
    environment.pop("PYTHONPATH", None)
    server = subprocess.Popen(  # noqa: ASYNC220 (it runs beside the test until stopped)
        [TASK_CLI, "server", "--port", str(port)], env=environment, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", server, 60)
        assert await _result(store, await _run(store, "greet", {"name": "Ada"})) == "Hello, Ada."
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert "Traceback" not in output, output


def test_serve_says_which_module_it_cannot_import(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "broken_tasks.py").write_text("raise RuntimeError('half-written module')\n")
    for arguments, env, problem in [
        (["--import", "no_such_tasks"], {},
         f"cannot import task module 'no_such_tasks': there is no module 'no_such_tasks' in the current "
         f"directory ({tmp_path}) or among the installed packages; run task-cli from the directory that "
         "holds no_such_tasks/"),
        (["--import", "myapp.tasks"], {}, "there is no module 'myapp' in the current directory"),
        ([], {"TASK_MODULES": "broken_tasks"},
         "cannot import task module 'broken_tasks': it raised RuntimeError: half-written module at "
         f"{tmp_path / 'broken_tasks.py'}:1"),
    ]:  # fmt: skip
        worker = _serve(settings, tmp_path, *arguments, **env)
        output = worker.communicate(timeout=60)[0].decode()
        assert worker.returncode == 1, output
        assert problem in output
        assert "Traceback" not in output


# -- the how-to's example runs -------------------------------------------------------------------------


def _docs_example() -> dict[str, Any]:
    """What the first Python block of docs/task-types.md defines (it declares its types as it runs)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "task-types.md").read_text()
    source = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"__name__": "docs_task_types"}
    exec(compile(source, "docs/task-types.md", "exec"), namespace)
    return namespace


async def test_the_example_of_docs_task_types_runs(settings: Settings) -> None:
    namespace = _docs_example()
    resize_image, monthly_report = namespace["resize_image"], namespace["monthly_report"]
    spec = Registry().declaration("resize_image")
    assert spec is resize_image.spec
    assert [(p.name, p.type, p.required, p.default) for p in spec.parameters] == [
        ("path", "string", True, None), ("width", "integer", True, None),
        ("fit", "enum", False, "crop"), ("sharpen", "boolean", False, "false"),
    ]  # fmt: skip
    assert (spec.max_retries, spec.timeout_seconds, spec.backoff_seconds) == (5, 120.0, 2.0)
    assert spec.permanent_errors == ("ImageGone",)
    ctx = TaskContext(1, "resize_image", 1, 120.0, settings, "key")
    assert resize_image.run({"path": "a.png", "width": "640", "fit": "pad"}, ctx) == {
        "path": "a.png", "width": 640, "fit": "pad", "sharpen": False,
    }  # fmt: skip
    assert await monthly_report.run({"month": "2026-11"}, ctx) == {"month": "2026-11", "rows": 100}
