"""The shop, end to end: workers that run its typed task type, a sign-up that enqueues in its own
transaction, and the result waited for through the API.

    TASK_MODULES=shop.tasks PYTHONPATH=examples task-cli up      # or: task-cli serve --import shop.tasks
    PYTHONPATH=examples python examples/shop_end_to_end.py http://127.0.0.1:8080 postgresql://... [token]
"""

from __future__ import annotations

import sys
from typing import Any

import psycopg

import taskservice
from shop import app
from shop.tasks import resize_avatar


def main(address: str, database_url: str, token: str = "") -> tuple[Any, str]:
    """(the result of a resize, the refusal of a task with a bad width)."""
    with psycopg.connect(database_url) as conn:
        app.create_schema(conn)
        task_id = app.sign_up(conn, "ada", 640)  # committed: the workers are woken now
    with taskservice.Client(address, token=token) as client:
        result = client.task(task_id).wait(timeout=60)
        print(f"task {task_id}: {result}")
        try:  # checked by the declaration before it is sent (the server would refuse it the same way)
            resize_avatar.create(client, user="x", width=3)
        except taskservice.InvalidArgument as refused:
            print(f"refused: {refused}")
            return result, str(refused)
    raise AssertionError("a width of 3 was accepted")


if __name__ == "__main__":
    main(*sys.argv[1:4])
