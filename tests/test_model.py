"""The lifecycle rules and the retry policy, without a database."""

from __future__ import annotations

import dataclasses
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
        ("RETRYING", 6), ("CANCELLED", 7), ("WAITING", 8),
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
    assert str(error) == (
        "task 3 is SUCCEEDED; it can move to CANCELLED only from QUEUED, RUNNING, RETRYING, WAITING"
    )


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


def test_an_expired_lease_spends_no_retry_and_is_retried_at_once() -> None:
    task = make_task(lease_owner="host-1-abc", max_retries=0)
    t = model.lease_expired(task, 5, RetryPolicy(base=100, cap=100))
    assert (t.status, t.retries, t.lost_leases, t.delay_seconds) == (Status.RETRYING, 0, 1, 0)
    assert t.outcome == Outcome.LOST
    assert t.details == (
        "Lease expired (Attempt 1): worker host-1-abc stopped responding;"
        " queued again without spending a retry (1 of 3 lost leases)"
    )
    # Retries used up before do not matter either: the worker died, not the task.
    assert model.lease_expired(make_task(retries=3), 5, RetryPolicy()).status == Status.RETRYING


def test_a_task_that_keeps_killing_its_workers_is_stopped() -> None:
    policy = RetryPolicy(max_lost_leases=3)
    assert model.lease_expired(make_task(lost_leases=1), 5, policy).status == Status.RETRYING
    t = model.lease_expired(make_task(lost_leases=2, attempts=3), 5, policy)
    assert (t.status, t.lost_leases, t.outcome) == (Status.FAILED, 3, Outcome.LOST)
    assert t.details.endswith("lost 3 leases (MAX_LOST_LEASES=3): giving up")


def test_every_transition_keeps_the_lost_leases() -> None:
    task = make_task(lost_leases=2)
    policy = RetryPolicy()
    transitions = [
        model.succeeded(task, 1, None),
        model.attempt_failed(task, 1, "Task failed", "x", policy),
        model.attempt_failed(task, 1, "Task failed", "x", policy, retryable=False),
        model.put_back(task, 1),
    ]
    assert {t.lost_leases for t in transitions} == {2}
    assert model.unstorable(transitions[0], "too big").lost_leases == 2


def test_an_unstorable_outcome_fails_the_attempt_and_says_why() -> None:
    t = model.unstorable(model.succeeded(make_task(retries=1), 4, {"x": "\u0000"}), "bad escape")
    assert (t.status, t.execution_id, t.retries, t.result, t.outcome) == (
        Status.FAILED, 4, 1, None, Outcome.FAILED,
    )  # fmt: skip
    assert t.details == "Task failed: the attempt's outcome could not be stored: bad escape"


def test_put_back_does_not_spend_a_retry() -> None:
    t = model.put_back(make_task(retries=1, attempts=2), 9)
    assert (t.status, t.retries, t.outcome) == (Status.QUEUED, 1, Outcome.INTERRUPTED)
    assert "put back in the queue (Attempt 2)" in t.details


def test_succeeded_is_the_transition_its_init_would_make() -> None:
    # succeeded builds it without the frozen dataclass's __init__ (a worker's hot path): the same value.
    task = make_task(retries=1, attempts=2, lost_leases=1)
    child = model.SpawnedTask("c", model.NewTask(name="c", type="sleep", parameters={}))
    for spawned, details in [
        ((), "Task completed successfully (Attempt 2)"),
        ((child,), "Task completed successfully (Attempt 2); spawned 1 child"),
    ]:
        made = model.succeeded(task, 9, {"ok": True}, spawned)
        expected = model.Transition(
            7, 9, Status.SUCCEEDED, 1, 0.0, details, Outcome.SUCCEEDED,
            result={"ok": True}, lost_leases=1, spawned=spawned,
        )  # fmt: skip
        assert made == expected
        assert repr(made) == repr(expected)
        traced = dataclasses.replace(made, trace_parent="00-ab")
        assert traced == dataclasses.replace(expected, trace_parent="00-ab")
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.status = Status.FAILED  # type: ignore[misc]
    assert model.succeeded(task, 9, None).spawned == ()  # one transition's values are not another's


def test_success_wording() -> None:
    t = model.succeeded(make_task(attempts=2), 3, {"ok": True})
    assert (t.status, t.details, t.result) == (
        Status.SUCCEEDED, "Task completed successfully (Attempt 2)", {"ok": True},
    )  # fmt: skip
