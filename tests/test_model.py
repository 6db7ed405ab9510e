"""The lifecycle rules and the retry policy, without a database."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from taskservice import model
from taskservice.model import ALLOWED_FROM, FINISHED, Outcome, RetryPolicy, Status, Task


def make_task(**changes: object) -> Task:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": 7, "name": "t", "type": "sleep", "status": Status.RUNNING, "payload": {"parameters": {}},
        "retries": 0, "max_retries": 3, "priority": 0, "description": "", "timeout_seconds": 5.0,
        "attempts": 1, "created_at": now, "updated_at": now, "run_at": now, "lease_owner": "w1",
    }  # fmt: skip
    values.update(changes)
    return Task(**values)  # type: ignore[arg-type]


def test_wire_numbers_never_change() -> None:
    assert [(s.name, s.value) for s in Status] == [
        ("QUEUED", 0), ("RUNNING", 1), ("FAILED", 2), ("SUCCEEDED", 3), ("UNKNOWN", 4), ("ALL", 5),
        ("RETRYING", 6), ("CANCELLED", 7),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (Status.QUEUED, Status.RUNNING, True),
        (Status.RETRYING, Status.RUNNING, True),
        (Status.RUNNING, Status.SUCCEEDED, True),
        (Status.RUNNING, Status.RETRYING, True),
        (Status.RUNNING, Status.FAILED, True),
        (Status.RUNNING, Status.QUEUED, True),
        (Status.QUEUED, Status.CANCELLED, True),
        (Status.RUNNING, Status.CANCELLED, True),
        (Status.FAILED, Status.QUEUED, True),
        (Status.SUCCEEDED, Status.QUEUED, True),
        (Status.QUEUED, Status.SUCCEEDED, False),
        (Status.SUCCEEDED, Status.CANCELLED, False),
        (Status.FAILED, Status.RUNNING, False),
        (Status.CANCELLED, Status.RUNNING, False),
        (Status.QUEUED, Status.QUEUED, False),
        (Status.QUEUED, Status.ALL, False),
    ],
)
def test_transitions(current: Status, target: Status, allowed: bool) -> None:
    assert model.can_move(current, target) is allowed


def test_finished_tasks_only_go_back_to_the_queue() -> None:
    for status in FINISHED:
        targets = {target for target, sources in ALLOWED_FROM.items() if status in sources}
        assert targets == {Status.QUEUED}


def test_illegal_transition_message_names_the_rule() -> None:
    error = model.IllegalTransition(3, Status.SUCCEEDED, Status.CANCELLED)
    assert str(error) == "task 3 is SUCCEEDED; it can move to CANCELLED only from QUEUED, RUNNING, RETRYING"


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0)
    rng = random.Random(1)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        delays = [policy.delay(retry, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 6) for d in delays}) > 100  # jittered, not in lockstep


def test_a_failed_attempt_retries_while_retries_are_left() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0)
    first = model.attempt_failed(make_task(), 11, "Task failed", "boom", policy)
    assert first.status == Status.RETRYING
    assert first.retries == 1
    assert 0.5 <= first.delay_seconds <= 1.0
    assert first.details.startswith("Task failed (Attempt 1): boom; retry 1 of 3 in ")
    last = model.attempt_failed(make_task(retries=3, attempts=4), 11, "Task failed", "boom", policy)
    assert last.status == Status.FAILED
    assert last.retries == 3
    assert last.details == "Task failed (Attempt 4): boom; no retries left (3 used)"


def test_a_permanent_failure_does_not_retry() -> None:
    t = model.attempt_failed(make_task(), 1, "Task failed", "bad address", RetryPolicy(), retryable=False)
    assert (t.status, t.retries, t.details) == (
        Status.FAILED, 0, "Task failed (Attempt 1): bad address; not retryable",
    )  # fmt: skip


def test_an_expired_lease_counts_as_an_attempt_but_is_retried_at_once() -> None:
    t = model.lease_expired(make_task(lease_owner="host-1-abc"), 5, RetryPolicy(base=100, cap=100))
    assert t.status == Status.RETRYING
    assert t.retries == 1
    assert t.delay_seconds == 0
    assert t.outcome == Outcome.LOST
    assert t.details == (
        "Lease expired (Attempt 1): worker host-1-abc stopped responding; retry 1 of 3 in 0.0s"
    )
    assert model.lease_expired(make_task(retries=3), 5, RetryPolicy()).status == Status.FAILED


def test_put_back_does_not_spend_a_retry() -> None:
    t = model.put_back(make_task(retries=1, attempts=2), 9)
    assert (t.status, t.retries, t.outcome) == (Status.QUEUED, 1, Outcome.INTERRUPTED)
    assert "put back in the queue (Attempt 2)" in t.details


def test_success_wording() -> None:
    t = model.succeeded(make_task(attempts=2), 3, {"ok": True})
    assert (t.status, t.details, t.result) == (
        Status.SUCCEEDED, "Task completed successfully (Attempt 2)", {"ok": True},
    )  # fmt: skip
