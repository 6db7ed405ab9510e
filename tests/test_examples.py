"""The programs in examples/ run, so they cannot rot: each is imported and run here."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ServerProcess
from taskservice.model import Status
from taskservice.store import Store

EXAMPLES = Path(__file__).parent.parent / "examples"


def example(name: str) -> ModuleType:
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
