"""Testing your own task types with taskservice.testing: a real PostgreSQL, no server, no sleeps.

    pytest examples/test_my_tasks.py

`database()` gives each test a fresh, migrated database on the embedded PostgreSQL; your code enqueues
on its own connection; `drain()` runs a worker with your registry until nothing is due, and returns
every attempt it ran.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

import taskservice
from taskservice.plugins import Registry
from taskservice.testing import database, drain, enqueued


def resize(parameters: dict[str, str]) -> dict[str, int]:
    """Your task type (a function plugin): halves an image's size."""
    width = int(parameters["width"])
    if width <= 0:
        raise taskservice.PermanentFailure(f"width must be > 0, got {width}")
    return {"width": width // 2}


def registry() -> Registry:
    tasks = Registry(load_entry_points=False)
    tasks.register("resize", resize)
    return tasks


def signup(conn: psycopg.Connection[tuple[object, ...]], width: int) -> int:
    """Your application code: enqueue in its own transaction."""
    with conn.transaction():
        return taskservice.enqueue(conn, type="resize", name="avatar", parameters={"width": str(width)})


@pytest.fixture
def database_url() -> Iterator[str]:
    with database() as url:
        yield url


def test_signup_enqueues_a_resize(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        signup(conn, 640)
        [task] = enqueued(conn, type="resize")
    assert task.parameters == {"width": "640"}


def test_the_resize_halves_the_width(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        signup(conn, 640)
    [attempt] = drain(database_url, registry=registry())
    assert attempt.status == taskservice.TaskStatus.SUCCEEDED
    assert attempt.result == {"width": 320}


def test_a_bad_width_fails_at_once(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        signup(conn, 0)
    [attempt] = drain(database_url, registry=registry())
    assert attempt.status == taskservice.TaskStatus.FAILED
    assert attempt.error == "width must be > 0, got 0"
