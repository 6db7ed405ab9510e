"""CPU time a drain costs: its worker processes' and the PostgreSQL backends serving them, per task.

The workers name their connections (`application_name`), so that their backends can be found in
`pg_stat_activity`, and the CPU time of each process is read from /proc. Where the database server
runs on another host, its backends are not processes of this one: the PostgreSQL share is then unknown.

A drain may involve more than the workers (`Part`): the API server that feeds agents, which names its
connections SERVER_APPLICATION, or a peer's consumers, which name theirs. `CpuSplit` is then what each
part's processes spent per task, and their backends together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psutil

from taskservice.bench.processes import Child
from taskservice.bench.results import CPU_UNIT, Figure

WORKER_APPLICATION = "taskservice-bench-worker"
SERVER_APPLICATION = "taskservice-bench-server"
BACKEND_NAME = "postgres"  # what a PostgreSQL server process is called, here or embedded
SAME_START = 2.0  # seconds a backend's start may differ by the server's clock and in this host's /proc


def named_connections(url: str, application: str = WORKER_APPLICATION) -> str:
    """`url` with its connections named `application` (asyncpg and libpq read it from the query)."""
    parts = urlsplit(url)
    options = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "application_name"]
    return urlunsplit(parts._replace(query=urlencode([*options, ("application_name", application)])))


class NotHere(Exception):
    """A backend that is not a process of this host (or no longer is): the server runs elsewhere."""


def _thread_seconds(thread: Path) -> float:
    try:
        return int((thread / "schedstat").read_text().split()[0]) / 1e9
    except FileNotFoundError:  # the thread ended meanwhile
        return 0.0


def _seconds(process: psutil.Process) -> float:
    """CPU seconds of `process` so far. Linux's schedstat counts nanoseconds (summed over the threads);
    psutil's times, elsewhere, count in ticks of 10 ms: too coarse for a drain of a few seconds."""
    threads = Path(f"/proc/{process.pid}/task")
    if not threads.is_dir():
        times = process.cpu_times()
        return float(times.user + times.system)
    return sum(_thread_seconds(thread) for thread in threads.iterdir())


def _backend_seconds(pid: int, started: float) -> float:
    """CPU seconds of backend `pid`, which the server says started at `started` (seconds since the epoch)."""
    try:
        process = psutil.Process(pid)
        if process.name() != BACKEND_NAME or abs(process.create_time() - started) > SAME_START:
            raise NotHere(pid)  # another process here has the server's backend's id
        return _seconds(process)
    except (psutil.Error, OSError):  # gone since the server listed it, or not ours to read
        raise NotHere(pid) from None


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds so far of each worker process and each of their backends (None: not visible)."""

    workers: dict[int, float]
    backends: dict[int, float] | None


def cpu_times(workers: list[Child], backends: list[tuple[int, float]]) -> CpuTimes:
    """Of the worker processes, and of their `backends` (pid, start) as pg_stat_activity lists them."""
    seconds: dict[int, float] | None
    try:
        seconds = {pid: _backend_seconds(pid, started) for pid, started in backends}
    except NotHere:
        seconds = None
    return CpuTimes({w.pid: _seconds(psutil.Process(w.pid)) for w in workers}, seconds)


@dataclass(frozen=True)
class CpuPerTask:
    """Microseconds of CPU per task: the workers', and PostgreSQL's (NaN: not measurable here)."""

    workers: float
    database: float

    @classmethod
    def between(cls, before: CpuTimes, after: CpuTimes, tasks: int) -> CpuPerTask:
        """Spent from `before` to `after`; a backend that started in between counts from zero."""
        workers = sum(s - before.workers.get(pid, 0.0) for pid, s in after.workers.items())
        database = math.nan
        if before.backends is not None and after.backends is not None:
            database = sum(s - before.backends.get(pid, 0.0) for pid, s in after.backends.items())
        return cls(workers / tasks * 1e6, database / tasks * 1e6)


CPU_PARTS = {"workers": "workers", "postgresql": "PostgreSQL"}


@dataclass
class Drains:
    """The rounds of one kind of drain (`name`) of scenario `scenario`: their rates and their CPU per
    task, shown beside the drain named `baseline` of the same scenario (the figures of `baseline`
    itself beside nothing)."""

    scenario: str
    name: str
    baseline: str
    rates: list[float] = field(default_factory=list)
    cpu: list[CpuPerTask] = field(default_factory=list)

    def cpu_figures(self, label: str) -> list[Figure]:
        """The least CPU per task of the rounds (as with throughput, noise only ever adds), the
        workers' and PostgreSQL's, each beside the baseline drain's."""
        figures = []
        for part, title in CPU_PARTS.items():
            rounds = [c.workers if part == "workers" else c.database for c in self.cpu]
            known = [r for r in rounds if not math.isnan(r)]
            figures.append(
                Figure(
                    f"{self.scenario}.{self.name}_cpu_{part}",
                    f"{label}: CPU per task, {title}",
                    min(known) if known else math.nan,
                    "µs",
                    raw_key=None
                    if self.name == self.baseline
                    else f"{self.scenario}.{self.baseline}_cpu_{part}",
                    compared_with=self.baseline,
                    details={"rounds": [round(r, 1) for r in rounds]},
                )
            )
        return figures


@dataclass(frozen=True)
class Part:
    """Processes whose CPU a drain counts as `name` ("workers", "server", ...); their connections carry
    `application` as application_name (None: they have none, as agents, which only talk to the server)."""

    name: str
    processes: list[Child]
    application: str | None = None


@dataclass(frozen=True)
class CpuSplit:
    """Microseconds of CPU per task, which is milliseconds per 1,000 tasks: each part's processes'
    (by the part's name), and the PostgreSQL backends' serving them all (NaN: not measurable here)."""

    processes: dict[str, float]
    postgresql: float

    @property
    def total(self) -> float:
        """Everything the drain cost; NaN where PostgreSQL's share is unknown."""
        return sum(self.processes.values()) + self.postgresql

    @property
    def known(self) -> float:
        """The total where it is known, else the processes' alone: what tells the cheaper round."""
        return sum(self.processes.values()) + (0.0 if math.isnan(self.postgresql) else self.postgresql)

    @classmethod
    def between(cls, before: dict[str, CpuTimes], after: dict[str, CpuTimes], tasks: int) -> CpuSplit:
        """Spent from `before` to `after` (each by part name) on `tasks` tasks."""
        shares = {name: CpuPerTask.between(before[name], times, tasks) for name, times in after.items()}
        return cls(
            {name: share.workers for name, share in shares.items()},
            sum(share.database for share in shares.values()),
        )

    def to_json(self) -> dict[str, float]:
        return {
            **{k: round(v, 1) for k, v in self.processes.items()},
            "postgresql": round(self.postgresql, 1),
        }


def least(rounds: list[CpuSplit]) -> CpuSplit:
    """The round that cost the least (as with throughput, noise only ever adds): its parts add up to
    its total, which the least of each part taken apart would not."""
    return min(rounds, key=lambda split: split.known)


def split_figures(
    key: str,
    label: str,
    rounds: list[CpuSplit],
    titles: dict[str, str],
    *,
    beside: str | None = None,
    parts_beside: dict[str, str] | None = None,
    compared_with: str = "raw",
    ratio_target: float | None = None,
    total: str = "total",
) -> list[Figure]:
    """CPU per 1,000 tasks of the round that cost the least: `key`_PART for each part that `titles`
    names ("postgresql": the backends), then `key` for the total (titled `total`). With `beside`
    (another split's key), the total is shown beside that split's total and held to at most
    `ratio_target` times it, and a part beside the part of it that `parts_beside` maps it to. Every
    round is in the details."""
    best = least(rounds) if rounds else CpuSplit({}, math.nan)
    parts_beside = parts_beside or {}
    figures = []
    for part, title in titles.items():
        value = best.postgresql if part == "postgresql" else best.processes.get(part, math.nan)
        other = parts_beside.get(part)
        figures.append(
            Figure(
                f"{key}_{part}",
                f"{label}: CPU per 1,000 tasks, {title}",
                value,
                CPU_UNIT,
                raw_key=f"{beside}_{other}" if beside and other else None,
                compared_with=compared_with,
            )
        )
    figures.append(
        Figure(
            key,
            f"{label}: CPU per 1,000 tasks, {total}",
            best.total,
            CPU_UNIT,
            raw_key=beside,
            ratio_target=ratio_target,
            ratio_op="<=",
            compared_with=compared_with,
            details={"rounds": [split.to_json() for split in rounds]},
        )
    )
    return figures
