"""Testing your own task types with taskservice.testing: a real PostgreSQL, no server, no sleeps.

    pytest examples/test_my_tasks.py

`database()` gives each test a fresh, migrated database on the embedded PostgreSQL; your code enqueues
on its own connection (shop.app); `drain()` runs a worker until nothing is due, and returns every
attempt it ran. The task type under test is shop.tasks' `resize_avatar`, a typed @taskservice.task.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import taskservice
from shop import app
from shop.tasks import resize_avatar
from taskservice.plugins import Registry
from taskservice.testing import database, drain, enqueued


def registry() -> Registry:
    """Only the type under test (an installed plugin would run too with plain Registry())."""
    tasks = Registry(load_entry_points=False)
    tasks.register("resize_avatar", resize_avatar)
    return tasks


@pytest.fixture
def database_url() -> Iterator[str]:
    with database() as url:
        yield url


def _connect(database_url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(database_url)
    app.create_schema(conn)
    return conn


def test_sign_up_enqueues_a_resize(database_url: str) -> None:
    with _connect(database_url) as conn:
        app.sign_up(conn, "ada", 640)
        [task] = enqueued(conn, type="resize_avatar")
    assert task.parameters == {"user": "ada", "width": "640"}
    assert task.max_retries == 3  # the type's declared retry policy


def test_a_sign_up_that_rolls_back_enqueues_nothing(database_url: str) -> None:
    with _connect(database_url) as conn:
        app.sign_up(conn, "ada")
        with pytest.raises(psycopg.errors.UniqueViolation):
            app.sign_up(conn, "ada")  # the same user again: the INSERT fails, the whole transaction goes
        assert len(enqueued(conn, type="resize_avatar")) == 1


def test_bad_parameters_are_refused_before_anything_commits(database_url: str) -> None:
    with _connect(database_url) as conn:
        with pytest.raises(taskservice.InvalidArgument, match=r"'width'"):
            app.sign_up(conn, "bob", width=3)  # the declaration says 16..4096
        assert enqueued(conn, type="resize_avatar") == []
        assert conn.execute("SELECT count(*) FROM shop_users").fetchone() == (0,)


def test_the_resize_keeps_the_aspect_ratio(database_url: str) -> None:
    with _connect(database_url) as conn:
        app.sign_up(conn, "ada", 640)
    [attempt] = drain(database_url, registry=registry())
    assert attempt.status == taskservice.TaskStatus.SUCCEEDED
    assert attempt.result == {"user": "ada", "width": 640, "height": 480, "attempt": 1}


def test_a_deleted_avatar_fails_at_once(database_url: str) -> None:
    with _connect(database_url) as conn:
        app.sign_up(conn, "gone-eve")
    [attempt] = drain(database_url, registry=registry())
    assert attempt.status == taskservice.TaskStatus.FAILED  # declared permanent: no retry
    assert attempt.error == "AvatarGone: gone-eve has no avatar any more"
    assert attempt.traceback is not None
    assert "raise AvatarGone(" in attempt.traceback
