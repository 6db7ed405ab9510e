"""The shop's application code: a sign-up writes the user and enqueues the avatar's resize in ONE
transaction, so there is never a user without the task, nor a task for a sign-up that rolled back."""

from __future__ import annotations

from typing import Any

import psycopg

import taskservice
from shop.tasks import resize_avatar


def create_schema(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS shop_users (name text PRIMARY KEY)")
    conn.commit()


def sign_up(conn: psycopg.Connection[Any], user: str, width: int = 256) -> int:
    """Add the user and enqueue the resize; returns the task's id. Both commit, or neither does."""
    with conn.transaction():
        conn.execute("INSERT INTO shop_users (name) VALUES (%s)", (user,))
        # Checked against resize_avatar's own signature (mypy) and declaration (here: a width of 3 is
        # refused before anything commits), and sent as the strings its worker parses back.
        options = taskservice.TaskOptions(name=f"Avatar of {user}")
        return resize_avatar.with_options(options).enqueue(conn, user=user, width=width)
