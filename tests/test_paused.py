"""A worker or agent process paused (SIGSTOP) past its lease sends no e-mail when it wakes (SIGCONT):
its attempt's lease ran out on its own clock, and send_email checks that right before sending."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from agents import AgentProcess, agent_env, wake_and_stop
from conftest import ServerProcess, eventually, subprocess_env
from taskservice.config import Settings
from taskservice.model import NewTask, Outcome, Status
from taskservice.plugins.email import message_id
from taskservice.store import Store
from test_plugins import SMTPServer, smtp_server

__all__ = ["smtp_server"]  # a fixture, used by name


def _smtp(smtp: SMTPServer) -> dict[str, str]:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"}


async def _paused_past_its_lease_sends_nothing(
    store: Store, smtp: SMTPServer, gates: Path, spawn: Callable[[str], AgentProcess]
) -> None:
    """The first process takes the task and is held at the gate, just before sending; it is frozen
    and its gate opened; the task is reaped and sent by a second process; the first one wakes."""
    parameters = {"name": "mail", "recipient": "bob@example.com", "subject": "once", "body": "Hi Bob"}
    task_id, _ = await store.create_task(NewTask("paused mail", "gated_email", parameters, max_retries=0))
    paused = spawn("paused")
    other: AgentProcess | None = None
    try:
        await eventually(
            lambda: asyncio.sleep(0, (gates / f"started-{paused.pid}-mail").exists()), timeout=60
        )
        paused.process.send_signal(signal.SIGSTOP)
        (gates / f"release-{paused.pid}").touch()  # on waking it goes straight on to send
        other = spawn("other")
        (gates / f"release-{other.pid}").touch()

        async def sent_by_the_other() -> bool:
            task = await store.get_task(task_id)
            return task.status == Status.SUCCEEDED and len(smtp.collector.received) == 1

        await eventually(sent_by_the_other, timeout=60)
        paused.process.send_signal(signal.SIGCONT)
        # Awake, its plugin's thread runs on at once: right before sending it is told the attempt is
        # not current any more; its report (a lost lease) comes too late and is refused.
        await eventually(
            lambda: asyncio.sleep(0, (gates / f"not-current-{paused.pid}-mail").exists()), timeout=60
        )
        await eventually(lambda: asyncio.sleep(0, "outcomes refused" in paused.log()), timeout=60)
    finally:
        wake_and_stop(paused, other)
    log = paused.log()
    assert "the attempt's lease ran out (was this worker paused?); stopping it" in log, log
    [mail] = smtp.collector.received  # once, from the other process
    key = (await store.get_task(task_id)).idempotency_key or f"{await store.installation_id()}-{task_id}"
    assert (mail.recipients, mail.message["Message-ID"]) == (
        ["bob@example.com"], message_id(key, "localhost"),
    )  # fmt: skip
    task = await store.get_task(task_id)
    assert (task.status, task.retries, task.lost_leases, task.attempts) == (Status.SUCCEEDED, 0, 1, 2)
    [lost, won] = await store.executions(task_id)
    assert (lost.outcome, lost.result, won.outcome) == (Outcome.LOST, None, Outcome.SUCCEEDED)
    assert won.result is not None
    assert won.result["sent_by"] == str(other.pid)
    history = [h.details for h in await store.history(task_id)]
    assert [h for h in history if h.startswith("Lease expired")] == [
        f"Lease expired (Attempt 1): worker {lost.worker_id} stopped responding; "
        "queued again without spending a retry (1 of 3 lost leases)"
    ]
    assert history[-1] == "Task completed successfully (Attempt 2)"


async def test_a_worker_paused_past_its_lease_sends_no_email_on_waking(
    store: Store, settings: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    env = subprocess_env(settings, GATE_DIR=str(gates), **_smtp(smtp_server))

    def spawn(name: str) -> AgentProcess:
        return AgentProcess.gated_worker(env, tmp_path / f"{name}.log")

    await _paused_past_its_lease_sends_nothing(store, smtp_server, gates, spawn)


async def test_an_agent_paused_past_its_lease_sends_no_email_on_waking(
    workerless_server: ServerProcess,
    store: Store,
    settings: Settings,
    smtp_server: SMTPServer,
    tmp_path: Path,
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    env = agent_env(settings, gates, **_smtp(smtp_server))

    def spawn(name: str) -> AgentProcess:
        return AgentProcess.gated(workerless_server.url, env, tmp_path / f"{name}.log")

    await _paused_past_its_lease_sends_nothing(store, smtp_server, gates, spawn)
