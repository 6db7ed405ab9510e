"""The programs in examples/ run, so they cannot rot: each is imported and run here."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ServerProcess
from taskservice.config import Settings
from taskservice.model import Status
from taskservice.store import Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

EXAMPLES = Path(__file__).parent.parent / "examples"


def example(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:  # as `python examples/x.py` has it: the examples' own package `shop`
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_enqueue_in_transaction(database_url: str, store: Store) -> None:
    kept = example("enqueue_in_transaction").main(database_url)
    [task] = await store.list_tasks()
    assert task.id == kept
    assert (task.type, task.name, task.status) == ("send_email", "Confirm order 1", Status.QUEUED)
    assert task.parameters["recipient"] == "ada@example.com"
    assert await store.pool.fetchval("SELECT count(*) FROM example_orders") == 1  # the declined one is gone


def test_the_shop_end_to_end(settings: Settings, tmp_path: Path) -> None:
    """A user's package (examples/shop): its typed task type run by a server's workers that import it."""
    path = os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])
    server = ServerProcess(settings, tmp_path / "server.log", WORKER_COUNT="2", TASK_MODULES="shop.tasks",
                           PYTHONPATH=path)  # fmt: skip
    try:
        server.wait_ready()
        result, refusal = example("shop_end_to_end").main(server.url, settings.database_url)
    finally:
        server.stop()
    assert result == {"user": "ada", "width": 640, "height": 480, "attempt": 1}
    assert all(type(result[key]) is int for key in ("width", "height", "attempt"))  # not 640.0
    assert "payload.parameters['width']" in refusal


def test_wait_for_result(api_server: ServerProcess) -> None:
    result, error = example("wait_for_result").main(api_server.url)
    assert result == {"slept": 0.1}
    assert "simulated failure" in error


@pytest.mark.parametrize("test", [name for name in dir(example("test_my_tasks")) if name.startswith("test_")])
def test_my_tasks(test: str, database_url: str) -> None:
    module = example("test_my_tasks")
    function = getattr(module, test)
    assert list(inspect.signature(function).parameters) == ["database_url"]
    function(database_url)  # the example's own assertions are the test
