"""The `task-cli` root command: the table of its subcommands, loaded only when they run."""

from __future__ import annotations

import click

from taskservice.cli.group import Group, Lazy

COMMANDS = {
    "task": Lazy("taskservice.cli.tasks:task", "Create and manage tasks.", ("t",)),
    "history": Lazy("taskservice.cli.tasks:history", "Show the status history of a task, oldest first.",
                    ("h", "log")),
    "workers": Lazy("taskservice.cli.workers:workers", "List workers, live ones first, with their tasks."),
    "queue": Lazy("taskservice.cli.queues:queue",
                  "Queues: list them with their counts; pause or resume a queue, or a task type (--type).",
                  ("queues",)),
    "limit": Lazy("taskservice.cli.limits:limit",
                  "Limits: list them; set or reset the concurrency and rate limit of a task type or a queue.",
                  ("limits",)),
    "schedule": Lazy("taskservice.cli.schedules:schedule",
                     "Schedules: create tasks at each tick of a cron expression or an interval; list, pause, "
                     "trigger.",
                     ("schedules",)),
    "workflow": Lazy("taskservice.cli.workflows:workflow",
                     "Workflows: steps that wait for each other, from a file; list, show, cancel, retry.",
                     ("workflows",)),
    "end2end": Lazy("taskservice.cli.end2end:end2end",
                    "Create N tasks (run_query and send_email), watch them finish, and report."),
    "up": Lazy("taskservice.cli.up:up",
               "Start everything here: PostgreSQL, server, dashboard, workers."),
    "server": Lazy("taskservice.cli.run:server",
                   "Run the API server (control plane) and the dashboard."),
    "serve": Lazy("taskservice.cli.run:serve",
                  "Run a worker: claim tasks and run them until SIGTERM or Ctrl-C."),
    "controller": Lazy("taskservice.cli.run:controller",
                       "Run the Kubernetes controller: run each Task resource as a Job and report how it "
                       "ended."),
    "db": Lazy("taskservice.cli.run:db", "The database: its URL (`db url`) and its schema (`db upgrade`)."),
    "migrate": Lazy("taskservice.cli.run:migrate",
                    "Create or upgrade the schema of DATABASE_URL, else the embedded PostgreSQL."),
    "token": Lazy("taskservice.cli.tokens:token",
                  "API tokens: create (shown once), list, revoke."),
    "bench": Lazy("taskservice.cli.run:bench",
                  "Measure throughput, latency, scale and memory on a fresh database."),
}  # fmt: skip


@click.group(
    cls=Group,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Global flags (--address, --token, --log-level) go anywhere on the line. "
    "Exit codes: 0 success, 1 the command failed (one line on stderr), 2 a usage error.",
)
def cli() -> None:
    """Task Service: create, inspect and run tasks."""
