"""Limits through the API (issue 21): SetLimit, ListLimits, ResetLimit, a task's limit_key and why a task
waits under a limit, against real server processes. The claim within limits: tests/test_flow_limits.py."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

import taskservice
from conftest import ServerProcess, eventually
from taskservice.api import convert
from taskservice.client.asynchronous import AsyncClient, AsyncTaskHandle
from taskservice.config import Settings
from taskservice.model import Rate
from taskservice.plugins.declare import TaskTypeSpec
from taskservice.store import Limit, LimitWait, Store
from test_cli import task_cli

# -- the words of a waiting reason ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "key", "parameters", "said"),
    [
        (Limit("type", "send_email", 2, key="customer_id"), "42", {"customer_id": "42"},
         "concurrency limit 2 for customer_id 42 (type send_email)"),
        (Limit("type", "send_email", None, Rate(5, 1), key="customer_id"), "42", {"customer_id": "42"},
         "rate limit 5/s for customer_id 42 (type send_email)"),
        (Limit("type", "send_email", 2), "", {}, "concurrency limit 2 for type send_email"),
        (Limit("queue", "emails", None, Rate(100, 60)), "", {}, "rate limit 100/min for queue emails"),
        # Its own key (CreateTaskRequest.limit_key), not its parameter's value.
        (Limit("type", "send_email", 2, key="customer_id"), "acme", {"customer_id": "42"},
         "concurrency limit 2 for key acme (type send_email)"),
        (Limit("queue", "emails", 1), "acme", {}, "concurrency limit 1 for key acme (queue emails)"),
        (Limit("type", "send_email", 2, key="customer_id"), "", {},
         "concurrency limit 2 for tasks without customer_id (type send_email)"),
    ],
)  # fmt: skip
def test_a_limited_task_says_which_limit_of_which_key_holds_it(
    limit: Limit, key: str, parameters: dict[str, str], said: str
) -> None:
    wait = LimitWait(limit, key, running=2, recent_starts=5)
    assert convert.limited(wait, parameters) == said


def test_at_both_limits_the_concurrency_is_named() -> None:
    wait = LimitWait(Limit("type", "t", 1, Rate(1, 3600)), "", running=1, recent_starts=1)
    assert convert.limited(wait, {}) == "concurrency limit 1 for type t"


# -- set, list, reset -----------------------------------------------------------------------------------


def _cli(server: ServerProcess, settings: Settings, *args: str) -> str:
    done = task_cli(settings, "--address", server.url, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _declaration(**limits: Any) -> dict[str, Any]:
    """A task type's declaration as a worker publishes it, with the limits it declares."""
    return {**TaskTypeSpec(extra_parameters=True).to_json(), **limits}


async def test_set_changes_what_it_is_given_and_reset_goes_back_to_the_declaration(
    workerless_server: ServerProcess, store: Store
) -> None:
    declared = _declaration(concurrency=3, rate_limit="10/min", concurrency_key="customer_id")
    await store.register_task_types({"mailer": declared})  # as a worker starting would
    async with AsyncClient(workerless_server.url) as client:
        [limit] = await client.list_limits()
        assert (limit.kind, limit.name, limit.concurrency, limit.rate_limit, limit.key, limit.set_by) == (
            "type", "mailer", 3, "10/min", "customer_id", None,
        )  # fmt: skip
        # Only what is given changes; the caller is recorded (auth is off: anonymous).
        changed = await client.set_limit(type="mailer", concurrency=1)
        assert (changed.concurrency, changed.rate_limit, changed.key, changed.set_by) == (
            1, "10/min", "customer_id", "anonymous",
        )  # fmt: skip
        changed = await client.set_limit(type="mailer", rate_limit="100/30s")
        assert (changed.concurrency, changed.rate_limit, changed.key) == (1, "100/30s", "customer_id")
        # A worker declaring the type again does not undo what was set at run time.
        await store.register_task_types({"mailer": declared})
        [kept] = await client.list_limits()
        assert (kept.concurrency, kept.rate_limit, kept.set_by) == (1, "100/30s", "anonymous")
        # Set to nothing at run time: listed, for it stands instead of the declaration.
        changed = await client.set_limit(type="mailer", concurrency=0, rate_limit="", key="")
        assert (changed.concurrency, changed.rate_limit, changed.key, changed.set_by) == (
            None, None, None, "anonymous",
        )  # fmt: skip
        assert [x.name for x in await client.list_limits()] == ["mailer"]
        reset = await client.reset_limit(type="mailer")
        assert (reset.concurrency, reset.rate_limit, reset.key, reset.set_by) == (
            3, "10/min", "customer_id", None,
        )  # fmt: skip
        assert await client.list_limits() == [reset]

        # A queue's limit, and a type that declares none: reset clears them, and they are not listed.
        emails = await client.set_limit("emails", rate_limit="5/s")
        assert (emails.kind, emails.name, emails.rate_limit, emails.concurrency) == (
            "queue",
            "emails",
            "5/s",
            None,
        )
        await client.set_limit(type="sleep", concurrency=2, key="customer_id")
        assert [(x.kind, x.name) for x in await client.list_limits()] == [
            ("queue", "emails"), ("type", "mailer"), ("type", "sleep"),
        ]  # fmt: skip
        assert (await client.reset_limit("emails")).rate_limit is None
        assert (await client.reset_limit(type="sleep")).concurrency is None
        assert [x.name for x in await client.list_limits()] == ["mailer"]


async def test_the_cli_sets_lists_and_resets_limits(
    workerless_server: ServerProcess, settings: Settings, store: Store
) -> None:
    server = workerless_server

    def cli(*args: str) -> str:
        return _cli(server, settings, *args)

    assert cli("limit", "set", "--type", "sleep", "--concurrency", "2", "--key", "customer_id") == (
        "Task type sleep: concurrency 2, per customer_id.\n"
    )
    assert cli("limit", "set", "--type", "sleep", "--rate", "5/sec") == (
        "Task type sleep: concurrency 2, rate 5/s, per customer_id.\n"
    )
    assert cli("limit", "set", "--queue", "emails", "-c", "1") == "Queue emails: concurrency 1.\n"
    handles = [
        json.loads(cli("task", "create", "n", "-t", "sleep", "-p", f"customer_id={c}", "-o", "json"))["id64"]
        for c in ("1", "1", "2")
    ]
    rows = [line.split() for line in cli("limit", "list").splitlines()]
    assert rows[0] == ["SCOPE", "NAME", "CONCURRENCY", "RATE", "KEY", "WAITING", "RUNNING", "SET-BY", "AGE"]
    assert [row[:-1] for row in rows[2:]] == [  # but the age
        ["queue", "emails", "1", "0", "0", "anonymous"],  # no rate, no key: empty cells
        ["type", "sleep", "2", "5/s", "customer_id", "3", "0", "anonymous"],
    ]
    listed = json.loads(cli("limit", "list", "-o", "json"))["limits"]
    fields = ("kind", "name", "concurrency", "rateLimit", "key", "waiting", "setBy")
    assert [tuple(x[f] for f in fields) for x in listed] == [
        ("queue", "emails", 1, "", "", 0, "anonymous"),
        ("type", "sleep", 2, "5/s", "customer_id", 3, "anonymous"),
    ]
    shown = cli("task", "get", "-i", str(handles[2]))
    assert ["Limit", "type", "sleep,", "key", "2"] in [line.split() for line in shown.splitlines()]
    assert cli("limit", "reset", "--type", "sleep") == "Task type sleep reset: no limit.\n"
    assert cli("limit", "reset", "--queue", "emails") == "Queue emails reset: no limit.\n"
    assert json.loads(cli("limit", "list", "-o", "json")) == {"limits": []}
    # A key of its own, under no limit now: shown as such.
    made = json.loads(cli("task", "create", "n", "-t", "sleep", "--limit-key", "acme", "-o", "json"))["id64"]
    assert (await store.get_task(int(made))).limit_key == "acme"
    shown = cli("task", "get", "-i", str(made))
    assert ["Limit", "key", "acme", "(no", "limit)"] in [line.split() for line in shown.splitlines()]

    for wrong, said in [
        (("--type", "sleep", "--queue", "q", "-c", "1"), "one of them"),
        (("-c", "1"), "one of them"),
        (("--type", "sleep"), "give --concurrency, --rate or --key"),
        (("--type", "sleep", "--rate", "fast"), "Invalid value for '--rate'"),
        (("--type", "sleep", "-c", "-1"), "Invalid value for '--concurrency'"),
        (("--queue", "two words", "-c", "1"), "a queue's name is"),
    ]:
        refused = task_cli(settings, "--address", server.url, "limit", "set", *wrong)
        assert (refused.returncode, said in refused.stderr) == (2, True), (wrong, refused.stderr)


# -- the rules ------------------------------------------------------------------------------------------


async def test_every_broken_rule_is_invalid_argument_naming_the_field(
    workerless_server: ServerProcess,
) -> None:
    async with AsyncClient(workerless_server.url) as client:
        refusals: list[tuple[Any, str]] = [
            (client.set_limit(concurrency=1), "queue: name a queue or a task type"),
            (client.set_limit("q", type="t", concurrency=1), "queue: name a queue or a task type"),
            (client.set_limit("two words", concurrency=1), "queue: must be 1 to 100 characters"),
            (client.set_limit(type="a\nb", concurrency=1), "type: must not contain control characters"),
            (client.set_limit(type="t" * 256, concurrency=1), "type: must be at most 255 characters"),
            (client.set_limit(type="t"), "concurrency: give concurrency, rate_limit or key"),
            (client.set_limit(type="t", concurrency=-1), "concurrency: must be 1 to 1000000, or 0 for none"),
            (client.set_limit(type="t", concurrency=1_000_001), "concurrency: must be 1 to 1000000"),
            (
                client.set_limit(type="t", rate_limit="fast"),
                'rate_limit: must be a count per period, as "5/s"',
            ),
            (client.set_limit(type="t", rate_limit="0/s"), "rate_limit: must be a count per period"),
            (client.set_limit(type="t", rate_limit="10001/s"), "rate_limit: must be a count per period"),
            (client.set_limit(type="t", rate_limit="1/2d"), "rate_limit: must be a count per period"),
            (client.set_limit(type="t", rate_limit="1" * 101), "rate_limit: must be at most 100 characters"),
            (client.set_limit(type="t", key="two words"), "key: must be a parameter's name"),
            (client.set_limit(type="t", key="k" * 256), "key: must be a parameter's name"),
            (client.reset_limit(), "queue: name a queue or a task type"),
            (client.reset_limit("two words"), "queue: must be 1 to 100 characters"),
            (
                client.create_task(type="sleep", limit_key="k" * 256),
                "limit_key: must be at most 255 characters",
            ),
            (client.create_task(type="sleep", limit_key="a\x07b"), "limit_key: must not contain control"),
            (
                client.create_tasks([taskservice.NewTask("n", "sleep", limit_key="a\nb")]),
                "tasks[0].limit_key: ",
            ),
        ]
        for attempt, said in refusals:
            with pytest.raises(taskservice.InvalidArgument) as refused:
                await attempt
            assert said in str(refused.value), (said, str(refused.value))
        assert await client.list_limits() == []  # nothing was set


async def test_changing_a_limit_is_an_operators_and_reading_one_a_viewers(
    token_server: tuple[ServerProcess, dict[str, str]],
) -> None:
    server, tokens = token_server
    async with (
        AsyncClient(server.url, token=tokens["viewer"]) as reader,
        AsyncClient(server.url, token=tokens["operator"]) as op,
    ):
        with pytest.raises(taskservice.PermissionDenied, match="SetLimit needs the right 'write'"):
            await reader.set_limit(type="sleep", concurrency=1)
        with pytest.raises(taskservice.PermissionDenied, match="ResetLimit needs the right 'write'"):
            await reader.reset_limit(type="sleep")
        assert await reader.list_limits() == []
        limit = await op.set_limit(type="sleep", concurrency=1)
        assert limit.set_by == "token:t-operator"
        assert await reader.list_limits() == [limit]


# -- tasks under a limit --------------------------------------------------------------------------------


async def test_a_task_counts_under_the_key_it_was_created_with(
    workerless_server: ServerProcess, store: Store, database_url: str
) -> None:
    async with AsyncClient(workerless_server.url) as client:
        await client.set_limit(type="sleep", concurrency=1, key="customer_id")
        # Two customers, but one key given: they count as one; a third task counts by its parameter.
        first = await client.create_task(type="sleep", parameters={"customer_id": "1"}, limit_key="acme")
        second = await client.create_task(type="sleep", parameters={"customer_id": "2"}, limit_key="acme")
        plain = await client.create_task(type="sleep", parameters={"customer_id": "1"})
        shown = [await client.get_task(h.id) for h in (first, second, plain)]
        assert [(t.limit_scope, t.limit_key) for t in shown] == [
            ("type:sleep", "acme"), ("type:sleep", "acme"), ("type:sleep", "1"),
        ]  # fmt: skip
        claimed = await store.claim("w", 10)
        assert sorted(c.task.id for c in claimed) == [first.id, plain.id]
        assert await store.claim("w", 10) == []
        assert [(x.waiting, x.running) for x in await client.list_limits()] == [(1, 2)]
    # taskservice.enqueue in the application's transaction takes a key too.
    with psycopg.connect(database_url) as conn:
        enqueued = taskservice.enqueue(conn, type="sleep", parameters={"customer_id": "3"}, limit_key="acme")
        conn.commit()
    task = await store.get_task(enqueued)
    assert (task.limit_scope, task.limit_key) == ("type:sleep", "acme")
    assert await store.claim("w", 10) == []  # acme's one slot is taken


async def _reasons(client: AsyncClient, handles: list[AsyncTaskHandle]) -> list[str]:
    return [(await client.get_task(h.id)).waiting_reason for h in handles]


async def test_a_waiting_task_says_which_limit_holds_it(
    api_server: ServerProcess, settings: Settings
) -> None:
    """The server's own workers run `sleep`: a task waits only for its limit."""
    async with AsyncClient(api_server.url) as client:
        await client.set_limit(type="sleep", concurrency=1, key="customer_id")
        running = await client.create_task(type="sleep", parameters={"seconds": "60", "customer_id": "42"})
        await eventually(lambda: _is(running, taskservice.TaskStatus.RUNNING))
        waiting = await client.create_task(type="sleep", parameters={"seconds": "0", "customer_id": "42"})
        other = await client.create_task(type="sleep", parameters={"seconds": "0", "customer_id": "7"})
        keyed = await client.create_task(
            type="sleep", parameters={"seconds": "0", "customer_id": "7"}, limit_key="42"
        )
        await eventually(lambda: _is(other, taskservice.TaskStatus.SUCCEEDED))  # another key: not held
        assert await _reasons(client, [waiting, keyed]) == [
            "concurrency limit 1 for customer_id 42 (type sleep)",
            "concurrency limit 1 for key 42 (type sleep)",
        ]
        listed = {t.id: t.waiting_reason for t in (await client.list_tasks()).tasks}
        assert listed[waiting.id] == "concurrency limit 1 for customer_id 42 (type sleep)"
        shown = _cli(api_server, settings, "task", "get", "-i", str(waiting.id))
        assert ["Waiting", "concurrency", "limit", "1", "for", "customer_id", "42", "(type", "sleep)"] in [
            line.split() for line in shown.splitlines()
        ]
        for handle in (running, waiting, keyed):
            await handle.cancel()

        # A queue's rate: one start an hour, one started; a paused queue says so first.
        await client.reset_limit(type="sleep")
        await client.set_limit("reports", rate_limit="1/h")
        started = await client.create_task(type="sleep", parameters={"seconds": "0"}, queue="reports")
        await eventually(lambda: _is(started, taskservice.TaskStatus.SUCCEEDED))
        held = await client.create_task(type="sleep", queue="reports")
        assert await _reasons(client, [held]) == ["rate limit 1/h for queue reports"]
        await client.pause_queue("reports")
        assert await _reasons(client, [held]) == ["queue reports is paused"]


async def _is(handle: AsyncTaskHandle, status: taskservice.TaskStatus) -> bool:
    return await handle.status() == status
