"""The metrics a real server exports (api/metrics.py): attempts by task type and queue, read from the
database at scrape time; streams counted and timed like unary calls; the agents connected. And what
people read them with: the documented table (docs/observability.md, "Metrics") and the Grafana
dashboard (deploy/grafana/taskservice.json) name only metrics a real scrape shows."""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents import AgentProcess, agent_env
from conftest import ServerProcess, eventually
from taskservice.config import Settings
from taskservice.model import NewTask, Status
from taskservice.store import Pool, Store

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "taskservice.json"
DOCS = ROOT / "docs" / "observability.md"
SERVICE = "/cloud.v1.TaskManagementService"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape by name and labels (the `_created` timestamps left out)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def value(scrape: Samples, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(server: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


@asynccontextmanager
async def watching(server: ServerProcess) -> AsyncIterator[None]:
    """A WatchEvents stream open for the block, then left by its client."""
    body = b"{}"
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=None) as http,
        http.stream(
            "POST",
            f"{SERVICE}/WatchEvents",
            content=struct.pack(">BI", 0, len(body)) + body,
            headers={"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"},
        ) as response,
    ):
        assert response.status_code == 200
        yield


async def final(store: Store, ids: list[int]) -> bool:
    done = {Status.SUCCEEDED, Status.FAILED}
    return {(await store.get_task(i)).status for i in ids} <= done


async def attempt_rows(pool: Pool, ids: list[int]) -> list[Any]:
    return list(
        await pool.fetch(
            "SELECT e.task_id, e.attempt, e.outcome, e.started_at, e.finished_at, e.due_at, t.queue,"
            " extract(epoch FROM e.started_at - e.due_at)::float8 AS wait,"
            " extract(epoch FROM e.finished_at - e.started_at)::float8 AS run"
            " FROM task_executions e JOIN tasks t ON t.id = e.task_id"
            " WHERE e.task_id = ANY($1::bigint[]) ORDER BY e.task_id, e.attempt",
            ids,
        )
    )


@pytest.fixture
async def ran(
    workerless_server: ServerProcess, store: Store, pool: Pool, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Samples, Samples, str, list[Any]]]:
    """An agent (3 slots) ran a task that succeeded (queue `reports`), one that failed twice (one
    retry) and one that timed out, while a WatchEvents stream was open: the scrape before (with the
    agent connected), the scrape after, its text, and the attempts' rows."""
    agent = AgentProcess.cli(workerless_server, agent_env(settings), tmp_path / "agent.log", "-c", "3")
    try:

        async def connected() -> Samples | None:
            seen = samples(await scrape(workerless_server))
            return seen if value(seen, "taskservice_agent_sessions") == 1 else None

        before = await eventually(connected, timeout=60)
        async with watching(workerless_server):

            async def watched() -> bool:
                seen = samples(await scrape(workerless_server))
                return value(seen, "taskservice_streams_open", method="WatchEvents") == 1

            await eventually(watched)
            created = await store.create_tasks(
                [
                    NewTask("fine", "sleep", {"seconds": "0"}, queue="reports"),
                    NewTask("broken", "sleep", {"fail_rate": "1"}, max_retries=1),
                    NewTask("slow", "sleep", {"seconds": "60"}, max_retries=0, timeout_seconds=0.3),
                ]
            )
            ids = [i for i, _ in created]
            await eventually(lambda: final(store, ids), timeout=60)
            rows = await attempt_rows(pool, ids)
            assert [(r["attempt"], r["outcome"]) for r in rows] == [
                (1, "succeeded"), (1, "failed"), (2, "failed"), (1, "timed_out"),
            ]  # fmt: skip

            async def all_read() -> tuple[Samples, str] | None:
                text = await scrape(workerless_server)
                seen = samples(text)
                ended = sum(v for (n, _), v in seen.items() if n == "taskservice_attempts_ended_total")
                before_ended = sum(
                    v for (n, _), v in before.items() if n == "taskservice_attempts_ended_total"
                )
                return (seen, text) if ended - before_ended >= 4 else None

            after, text = await eventually(all_read)
        yield before, after, text, rows
    finally:
        code = agent.stop()
    assert code == 0, agent.log()


async def test_attempts_are_counted_by_type_queue_and_outcome_with_their_run_times_and_waits(
    ran: tuple[Samples, Samples, str, list[Any]],
) -> None:
    before, after, _, rows = ran

    def change(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    reports, default = {"type": "sleep", "queue": "reports"}, {"type": "sleep", "queue": "default"}
    assert change("taskservice_attempts_started_total", **reports) == 1
    assert change("taskservice_attempts_started_total", **default) == 3
    assert change("taskservice_attempts_ended_total", outcome="succeeded", **reports) == 1
    assert change("taskservice_attempts_ended_total", outcome="failed", **default) == 2
    assert change("taskservice_attempts_ended_total", outcome="timed_out", **default) == 1
    assert change("taskservice_attempts_ended_total", outcome="succeeded", **default) == 0
    # Only the first failure was retried; the second was the last (max_retries 1), the time-out too.
    assert change("taskservice_attempts_retried_total", **default) == 1
    assert change("taskservice_attempts_retried_total", **reports) == 0
    # The histograms hold exactly the attempts' own figures, from the database's clock.
    for labels, queue in ((reports, "reports"), (default, "default")):
        mine = [r for r in rows if r["queue"] == queue]
        assert change("taskservice_attempt_duration_seconds_count", **labels) == len(mine)
        assert change("taskservice_attempt_duration_seconds_sum", **labels) == pytest.approx(
            sum(r["run"] for r in mine), abs=1e-6
        )
        assert change("taskservice_attempt_queue_wait_seconds_count", **labels) == len(mine)
        assert change("taskservice_attempt_queue_wait_seconds_sum", **labels) == pytest.approx(
            sum(max(r["wait"], 0.0) for r in mine), abs=1e-6
        )
    # The wait of the retry counts from when it was due again (after its backoff), not from the
    # task's creation nor from the failure before it.
    first, retry = (r for r in rows if r["queue"] == "default" and r["outcome"] == "failed")
    assert retry["due_at"] > first["finished_at"]
    assert retry["started_at"] >= retry["due_at"]
    # The run-time histogram of before (by type and outcome) is fed by the same reading.
    assert change("taskservice_task_run_seconds_count", type="sleep", outcome="failed") == 2
    assert change("taskservice_task_run_seconds_count", type="sleep", outcome="timed_out") == 1


async def test_streams_are_counted_and_timed_like_unary_calls_and_agents_are_counted(
    ran: tuple[Samples, Samples, str, list[Any]], workerless_server: ServerProcess
) -> None:
    before, after, _, _ = ran
    # While the agent was connected: its session, its slots, its PullEvents stream open.
    for seen in (before, after):
        assert value(seen, "taskservice_agent_sessions") == 1
        assert value(seen, "taskservice_agent_slots") == 3
        assert value(seen, "taskservice_streams_open", method="PullEvents") == 1
    assert value(after, "taskservice_streams_open", method="WatchEvents") == 1

    # The watch stream was left by its client when `ran` ended: closed, counted and timed once.
    async def left() -> Samples | None:
        seen = samples(await scrape(workerless_server))
        return seen if value(seen, "taskservice_streams_open", method="WatchEvents") == 0 else None

    closed = await left() or await eventually(left)
    counted = {
        dict(labels)["code"]: v
        for (name, labels), v in closed.items()
        if name == "taskservice_rpc_requests_total" and dict(labels)["method"] == "WatchEvents"
    }
    assert counted == {"canceled": 1}
    assert value(closed, "taskservice_rpc_duration_seconds_count", method="WatchEvents") == 1
    assert value(closed, "taskservice_rpc_errors_total", method="WatchEvents", code="canceled") == 1


async def test_every_metric_the_dashboard_queries_is_exported(
    ran: tuple[Samples, Samples, str, list[Any]],
) -> None:
    _, _, text, _ = ran
    exported = {
        name + suffix
        for family in text_string_to_metric_families(text)
        for name in (family.name,)
        for suffix in {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ("",)
        )
    }
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(expressions) >= 10
    variables = [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert variables  # the type and queue pickers: label_values over an exported metric too
    expressions += variables
    queried = {name for expr in expressions for name in re.findall(r"\btaskservice_[a-z0-9_]+", expr)}
    assert queried, expressions
    assert queried - exported == set()
    # And it covers what it is for: throughput, failures, durations, waits, depth, RPCs, streams, agents.
    for wanted in (
        "taskservice_attempts_ended_total", "taskservice_attempts_started_total",
        "taskservice_attempt_duration_seconds_bucket", "taskservice_attempt_queue_wait_seconds_bucket",
        "taskservice_queue_depth", "taskservice_queue_waiting", "taskservice_rpc_requests_total",
        "taskservice_rpc_errors_total", "taskservice_streams_open", "taskservice_agent_sessions",
    ):  # fmt: skip
        assert wanted in queried


def documented() -> dict[str, tuple[str, set[str]]]:
    """The table of docs/observability.md's section "Metrics": name -> (type, labels)."""
    text = DOCS.read_text()
    section = text[text.index("\n## Metrics\n") :]
    following = section.find("\n## ", 1)
    section = section if following < 0 else section[:following]
    table: dict[str, tuple[str, set[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`taskservice_"):
            labels = set(re.findall(r"`([a-z_]+)`", cells[2]))
            assert cells[0].count("`") == 2, line
            table[cells[0].strip("`")] = (cells[1], labels)
    return table


async def test_the_documented_metrics_are_exactly_the_exported_ones(
    ran: tuple[Samples, Samples, str, list[Any]],
) -> None:
    _, _, text, _ = ran
    exported: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):  # Prometheus's own companions of counters and histograms
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {label for s in family.samples for label in s.labels if label != "le"}
        exported[name] = (family.type, labels)
    table = documented()
    assert set(table) == set(exported)
    for name, (kind, labels) in exported.items():
        assert table[name][0] == kind, name
        if labels:  # a family with no sample yet shows no labels: the table still must say them
            assert table[name][1] == labels, name


def test_no_label_is_an_id_or_a_key() -> None:
    """Bounded cardinality: by type, queue, outcome, method, code, status, scope; never per task,
    worker, agent or key."""
    allowed = {"type", "queue", "outcome", "method", "code", "status", "kind", "name", "scope", "table"}
    for name, (_, labels) in documented().items():
        assert labels <= allowed, name


async def test_the_scrape_reads_the_attempts_in_bounded_batches_carried_over(
    workerless_server: ServerProcess, store: Store, pool: Pool
) -> None:
    """More attempts than one scrape reads (ATTEMPT_BATCH) are counted over the next scrapes, each
    exactly once."""
    from taskservice.api.metrics import ATTEMPT_BATCH

    await scrape(workerless_server)  # the first scrape notes where to start
    many = ATTEMPT_BATCH + 500
    await pool.execute(
        "WITH t AS (INSERT INTO tasks (name, type, status, queue, timeout_seconds)"
        " SELECT 'bulk ' || g, 'bulk', 3, 'bulkq', 60 FROM generate_series(1, $1) g RETURNING id)"
        " INSERT INTO task_executions (task_id, attempt, worker_id, started_at, finished_at, outcome, due_at)"
        " SELECT id, 1, 'w', now(), now(), 'succeeded', now() FROM t",
        many,
    )
    first = samples(await scrape(workerless_server))
    assert value(first, "taskservice_attempts_started_total", type="bulk", queue="bulkq") == ATTEMPT_BATCH
    second = samples(await scrape(workerless_server))
    assert value(second, "taskservice_attempts_started_total", type="bulk", queue="bulkq") == many
    ended = value(second, "taskservice_attempts_ended_total", type="bulk", queue="bulkq", outcome="succeeded")
    assert ended == many
    third = samples(await scrape(workerless_server))
    assert value(third, "taskservice_attempts_started_total", type="bulk", queue="bulkq") == many


async def test_two_scrapes_at_once_count_each_attempt_once(
    workerless_server: ServerProcess, pool: Pool
) -> None:
    await scrape(workerless_server)
    await pool.execute(
        "WITH t AS (INSERT INTO tasks (name, type, status, queue, timeout_seconds)"
        " SELECT 'pair ' || g, 'pair', 3, 'pairq', 60 FROM generate_series(1, 50) g RETURNING id)"
        " INSERT INTO task_executions (task_id, attempt, worker_id, started_at, finished_at, outcome, due_at)"
        " SELECT id, 1, 'w', now(), now(), 'succeeded', now() FROM t"
    )
    await asyncio.gather(scrape(workerless_server), scrape(workerless_server))
    seen = samples(await scrape(workerless_server))
    assert value(seen, "taskservice_attempts_started_total", type="pair", queue="pairq") == 50


async def test_a_scrape_reads_the_attempts_by_index_at_a_million(pool: Pool) -> None:
    """At a million attempts (a thousand running), the scrape's reading of a full batch and of the
    running ones it saw is index scans of the primary keys, in the plan a session of our pool makes
    for these values and in the generic one (a prepared statement's after five runs)."""
    from taskservice.api.metrics import ATTEMPT_BATCH
    from taskservice.store.sql import query

    await pool.execute(
        "WITH t AS (INSERT INTO tasks (name, type, status, queue, timeout_seconds)"
        " SELECT 'm ' || g, 'type' || (g % 20), CASE WHEN g % 1000 = 0 THEN 1 ELSE 3 END, 'q' || (g % 5), 60"
        " FROM generate_series(1, 1000000) g RETURNING id, status)"
        " INSERT INTO task_executions (task_id, attempt, worker_id, started_at, finished_at, outcome, due_at)"
        " SELECT id, 1, 'w', now(), CASE WHEN status = 3 THEN now() END,"
        " CASE WHEN status = 3 THEN 'succeeded' ELSE 'running' END, now() FROM t"
    )
    await pool.execute("ANALYZE tasks")
    await pool.execute("ANALYZE task_executions")
    newest = await pool.fetchval("SELECT max(id) FROM task_executions")
    running = [r[0] for r in await pool.fetch("SELECT id FROM task_executions WHERE finished_at IS NULL")]
    assert len(running) == 1000
    after = newest - 2 * ATTEMPT_BATCH
    async with pool.acquire() as conn:
        explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
        custom = [
            r[0] for r in await conn.fetch(explain + query("attempts_after"), after, ATTEMPT_BATCH, running)
        ]
        async with conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute("PREPARE generic (bigint, integer, bigint[]) AS " + query("attempts_after"))
            listed = "{" + ",".join(map(str, running)) + "}"
            generic = [
                r[0]
                for r in await conn.fetch(f"{explain} EXECUTE generic ({after}, {ATTEMPT_BATCH}, '{listed}')")
            ]
            await conn.execute("DEALLOCATE generic")
    for plan in (custom, generic):
        text = "\n".join(plan)
        for whole in ("Seq Scan", "Hash", "Sort"):  # nothing read whole, hashed or sorted
            assert whole not in text, text
        assert text.count("Index Scan using task_executions_pkey") == 2, text
        assert "Index Scan using tasks_pkey" in text, text
        # A full batch and the running ones below it: every row read is one returned.
        below = sum(1 for i in running if i <= after)
        # (PostgreSQL 18 writes the rows with two decimals: "10980.00".)
        assert re.match(rf"Nested Loop Left Join \(actual rows={ATTEMPT_BATCH + below}(\.00)? ", plan[0]), (
            text
        )


async def test_an_attempt_whose_claim_commits_after_a_later_ones_is_counted(
    workerless_server: ServerProcess, pool: Pool
) -> None:
    """A claim takes its attempt's id and commits later: a scrape may read a later id first. The id it
    skipped is looked for again, and counted once it is committed."""
    await scrape(workerless_server)
    [late_task, early_task] = [
        r[0]
        for r in await pool.fetch(
            "INSERT INTO tasks (name, type, status, queue, timeout_seconds)"
            " SELECT 'late ' || g, 'late', 3, 'lateq', 60 FROM generate_series(1, 2) g RETURNING id"
        )
    ]
    insert = (
        "INSERT INTO task_executions (task_id, attempt, worker_id, finished_at, outcome, due_at)"
        " VALUES ($1, 1, 'w', now(), 'succeeded', now()) RETURNING id"
    )
    async with pool.acquire() as conn:
        late = conn.transaction()
        await late.start()
        late_id = await conn.fetchval(insert, late_task)  # its id taken, not committed
        early_id = await pool.fetchval(insert, early_task)  # a later id, committed first
        assert early_id > late_id
        first = samples(await scrape(workerless_server))
        assert value(first, "taskservice_attempts_started_total", type="late", queue="lateq") == 1
        await late.commit()
    second = samples(await scrape(workerless_server))
    assert value(second, "taskservice_attempts_started_total", type="late", queue="lateq") == 2
    assert (
        value(second, "taskservice_attempts_ended_total", type="late", queue="lateq", outcome="succeeded")
        == 2
    )
    third = samples(await scrape(workerless_server))
    assert value(third, "taskservice_attempts_started_total", type="late", queue="lateq") == 2


async def test_an_attempt_seen_running_is_counted_ended_when_it_ends(
    workerless_server: ServerProcess, pool: Pool
) -> None:
    await scrape(workerless_server)
    task = await pool.fetchval(
        "INSERT INTO tasks (name, type, status, queue, timeout_seconds, attempts)"
        " VALUES ('long', 'long', 1, 'longq', 60, 1) RETURNING id"
    )
    attempt = await pool.fetchval(
        "INSERT INTO task_executions (task_id, attempt, worker_id, due_at, started_at)"
        " VALUES ($1, 1, 'w', now() - interval '2 seconds', now()) RETURNING id",
        task,
    )
    running = samples(await scrape(workerless_server))
    labels = {"type": "long", "queue": "longq"}
    assert value(running, "taskservice_attempts_started_total", **labels) == 1
    assert value(running, "taskservice_attempt_queue_wait_seconds_sum", **labels) == pytest.approx(2.0)
    assert value(running, "taskservice_attempts_ended_total", outcome="timed_out", **labels) == 0
    await pool.execute(
        "UPDATE task_executions SET finished_at = started_at + interval '1.5 seconds', outcome = 'timed_out'"
        " WHERE id = $1",
        attempt,
    )
    await pool.execute(
        "UPDATE tasks SET status = 6, execution_id = $2 WHERE id = $1", task, attempt
    )  # to retry
    ended = samples(await scrape(workerless_server))
    assert value(ended, "taskservice_attempts_started_total", **labels) == 1
    assert value(ended, "taskservice_attempts_ended_total", outcome="timed_out", **labels) == 1
    assert value(ended, "taskservice_attempts_retried_total", **labels) == 1
    assert value(ended, "taskservice_attempt_duration_seconds_sum", **labels) == pytest.approx(1.5)
    assert value(ended, "taskservice_attempt_queue_wait_seconds_count", **labels) == 1


async def test_when_the_attempt_ids_go_back_counting_starts_over_from_the_newest(
    workerless_server: ServerProcess, pool: Pool
) -> None:
    async def add(count: int) -> None:
        await pool.execute(
            "WITH t AS (INSERT INTO tasks (name, type, status, queue, timeout_seconds)"
            " SELECT 'again ' || g, 'again', 3, 'againq', 60 FROM generate_series(1, $1) g RETURNING id)"
            " INSERT INTO task_executions (task_id, attempt, worker_id, finished_at, outcome, due_at)"
            " SELECT id, 1, 'w', now(), 'succeeded', now() FROM t",
            count,
        )

    async def started() -> float:
        seen = samples(await scrape(workerless_server))
        return value(seen, "taskservice_attempts_started_total", type="again", queue="againq")

    await scrape(workerless_server)
    await add(5)
    assert await started() == 5
    await pool.execute("TRUNCATE task_executions RESTART IDENTITY")
    await add(3)
    assert await started() == 5  # the ids went back: it starts over from the newest, counting none
    await add(2)
    assert await started() == 7


async def test_a_batch_of_attempts_whose_tasks_are_gone_is_read_past(
    workerless_server: ServerProcess, pool: Pool
) -> None:
    """Attempts of deleted tasks are not counted, but the reading moves past them: a full batch of
    them does not stop the counting."""
    from taskservice.api.metrics import ATTEMPT_BATCH

    await scrape(workerless_server)
    await pool.execute(
        "INSERT INTO task_executions (task_id, attempt, worker_id, finished_at, outcome, due_at)"
        " SELECT 1000000000 + g, 1, 'w', now(), 'succeeded', now() FROM generate_series(1, $1) g",
        ATTEMPT_BATCH + 10,
    )
    task = await pool.fetchval(
        "INSERT INTO tasks (name, type, status, queue, timeout_seconds)"
        " VALUES ('kept', 'kept', 3, 'keptq', 60) RETURNING id"
    )
    await pool.execute(
        "INSERT INTO task_executions (task_id, attempt, worker_id, finished_at, outcome, due_at)"
        " VALUES ($1, 1, 'w', now(), 'succeeded', now())",
        task,
    )
    first = samples(await scrape(workerless_server))
    assert value(first, "taskservice_attempts_started_total", type="kept", queue="keptq") == 0
    second = samples(await scrape(workerless_server))
    assert value(second, "taskservice_attempts_started_total", type="kept", queue="keptq") == 1
    counted = sum(v for (name, _), v in second.items() if name == "taskservice_attempts_started_total")
    assert counted == 1


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited claim", "limited claim"])
async def test_the_claims_keep_when_the_task_was_due_on_its_attempt(
    store: Store, pool: Pool, limited: bool
) -> None:
    """Both claims (the unlimited one, and claim_limited of migration 0050 as 0090 replaced it) copy
    the task's run_at onto the attempt: a delayed task's wait counts from the end of its delay."""
    if limited:
        await store.set_limit("queue", "capped", {"concurrency": 5}, "test")
    [(task_id, _)] = await store.create_tasks(
        [NewTask("due", "sleep", {}, queue="capped", delay_seconds=0.2)]
    )
    run_at = await pool.fetchval("SELECT run_at FROM tasks WHERE id = $1", task_id)

    async def claimed() -> bool:
        return bool(await store.claim("w-due", 1, (), 30.0))

    await eventually(claimed)
    row = await pool.fetchrow(
        "SELECT e.due_at, e.started_at, t.limit_scope FROM task_executions e JOIN tasks t ON t.id = e.task_id"
        " WHERE e.task_id = $1",
        task_id,
    )
    assert row is not None
    assert row["limit_scope"] == ("queue:capped" if limited else None)
    assert row["due_at"] == run_at
    assert row["started_at"] >= run_at
