"""Enqueue a task in the application's own transaction: it exists only if the order does.

    python examples/enqueue_in_transaction.py postgresql://user@host/db
    python examples/enqueue_in_transaction.py "$(task-cli db url)"    # with `task-cli up` running

The task and its history row are written on the application's connection, inside its transaction:
if the transaction rolls back, no task exists; when it commits, the workers are woken at once.
"""

from __future__ import annotations

import contextlib
import sys

import psycopg

import taskservice

SCHEMA = "CREATE TABLE IF NOT EXISTS example_orders (id bigserial PRIMARY KEY, email text NOT NULL)"


def place_order(conn: psycopg.Connection[tuple[object, ...]], email: str, *, fail: bool = False) -> int:
    """Insert an order and enqueue its confirmation e-mail, together; returns the task's id."""
    with conn.transaction():
        row = conn.execute("INSERT INTO example_orders (email) VALUES (%s) RETURNING id", (email,)).fetchone()
        assert row is not None
        task_id = taskservice.enqueue(
            conn,
            type="send_email",
            name=f"Confirm order {row[0]}",
            parameters={"recipient": email, "subject": "Your order", "body": f"Order {row[0]} is placed."},
            idempotency_key=f"order-{row[0]}-confirmation",  # a retried request cannot send it twice
        )
        if fail:
            raise RuntimeError("payment declined")  # leaving the block rolls back the order and the task
    return task_id


def main(database_url: str) -> int:
    """Place one order that commits and one that is declined; the id of the one task that exists."""
    with psycopg.connect(database_url) as conn:
        conn.execute(SCHEMA)
        conn.commit()
        kept = place_order(conn, "ada@example.com")
        with contextlib.suppress(RuntimeError):
            place_order(conn, "bob@example.com", fail=True)
    print(f"task {kept} will confirm the order; the declined order left no task")
    return kept


if __name__ == "__main__":
    main(sys.argv[1])
