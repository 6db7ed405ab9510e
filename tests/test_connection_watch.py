"""api/connections.py without a server: which connection makes room at the cap, and the cap itself."""

from __future__ import annotations

import resource

from taskservice.api.connections import RESERVED_DESCRIPTORS, ConnectionWatch, connection_cap


class Connection:
    def __init__(self) -> None:
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True


def test_at_the_cap_the_oldest_waiting_connection_makes_room() -> None:
    watch = ConnectionWatch(header_timeout=10, cap=3)
    first, second, third, newcomer = Connection(), Connection(), Connection(), Connection()
    for connection in (first, second, third):
        watch.waiting(connection)
    watch.served(first)  # its headers came: it is busy with a request, not to be dropped
    watch.admit(3)
    assert not any(c.dropped for c in (first, second, third))
    watch.waiting(newcomer)
    watch.admit(4)
    assert [c.dropped for c in (first, second, third, newcomer)] == [False, True, False, False]
    watch.admit(4)  # another newcomer before the dropped connection is gone: the next oldest
    assert [c.dropped for c in (third, newcomer)] == [True, False]


def test_when_every_other_connection_is_busy_the_newcomer_is_refused() -> None:
    watch = ConnectionWatch(header_timeout=10, cap=1)
    busy, newcomer = Connection(), Connection()
    watch.waiting(busy)
    watch.served(busy)
    watch.waiting(newcomer)
    watch.admit(2)
    assert [c.dropped for c in (busy, newcomer)] == [False, True]


def test_the_cap_leaves_room_for_the_pool_and_files() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(10) == soft - 10 - RESERVED_DESCRIPTORS
